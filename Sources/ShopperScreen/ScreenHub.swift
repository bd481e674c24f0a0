import Foundation
import KioskCore
import Synchronization

/// What the shopper's screen shows, derived from the agent's checkout events.
public enum ScreenPhase: String, Sendable, Codable, CaseIterable {
    /// Nothing going on: the attract screen.
    case idle
    /// A payment is being checked for eligibility.
    case checking
    /// An offer (and its consent text) waits for the shopper's answer.
    case offer
    /// The face-liveness check runs: guidance on screen.
    case liveness
    /// The checkout ended: application reference or a reason.
    case result
}

/// The screen's state, sent to the page as JSON on every change.
public struct ScreenState: Sendable, Equatable {
    /// Which screen.
    public var phase: ScreenPhase = .idle
    /// The checkout shown (nil on idle).
    public var checkoutID: String?
    /// The consent prompt's request id (the answer must carry it).
    public var requestID: UInt32?
    /// Purchase amount in minor units.
    public var amountMinor: Int64?
    /// ISO 4217 currency.
    public var currency: String?
    /// Instalment plans offered.
    public var plans: [InstalmentPlan] = []
    /// The consent text's id and version offered.
    public var consentID: String?
    /// The consent text's version.
    public var consentVersion: String?
    /// The current liveness challenge ("blink", "turn_left", "come_closer", or free text).
    public var challenge: String?
    /// Liveness quality hints ("more_light", "face_camera", …).
    public var hints: [String] = []
    /// Whether the camera liveness step drives the guidance (its `liveness` events name the
    /// challenge and hints; the runner's English `liveness_guidance` texts are then ignored).
    public var cameraGuided = false
    /// The final outcome: the checkout's final state (completed, declined, timed_out, …).
    public var outcome: String?
    /// The short application reference, when an application was made.
    public var reference: String?
    /// Which surface captured the answer, when known.
    public var answeredOn: String?
    /// Seconds the result stays before the page returns to idle.
    public var resultSeconds: Int = 15
    /// The hub's change counter.
    public var revision: Int = 0

    /// The JSON the page receives (no masked PAN, no token: nothing that identifies the shopper).
    public var json: Data {
        var o: [String: Any] = ["phase": phase.rawValue, "revision": revision, "result_seconds": resultSeconds]
        if let checkoutID { o["checkout_id"] = checkoutID }
        if let requestID { o["request_id"] = requestID }
        if let amountMinor { o["amount_minor"] = amountMinor }
        if let currency { o["currency"] = currency }
        if !plans.isEmpty {
            o["plans"] = plans.map { ["months": $0.months, "monthly_minor": $0.monthlyMinor, "last_month_minor": $0.lastMonthMinor,
                                      "fee_minor": $0.feeMinor, "total_minor": $0.totalMinor] }
        }
        if let consentID { o["consent_id"] = consentID }
        if let consentVersion { o["consent_version"] = consentVersion }
        if let challenge { o["challenge"] = challenge }
        if !hints.isEmpty { o["hints"] = hints }
        if let outcome { o["outcome"] = outcome }
        if let reference { o["reference"] = reference }
        if let answeredOn { o["answered_on"] = answeredOn }
        return (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data("{\"phase\":\"idle\"}".utf8)
    }
}

/// Turns the agent's event stream (``KioskAgent/EventBus`` JSON objects) into ``ScreenState``s and
/// fans them out to the connected pages.
///
/// Thread-safe; ``ingest(_:)`` is called for every bus event, listeners get each new state.
/// A result older than `resultSeconds` reads as idle, so a page that (re)connects after the
/// timeout shows no personal data.
public final class ScreenHub: Sendable {
    private struct Inner {
        var state = ScreenState()
        var resultAt: ContinuousClock.Instant?
        var listeners: [Int: @Sendable (Data) -> Void] = [:]
        var next = 0
        var lastAttach: ContinuousClock.Instant?
    }
    private let inner = Mutex(Inner())
    private let calculator: InstalmentCalculator
    private let resultSeconds: Int

    /// Creates a hub computing offers with `calculator`; results stay `resultSeconds`.
    public init(calculator: InstalmentCalculator = InstalmentCalculator(), resultSeconds: Int = 15) {
        self.calculator = calculator
        self.resultSeconds = resultSeconds
    }

    /// The state now (idle once a result has timed out).
    public var current: ScreenState {
        inner.withLock { s in
            if s.state.phase == .result, let at = s.resultAt, ContinuousClock.now - at >= .seconds(resultSeconds) {
                s.state = ScreenState(resultSeconds: resultSeconds, revision: s.state.revision + 1)
                s.resultAt = nil
            }
            var st = s.state
            st.resultSeconds = resultSeconds
            return st
        }
    }

    /// Number of pages listening.
    public var listenerCount: Int { inner.withLock { $0.listeners.count } }

    /// Whether a page is attached: one is listening now, or one was within `within`.
    public func isAttached(within: Duration = .seconds(5)) -> Bool {
        inner.withLock { s in
            if !s.listeners.isEmpty { return true }
            guard let at = s.lastAttach else { return false }
            return ContinuousClock.now - at < within
        }
    }

    /// Adds a listener; returns its id (for ``removeListener(_:)``). It first receives the current state.
    public func addListener(_ send: @escaping @Sendable (Data) -> Void) -> Int {
        let state = current
        let id = inner.withLock { s -> Int in
            s.next += 1
            s.listeners[s.next] = send
            s.lastAttach = ContinuousClock.now
            return s.next
        }
        send(state.json)
        return id
    }

    /// Removes a listener.
    public func removeListener(_ id: Int) {
        inner.withLock { s in
            if s.listeners.removeValue(forKey: id) != nil { s.lastAttach = ContinuousClock.now }
        }
    }

    /// Removes every listener (shutdown).
    public func removeAllListeners() { inner.withLock { $0.listeners = [:] } }

    /// Applies one bus event (a JSON object); unrelated events are ignored.
    public func ingest(_ data: Data) {
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let kind = o["event"] as? String else { return }
        var notify: (Data, [@Sendable (Data) -> Void])?
        inner.withLock { s in
            guard let next = reduce(s.state, kind: kind, o) else { return }
            var n = next
            n.revision = s.state.revision + 1
            n.resultSeconds = resultSeconds
            if n.phase == .result, s.state.phase != .result || s.state.checkoutID != n.checkoutID { s.resultAt = ContinuousClock.now }
            if n.phase == .result, s.state.phase == .result { s.resultAt = s.resultAt ?? ContinuousClock.now }
            s.state = n
            notify = (n.json, Array(s.listeners.values))
        }
        if let (json, listeners) = notify { listeners.forEach { $0(json) } }
    }

    /// The next state for an event, or nil when the event changes nothing.
    func reduce(_ s: ScreenState, kind: String, _ o: [String: Any]) -> ScreenState? {
        switch kind {
        case "checkout":
            guard let id = o["checkout_id"] as? String, let state = o["state"] as? String else { return nil }
            var n = s.checkoutID == id ? s : ScreenState()
            n.checkoutID = id
            n.amountMinor = (o["amount_minor"] as? NSNumber)?.int64Value ?? n.amountMinor
            n.currency = o["currency"] as? String ?? n.currency
            if let rid = (o["request_id"] as? NSNumber)?.uint32Value { n.requestID = rid }
            if let c = o["consent"] as? [String: Any] {
                n.consentID = c["id"] as? String
                n.consentVersion = c["version"] as? String
            }
            if let m = o["method"] as? String { n.answeredOn = m }
            switch state {
            case "payment_received": n.phase = .checking
            case "consent_shown":
                n.phase = .offer
                n.plans = calculator.plans(amountMinor: n.amountMinor ?? 0)
            case "confirmed": n.phase = .liveness
            case "enqueued", "completed":
                n.phase = .result
                n.outcome = "completed"
                if let app = o["application_id"] as? String { n.reference = Self.shortReference(app) }
            default:
                guard o["final"] as? Bool == true else { return nil }
                // A checkout that ends with nothing shown (ineligible) leaves the screen idle.
                if state == "ineligible" { return s.checkoutID == nil || s.phase == .idle ? nil : ScreenState() }
                n.phase = .result
                n.outcome = state
            }
            if n.phase != .liveness { n.challenge = nil; n.hints = []; n.cameraGuided = false }
            return n
        case "liveness":
            // The camera liveness step: "started" names the challenge, "guidance" a quality hint.
            guard s.phase == .liveness || s.phase == .offer, o["checkout_id"] as? String == s.checkoutID else { return nil }
            var n = s
            n.phase = .liveness
            switch o["state"] as? String {
            case "started":
                n.challenge = o["challenge"] as? String ?? n.challenge
                n.hints = []
                n.cameraGuided = true
            case "guidance":
                guard let g = o["guidance"] as? String else { return nil }
                n.cameraGuided = true
                if Self.challengeActions.contains(g) {
                    // The face is well placed: the instruction is the challenge itself.
                    n.challenge = g
                    n.hints = []
                } else if g == "done" {
                    n.hints = []
                } else {
                    n.hints = [g]
                }
            default: return nil
            }
            return n
        case "liveness_guidance":
            guard s.phase == .liveness || s.phase == .offer, !s.cameraGuided else { return nil }
            if let id = o["checkout_id"] as? String, id != s.checkoutID { return nil }
            var n = s
            n.phase = .liveness
            n.challenge = (o["challenge"] as? String ?? (o["text"] as? String).map(Self.challengeKey)) ?? n.challenge
            n.hints = o["hints"] as? [String] ?? []
            return n
        default:
            return nil
        }
    }

    /// Guidance values of the camera step that are the challenge's own action, not a quality hint.
    static let challengeActions: Set<String> = ["blink", "turn_left", "turn_right", "move_closer"]

    /// The page's key for a guidance text the liveness step sends in English ("Blink" → "blink");
    /// other texts pass through as they are.
    public static func challengeKey(_ text: String) -> String {
        let known = ["look at the camera": "look", "blink": "blink", "turn left": "turn_left", "turn your head left": "turn_left",
                     "turn right": "turn_right", "turn your head right": "turn_right", "come closer": "come_closer",
                     "more light": "more_light", "face the camera": "face_camera", "hold still": "hold_still"]
        return known[text.lowercased().trimmingCharacters(in: .whitespacesAndNewlines.union(.punctuationCharacters))] ?? text
    }

    /// The last 8 characters of an application id, grouped for reading aloud (as on the terminal).
    public static func shortReference(_ id: String) -> String {
        let tail = String(id.replacingOccurrences(of: "-", with: "").suffix(8)).uppercased()
        return tail.prefix(4) + "-" + tail.suffix(4)
    }
}
