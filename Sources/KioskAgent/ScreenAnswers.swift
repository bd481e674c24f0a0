import Foundation
import KioskCore
import Logging
import ServiceLifecycle
import ShopperScreen
import Synchronization

/// Where the consent answer of the current prompt comes from: the kiosk's screen or the terminal,
/// whichever answers first for the prompt's request id; the other is discarded.
///
/// The checkout runner ``open(checkoutID:requestID:)``s a prompt, the screen server hands in the
/// shopper's touch (``consentAnswered(_:)``), the terminal's answer comes through
/// ``offerTerminal(_:)``; the runner waits with ``wait(until:)`` and ``close()``s the prompt.
public final class ScreenAnswers: ShopperScreenDelegate {
    /// The first answer to a prompt.
    public enum Winner: Sendable, Equatable {
        /// Touched on the screen, with the exact text displayed there and the plan selected on the offer.
        case screen(PromptAnswer, ConsentText, plan: ChosenPlan? = nil)
        /// Answered (or lost) on the terminal.
        case terminal(TerminalOutcome)
    }

    /// The terminal's side of a prompt.
    public enum TerminalOutcome: Sendable, Equatable {
        /// A button, a decline or the terminal's own time-out.
        case answered(PromptAnswer)
        /// The terminal went away mid-prompt.
        case lost(String)
    }

    private struct Prompt {
        var checkoutID: String
        var requestID: UInt32
        var winner: Winner?
    }
    private let prompt = Mutex<Prompt?>(nil)
    private let attachedCheck: @Sendable () -> Bool

    /// Creates the source; `attached` says whether a page is showing (recently connected to `/events`).
    public init(attached: @escaping @Sendable () -> Bool) {
        attachedCheck = attached
    }

    /// Whether the screen can take the answer now.
    public var isAttached: Bool { attachedCheck() }

    /// Opens a prompt: answers for this checkout and request id are taken until ``close()``.
    public func open(checkoutID: String, requestID: UInt32) {
        prompt.withLock { $0 = Prompt(checkoutID: checkoutID, requestID: requestID, winner: nil) }
    }

    /// The prompt open now (checkout id and request id) and whether it already has an answer.
    public var openPrompt: (checkoutID: String, requestID: UInt32, answered: Bool)? {
        prompt.withLock { p in p.map { ($0.checkoutID, $0.requestID, $0.winner != nil) } }
    }

    /// Closes the prompt; later answers are stale.
    public func close() { prompt.withLock { $0 = nil } }

    /// The screen's answer: accepted when it is the first for the open prompt.
    public func consentAnswered(_ answer: ScreenConsentAnswer) -> ScreenAnswerOutcome {
        guard answer.answer != .timedOut else { return .invalid }
        return prompt.withLock { p -> ScreenAnswerOutcome in
            guard var open = p, open.checkoutID == answer.checkoutID, open.requestID == answer.requestID, open.winner == nil else { return .stale }
            open.winner = .screen(answer.answer, answer.consent, plan: answer.plan)
            p = open
            return .accepted
        }
    }

    /// The terminal's answer for `requestID`: true when it is the first.
    @discardableResult
    public func offerTerminal(_ outcome: TerminalOutcome, requestID: UInt32) -> Bool {
        prompt.withLock { p -> Bool in
            guard var open = p, open.requestID == requestID, open.winner == nil else { return false }
            open.winner = .terminal(outcome)
            p = open
            return true
        }
    }

    /// Blocks (polling every 20 ms, on the checkout thread) until an answer arrives or `deadline`.
    public func wait(until deadline: ContinuousClock.Instant) -> Winner? {
        while true {
            if let w = prompt.withLock({ $0?.winner }) { return w }
            if ContinuousClock.now >= deadline { return nil }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}

/// Runs the shopper's screen: the HTTP server, fed with the agent's events, until shutdown.
struct ShopperScreenService: Service {
    let server: ShopperScreenServer
    let bus: EventBus
    let logger: Logger

    func run() async throws {
        let port = try await server.start()
        logger.notice("shopper screen listening", metadata: ["url": "http://\(server.configuration.host):\(port)/"])
        let stream = bus.subscribe(replay: true)
        let hub = server.hub
        await cancelWhenGracefulShutdown {
            for await event in stream { hub.ingest(event) }
        }
        await server.stop()
        logger.info("shopper screen stopped")
    }
}
