// Scripted terminal behaviour for tests and the demo: the terminal's side (played by the USB
// emulator over FunctionFS and by SimulatedTerminal in-process) and the agent's side that checks
// what a scenario must produce. One implementation for both, so the VM test and the unit tests
// exercise the same scenarios.
import KioskCore
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the scripted terminal does.
public enum TerminalScenario: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Sends PAYMENT_RESULT after the agent's first message; answers SHOW_PROMPT "confirmed".
    case payConfirm = "pay-confirm"
    /// As pay-confirm, but the shopper declines the prompt.
    case payDecline = "pay-decline"
    /// Sends PAYMENT_RESULT; ACKs SHOW_PROMPT but never answers it.
    case noAnswer = "no-answer"
    /// As pay-confirm, with random bytes on the line before and after each frame it sends.
    case garbage
    /// Sends a PAYMENT_RESULT carrying a full PAN (bypassing its own codec's refusal): the agent
    /// must refuse it.
    case fullPAN = "full-pan"
    /// Sends PAYMENT_RESULT; on SHOW_PROMPT it is unplugged (the emulator exits, which unbinds
    /// the USB gadget; the simulated cable is cut).
    case unplugMidExchange = "unplug-mid-exchange"
    /// Sends nothing by itself; answers PING, STATUS_REQUEST, DISPLAY_TEXT and SHOW_PROMPT
    /// (confirmed, after the emulated shopper's delay). For `kioskctl terminal test`.
    case echo
    /// Many checkouts with every answer, by payment number n (1-based): n % 5 == 0 declines,
    /// n % 7 == 0 answers "timed out" (as a terminal does when its prompt expires), n % 11 == 0
    /// never answers (the agent's own timeout closes it; the next payment follows after the
    /// prompt's timeout), all others confirm. For the agent's end-to-end runs.
    case mixed
    /// Sends payments but leaves every prompt to the kiosk's screen: it never answers SHOW_PROMPT;
    /// the next DISPLAY_TEXT (the agent replacing the prompt after the screen's answer or its own
    /// timeout) ends the prompt and the next payment follows the interval after the last text
    /// shown (liveness guidance and the reference push it back). For the shopper-screen browser tests.
    case screen

    /// What a `mixed` terminal does with the prompt of payment `n`.
    public static func mixedAnswer(forPayment n: Int) -> PromptOutcome? {
        if n % 5 == 0 { return .declined }
        if n % 7 == 0 { return .timedOut }
        if n % 11 == 0 { return nil }
        return .confirmed(buttonIndex: 0)
    }

    public var description: String { rawValue }

    /// Whether the terminal starts a payment by itself.
    public var sendsPayment: Bool { self != .echo }
}

/// Knobs of a scripted terminal.
public struct TerminalScenarioOptions: Sendable {
    /// What PONG says (the serial should match the USB iSerialNumber).
    public var info: TerminalInfo
    /// How many payments a paying scenario plays (one after another; 0 = none).
    public var payments: Int
    /// How long after a payment the terminal waits for the kiosk's prompt before it treats the
    /// payment as done without an offer (not eligible, offers suspended) and plays the next one.
    /// Long by default: on a starved host a kiosk may take seconds to prompt, and a terminal that
    /// moved on too early would pay again in the middle of the kiosk's checkout.
    public var offerWait: Duration = .seconds(60)
    /// How long the emulated shopper takes to answer a prompt.
    public var promptDelay: Duration
    /// Pause before the first payment (after the kiosk's first message) and between a prompt's
    /// answer and the next payment.
    public var paymentInterval: Duration
    /// The amount of each payment, in minor units.
    public var amountMinor: Int64
    public var currency: String

    public init(
        info: TerminalInfo = TerminalInfo(serial: "EMU-0001", firmware: "emulator-1", model: "kiosk-emulated-terminal"),
        payments: Int = 1, promptDelay: Duration = .zero, paymentInterval: Duration = .milliseconds(100),
        amountMinor: Int64 = 129_900, currency: String = "CNY"
    ) {
        self.info = info
        self.payments = payments
        self.promptDelay = promptDelay
        self.paymentInterval = paymentInterval
        self.amountMinor = amountMinor
        self.currency = currency
    }

    /// The card number of the full-pan scenario (a well-known test PAN, Luhn-valid).
    public static let testFullPAN = "4111111111111111"
}

// MARK: - Terminal side

/// Plays a scenario on the terminal's side of a link, one connection (session) at a time; the
/// counters (payments played) carry over from one session to the next.
public final class TerminalScenarioPlayer: Sendable {
    /// How a session ended.
    public enum SessionEnd: Sendable, Equatable {
        /// The link went down (unplug, unbind, cable cut); a new session may follow.
        case disconnected
        /// The scenario unplugged itself (``TerminalScenario/unplugMidExchange``).
        case unplugged
        /// `shouldStop` said so.
        case stopped
        /// The link failed otherwise.
        case failed(String)
    }

    public let scenario: TerminalScenario
    public let options: TerminalScenarioOptions
    private let note: @Sendable (String) -> Void
    private let paymentsPlayed = Atomic<Int>(0)

    /// - Parameter note: called with a line for each thing the terminal does (the emulator prints
    ///   them; tests read them).
    public init(scenario: TerminalScenario, options: TerminalScenarioOptions = .init(), note: @escaping @Sendable (String) -> Void) {
        self.scenario = scenario
        self.options = options
        self.note = note
    }

    /// Payments sent so far (all sessions).
    public var paymentsSent: Int { paymentsPlayed.load(ordering: .relaxed) }

    /// Plays one session on `link`. `raw` is the transport under the link (garbage and the
    /// full-PAN frame go there directly); `unplug` cuts the connection.
    public func play(link: TerminalLink, raw: any TerminalTransport, unplug: @Sendable () -> Void, shouldStop: () -> Bool,
                     alreadyContacted: Bool = false) -> SessionEnd {
        var contacted = alreadyContacted
        var awaitingPrompt = false
        var nextPaymentAt: UInt64 = 0
        var pendingAnswer: (requestID: UInt32, outcome: PromptOutcome, due: UInt64)?
        var promptLeftToScreen = false
        // Whether the kiosk showed a prompt for the payment in progress, and until when it may.
        var promptSeen = false
        var offerDeadline: UInt64 = 0
        if scenario == .screen {
            // The first payment also waits an interval: the kiosk's page attaches meanwhile.
            nextPaymentAt = monotonicNanos() + options.paymentInterval.clampedNanos
        }
        var rng = SystemRandomNumberGenerator()

        func garbage() {
            guard scenario == .garbage else { return }
            // Random bytes, but no ACK/NAK: a lone ACK byte is, by the protocol's design, an ACK.
            let bytes = (0..<Int.random(in: 1...24, using: &rng)).map { _ in
                var b = UInt8.random(in: 0...255, using: &rng)
                while b == FrameByte.ack || b == FrameByte.nak { b = UInt8.random(in: 0...255, using: &rng) }
                return b
            }
            do {
                try raw.write(bytes, timeout: .seconds(1))
                note("sent \(bytes.count) garbage bytes")
            } catch {
                note("garbage write failed: \(error)")
            }
        }

        func send(_ message: TerminalMessage, requestID: UInt32) throws {
            garbage()
            try link.send(TerminalEnvelope(requestID: requestID, message: message))
            garbage()
        }

        do {
            while true {
                if shouldStop() { return .stopped }
                let now = monotonicNanos()
                if let answer = pendingAnswer, now >= answer.due {
                    pendingAnswer = nil
                    try send(.promptResult(answer.outcome), requestID: answer.requestID)
                    note("answered SHOW_PROMPT request_id \(answer.requestID): \(answer.outcome)")
                    awaitingPrompt = false
                    nextPaymentAt = monotonicNanos() + options.paymentInterval.clampedNanos
                }
                if contacted, scenario.sendsPayment, !awaitingPrompt, pendingAnswer == nil,
                   paymentsPlayed.load(ordering: .relaxed) < options.payments, now >= nextPaymentAt {
                    try sendPayment(link: link, raw: raw, send: send)
                    awaitingPrompt = true
                    promptSeen = false
                    offerDeadline = monotonicNanos() + options.offerWait.clampedNanos
                }
                if awaitingPrompt, !promptSeen, !promptLeftToScreen, pendingAnswer == nil, now >= offerDeadline, offerDeadline > 0 {
                    // No offer for this payment (not eligible, offers suspended): a terminal does
                    // not wait for the kiosk forever; the next shopper pays. Found by the chaos
                    // campaign: a terminal waiting for a prompt that never came stalled the run.
                    note("payment \(paymentsPlayed.load(ordering: .relaxed)): no offer within \(options.offerWait); next payment")
                    awaitingPrompt = false
                    offerDeadline = 0
                    nextPaymentAt = now + options.paymentInterval.clampedNanos
                }
                guard let envelope = try receive(link) else { continue }
                if !contacted {
                    // The first payment also waits an interval after the kiosk's first message
                    // (a kiosk's camera and screen come up in that time).
                    nextPaymentAt = monotonicNanos() + options.paymentInterval.clampedNanos
                }
                contacted = true
                let id = envelope.requestID
                switch envelope.message {
                case .ping:
                    try send(.pong(options.info), requestID: id)
                case .statusRequest:
                    try send(.status(TerminalStatus(state: awaitingPrompt ? .busy : .ready, text: awaitingPrompt ? "payment in progress" : "")), requestID: id)
                case .displayText(let text, let seconds):
                    note("display \"\(text)\" for \(seconds) s")
                    try send(.displayAck, requestID: id)
                    if promptLeftToScreen {
                        // The agent replaced the prompt: answered on the screen, or timed out.
                        promptLeftToScreen = false
                        awaitingPrompt = false
                        nextPaymentAt = monotonicNanos() + options.paymentInterval.clampedNanos
                    } else if scenario == .screen, !awaitingPrompt, pendingAnswer == nil {
                        // The shopper is still at the kiosk (liveness guidance, the reference): the
                        // next one pays an interval after the last text, however long the check took.
                        nextPaymentAt = monotonicNanos() + options.paymentInterval.clampedNanos
                    }

                case .showPrompt(let prompt):
                    promptSeen = true
                    note("SHOW_PROMPT request_id \(id): \"\(prompt.text)\" [\(prompt.buttons.joined(separator: "|"))]")
                    switch scenario {
                    case .noAnswer:
                        note("not answering the prompt (scenario no-answer)")
                    case .screen:
                        note("leaving the prompt to the kiosk's screen (scenario screen)")
                        promptLeftToScreen = true
                    case .unplugMidExchange:
                        note("UNPLUG in the middle of the prompt")
                        unplug()
                        return .unplugged
                    case .payDecline:
                        pendingAnswer = (id, .declined, monotonicNanos() + options.promptDelay.clampedNanos)
                    case .payConfirm, .garbage, .fullPAN, .echo:
                        pendingAnswer = (id, .confirmed(buttonIndex: 0), monotonicNanos() + options.promptDelay.clampedNanos)
                    case .mixed:
                        let n = paymentsPlayed.load(ordering: .relaxed)
                        if let outcome = TerminalScenario.mixedAnswer(forPayment: n) {
                            pendingAnswer = (id, outcome, monotonicNanos() + options.promptDelay.clampedNanos)
                        } else {
                            note("payment \(n): not answering the prompt (scenario mixed)")
                            awaitingPrompt = false
                            nextPaymentAt = monotonicNanos() + UInt64(prompt.timeoutSeconds) * 1_000_000_000 + 1_000_000_000
                        }
                    }
                case .paymentResult, .pong, .promptResult, .displayAck, .status:
                    note("ignored \(envelope.message.type) from the agent")
                }
            }
        } catch LinkError.disconnected {
            note("link disconnected")
            return .disconnected
        } catch LinkError.closed {
            return .stopped
        } catch {
            note("link failed: \(error)")
            return .failed("\(error)")
        }
    }

    /// The next request from the agent; refused messages are noted and skipped.
    private func receive(_ link: TerminalLink) throws -> TerminalEnvelope? {
        do {
            return try link.receive(timeout: .milliseconds(20))
        } catch {
            // (A `catch .refused(...)` clause over the typed LinkError crashes Swift 6.3's SILGen.)
            guard case .refused(let refusal, let id) = error else { throw error }
            note("refused a message from the agent (request_id \(id.map(String.init) ?? "-")): \(refusal)")
            return nil
        }
    }

    /// The emulated terminal's transaction ref for payment `n`: "EMU-TX-n-" and 8 random capital
    /// letters. Transaction refs carry no long digit runs: the payment
    /// number and 10 random digits once made 14 digits that passed Luhn, and the PCI guard (rightly)
    /// refused the terminal's own message (found by the chaos campaign at payment 1012).
    public static func transactionRef(payment n: Int) -> String {
        "EMU-TX-\(n)-" + String((0..<8).map { _ in Character(UnicodeScalar(UInt8.random(in: 65...90))) })
    }

    /// Sends the next payment; it counts as played once it is on the wire. A send that fails (the
    /// cable pulled mid-frame) leaves the count alone, so the next session pays it again, as a
    /// terminal holds a result until the kiosk has it: counting it first lost a payment whenever an
    /// unplug met a send (a clean-clone `make test` saw 99 of 100 payments played).
    private func sendPayment(link: TerminalLink, raw: any TerminalTransport, send: (TerminalMessage, UInt32) throws -> Void) throws {
        let n = paymentsPlayed.load(ordering: .relaxed) + 1
        do {
            try sendPayment(n, link: link, raw: raw, send: send)
        } catch {
            note("payment \(n): PAYMENT_RESULT not delivered (\(error)); sent again in the next session")
            throw error
        }
        paymentsPlayed.add(1, ordering: .relaxed)
    }

    private func sendPayment(_ n: Int, link: TerminalLink, raw: any TerminalTransport, send: (TerminalMessage, UInt32) throws -> Void) throws {
        let id = link.nextRequestID()
        var payment = TerminalPayment(
            transactionRef: Self.transactionRef(payment: n), amountMinor: options.amountMinor, currency: options.currency,
            maskedPAN: "411111******1111", token: "tok_emu_\(n)", approvalCode: "A\(100_000 + n)", time: "2026-11-23T10:15:00+08:00")
        if scenario == .fullPAN {
            // What a misconfigured terminal might do. Our own codec refuses to encode it, so the
            // frame is built without validation and written under the link.
            payment.maskedPAN = TerminalScenarioOptions.testFullPAN
            let payload = try MessageCodec.encode(TerminalEnvelope(requestID: id, message: .paymentResult(payment)), validate: false)
            try raw.write(try FrameCodec.encode(payload: payload), timeout: .seconds(1))
            note("sent PAYMENT_RESULT request_id \(id) with a FULL PAN (must be refused)")
            return
        }
        try send(.paymentResult(payment), id)
        note("sent PAYMENT_RESULT request_id \(id) \(payment.transactionRef) \(payment.amountMinor) \(payment.currency)")
    }
}

// MARK: - In-process simulated terminal

/// A scripted terminal in-process: a ``TerminalScenarioPlayer`` on its own thread at one end of
/// a ``SimulatedTransport`` cable; the agent's side uses ``hostTransport``.
public final class SimulatedTerminal: Sendable {
    /// The agent's end of the cable.
    public let hostTransport: SimulatedTransport
    public let player: TerminalScenarioPlayer
    private let shared = Shared()
    private let thread: Mutex<USBThread?>

    private final class Shared: Sendable {
        let stop = Atomic<Bool>(false)
        let lines = Mutex<[String]>([])
        let ended = Mutex<TerminalScenarioPlayer.SessionEnd?>(nil)
        let restarts = Atomic<Int>(0)
    }

    /// Starts the terminal's thread.
    public init(scenario: TerminalScenario, options: TerminalScenarioOptions = .init(), logger: Logger) throws {
        let (host, terminal) = SimulatedTransport.pair()
        let shared = self.shared
        let player = TerminalScenarioPlayer(scenario: scenario, options: options) { line in
            shared.lines.withLock { $0.append(line) }
        }
        let thread = try USBThread(name: "sim-terminal") {
            // A session that fails (an ACK lost to a starved host, say) is followed by a new one,
            // as a real terminal re-syncs its link; the payments played carry over. Found by the
            // chaos campaign: a terminal that went silent for good stalled the agent's checkouts.
            var restarted = false
            while true {
                let link = TerminalLink(transport: terminal, configuration: LinkConfiguration(), logger: logger)
                // A new session after a failed one goes on paying: the kiosk already made contact.
                let end = player.play(link: link, raw: terminal, unplug: { terminal.unplug() }, shouldStop: { shared.stop.load(ordering: .relaxed) },
                                      alreadyContacted: restarted)
                restarted = true
                link.close()
                shared.ended.withLock { $0 = end }
                guard case .failed(let why) = end, !shared.stop.load(ordering: .relaxed) else { break }
                shared.restarts.add(1, ordering: .relaxed)
                logger.warning("simulated terminal: session failed; starting a new one", metadata: ["error": "\(why)"])
                var pause = timespec(tv_sec: 0, tv_nsec: 200_000_000)
                _ = nanosleep(&pause, nil)
            }
        }
        hostTransport = host
        self.player = player
        self.thread = Mutex(thread)
    }

    deinit {
        stop()
    }

    /// What the terminal did, one line per action.
    public var transcript: [String] { shared.lines.withLock { $0 } }

    /// How many failed sessions were followed by a new one.
    public var sessionRestarts: Int { shared.restarts.load(ordering: .relaxed) }

    /// How the terminal's session ended (nil while it runs).
    public var sessionEnd: TerminalScenarioPlayer.SessionEnd? { shared.ended.withLock { $0 } }

    /// Stops the terminal's thread and waits for it. Idempotent.
    public func stop() {
        shared.stop.store(true, ordering: .relaxed)
        thread.withLock { t -> USBThread? in defer { t = nil }; return t }?.join()
    }
}

// MARK: - Agent side

/// A scenario did not produce what it must.
public struct TerminalScenarioCheckFailure: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The agent's side of each scenario, for tests over any transport (SimulatedTerminal in unit
/// tests, the USB emulator in the VM): what the agent does and what it must observe.
public enum TerminalScenarioCheck {
    /// The prompt the agent shows after a payment.
    public static let creditPrompt = Prompt(text: "Pay in 12 instalments of 108.25 CNY?", buttons: ["Yes", "No"], timeoutSeconds: 60)

    /// Plays the agent's side against a terminal running `scenario` with `options`; returns a
    /// one-line summary, throws ``TerminalScenarioCheckFailure`` when the terminal (or the link)
    /// did not behave as the scenario says.
    public static func run(
        _ scenario: TerminalScenario, options: TerminalScenarioOptions = .init(), link: TerminalLink,
        answerTimeout: Duration = .seconds(5), noAnswerTimeout: Duration = .milliseconds(800)
    ) throws -> String {
        let pong = try link.request(.ping, timeout: answerTimeout)
        guard case .pong(let info) = pong.message else { throw TerminalScenarioCheckFailure("PING answered with \(pong.message.type)") }
        guard info == options.info else { throw TerminalScenarioCheckFailure("PONG says \(info), expected \(options.info)") }

        switch scenario {
        case .echo:
            let status = try link.request(.statusRequest, timeout: answerTimeout)
            guard case .status(let s) = status.message, s.state == .ready else { throw TerminalScenarioCheckFailure("STATUS_REQUEST answered with \(status.message)") }
            let ack = try link.request(.displayText(text: "Welcome", seconds: 3), timeout: answerTimeout)
            guard ack.message == .displayAck else { throw TerminalScenarioCheckFailure("DISPLAY_TEXT answered with \(ack.message.type)") }
            let outcome = try prompt(link, timeout: answerTimeout)
            guard outcome == .confirmed(buttonIndex: 0) else { throw TerminalScenarioCheckFailure("prompt outcome \(outcome), expected confirmed") }
            return "echo: PONG from \(info.serial), STATUS ready, DISPLAY_ACK, prompt confirmed"

        case .payConfirm, .payDecline, .garbage, .mixed:
            var refs: [String] = []
            for n in 1...max(options.payments, 1) where n <= options.payments {
                let expected: PromptOutcome?
                switch scenario {
                case .payDecline: expected = .declined
                case .mixed: expected = TerminalScenario.mixedAnswer(forPayment: n)
                default: expected = .confirmed(buttonIndex: 0)
                }
                let payment = try awaitPayment(link, timeout: answerTimeout)
                refs.append(payment.transactionRef)
                guard let expected else {
                    // The mixed terminal stays silent on this one: the agent's own timeout ends it.
                    do {
                        let answer = try link.request(.showPrompt(Prompt(text: creditPrompt.text, buttons: creditPrompt.buttons, timeoutSeconds: 1)),
                                                      timeout: noAnswerTimeout)
                        throw TerminalScenarioCheckFailure("payment \(n): the prompt was answered (\(answer.message)) but must not be")
                    } catch LinkError.responseTimeout {
                        continue
                    }
                }
                let outcome = try prompt(link, timeout: answerTimeout)
                guard outcome == expected else { throw TerminalScenarioCheckFailure("payment \(n): prompt outcome \(outcome), expected \(expected)") }
            }
            guard Set(refs).count == refs.count else { throw TerminalScenarioCheckFailure("a payment arrived twice: \(refs)") }
            return "\(scenario): \(refs.count) payment(s) (\(options.amountMinor) \(options.currency)), prompts answered as the scenario says"

        case .screen:
            _ = try awaitPayment(link, timeout: answerTimeout)
            do {
                let answer = try link.request(.showPrompt(creditPrompt), timeout: noAnswerTimeout)
                throw TerminalScenarioCheckFailure("the prompt was answered (\(answer.message)) but must be left to the screen")
            } catch LinkError.responseTimeout {
                let ack = try link.request(.displayText(text: "Accepted on the screen", seconds: 3), timeout: answerTimeout)
                guard ack.message == .displayAck else { throw TerminalScenarioCheckFailure("DISPLAY_TEXT answered with \(ack.message.type)") }
                return "screen: prompt left unanswered, DISPLAY_TEXT ends it"
            }

        case .noAnswer:
            _ = try awaitPayment(link, timeout: answerTimeout)
            do {
                let answer = try link.request(.showPrompt(creditPrompt), timeout: noAnswerTimeout)
                throw TerminalScenarioCheckFailure("the prompt was answered (\(answer.message)) but the terminal must stay silent")
            } catch LinkError.responseTimeout {
                // The link stays usable after an unanswered request.
                guard case .pong = try link.request(.ping, timeout: answerTimeout).message else { throw TerminalScenarioCheckFailure("no PONG after the timeout") }
                return "no-answer: prompt timed out after \(noAnswerTimeout), link still answers PING"
            }

        case .fullPAN:
            do {
                let envelope = try link.receive(timeout: answerTimeout)
                throw TerminalScenarioCheckFailure("a payment with a full PAN was accepted: \(envelope.map { "\($0.message.type)" } ?? "nothing arrived")")
            } catch LinkError.refused(let error, _) where error.isPCIRefusal {
                let text = "\(error)"
                guard !text.contains(TerminalScenarioOptions.testFullPAN) else { throw TerminalScenarioCheckFailure("the refusal shows the PAN in clear") }
                guard case .pong = try link.request(.ping, timeout: answerTimeout).message else { throw TerminalScenarioCheckFailure("no PONG after the refusal") }
                return "full-pan: refused (\(text)), link still answers PING"
            }

        case .unplugMidExchange:
            _ = try awaitPayment(link, timeout: answerTimeout)
            do {
                let answer = try link.request(.showPrompt(creditPrompt), timeout: answerTimeout)
                throw TerminalScenarioCheckFailure("the prompt was answered (\(answer.message.type)) but the terminal must be unplugged")
            } catch LinkError.disconnected {
                return "unplug-mid-exchange: the prompt ended with LinkError.disconnected"
            }
        }
    }

    private static func awaitPayment(_ link: TerminalLink, timeout: Duration) throws -> Payment {
        guard let envelope = try link.receive(timeout: timeout) else { throw TerminalScenarioCheckFailure("no PAYMENT_RESULT within \(timeout)") }
        guard case .paymentResult(let p) = envelope.message else { throw TerminalScenarioCheckFailure("expected PAYMENT_RESULT, got \(envelope.message.type)") }
        return p.payment()
    }

    private static func prompt(_ link: TerminalLink, timeout: Duration) throws -> PromptOutcome {
        let answer = try link.request(.showPrompt(creditPrompt), timeout: timeout)
        guard case .promptResult(let outcome) = answer.message else { throw TerminalScenarioCheckFailure("SHOW_PROMPT answered with \(answer.message.type)") }
        return outcome
    }
}
