import Foundation

/// Rules deciding whether a payment may be offered instalment credit.
public struct EligibilityRules: Codable, Sendable, Equatable {
    /// Smallest amount offered, in minor units.
    public var minAmountMinor: Int64
    /// Largest amount offered, in minor units.
    public var maxAmountMinor: Int64
    /// ISO 4217 currencies offered.
    public var currencies: Set<String>
    /// Merchants offered; nil means every merchant.
    public var merchants: Set<String>?
    /// Seconds before the same payment token may be offered again.
    public var cooldownSeconds: TimeInterval

    /// Creates rules; the defaults suit the demo.
    public init(minAmountMinor: Int64 = 10_000, maxAmountMinor: Int64 = 5_000_000, currencies: Set<String> = ["CNY"],
                merchants: Set<String>? = nil, cooldownSeconds: TimeInterval = 86_400) {
        self.minAmountMinor = minAmountMinor
        self.maxAmountMinor = maxAmountMinor
        self.currencies = currencies
        self.merchants = merchants
        self.cooldownSeconds = cooldownSeconds
    }

    /// Why a payment is not eligible, or nil when it is.
    public func refusal(for payment: Payment, merchantID: String, lastOfferForToken: Date?, now: Date) -> String? {
        if !currencies.contains(payment.currency) { return "currency \(payment.currency) not offered" }
        if payment.amountMinor < minAmountMinor { return "amount below \(minAmountMinor) minor units" }
        if payment.amountMinor > maxAmountMinor { return "amount above \(maxAmountMinor) minor units" }
        if let merchants, !merchants.contains(merchantID) { return "merchant \(merchantID) not enrolled" }
        if let last = lastOfferForToken, now.timeIntervalSince(last) < cooldownSeconds {
            return "payment token offered \(Int(now.timeIntervalSince(last))) s ago (cool-down \(Int(cooldownSeconds)) s)"
        }
        return nil
    }
}

/// The exact consent text shown to the shopper, identified and hashed.
public struct ConsentText: Codable, Sendable, Equatable {
    /// Identifier of the text.
    public var id: String
    /// Version of the text.
    public var version: String
    /// Language (BCP 47).
    public var language: String
    /// The text itself, exactly as shown.
    public var text: String
    /// SHA-256 (lowercase hex) of the text's UTF-8 bytes.
    public var sha256: String { sha256Hex(Data(text.utf8)) }

    /// Creates a consent text.
    public init(id: String, version: String, language: String, text: String) {
        self.id = id
        self.version = version
        self.language = language
        self.text = text
    }
}

/// Where a checkout stands. The last six are final.
public enum CheckoutState: String, Codable, Sendable, CaseIterable {
    /// The terminal reported a payment.
    case paymentReceived = "payment_received"
    /// The consent prompt is shown; waiting for the shopper.
    case consentShown = "consent_shown"
    /// The shopper confirmed; the liveness check runs.
    case confirmed
    /// The application is in the outbox (durably); the reference is being shown.
    case enqueued
    /// Done: the shopper saw the application reference.
    case completed
    /// The payment was not eligible; nothing was offered.
    case ineligible
    /// The shopper declined.
    case declined
    /// The shopper did not answer in time.
    case timedOut = "timed_out"
    /// The liveness check failed or was inconclusive; no application.
    case livenessFailed = "liveness_failed"
    /// Interrupted (power cut, terminal lost); closed without an application.
    case abandoned

    /// Whether no event changes this state any more.
    public var isFinal: Bool {
        switch self {
        case .completed, .ineligible, .declined, .timedOut, .livenessFailed, .abandoned: return true
        default: return false
        }
    }
}

/// One checkout at the kiosk, from the payment to the application reference.
public struct Checkout: Codable, Sendable, Equatable {
    /// One recorded transition.
    public struct Transition: Codable, Sendable, Equatable {
        /// The state entered.
        public var state: CheckoutState
        /// When.
        public var at: Timestamp
        /// Why, for final states.
        public var reason: String?
    }
    /// Checkout id (time-ordered, like application ids).
    public var id: String
    /// Serial number of the terminal that reported the payment.
    public var terminalSerial: String
    /// The payment (masked PAN and token only).
    public var payment: Payment
    /// Current state.
    public var state: CheckoutState
    /// The consent text shown, once shown.
    public var consent: ConsentText?
    /// The terminal request id of the consent prompt: only its answer is accepted.
    public var promptRequestID: UInt32?
    /// When the text was shown.
    public var shownAt: Timestamp?
    /// When the shopper confirmed.
    public var confirmedAt: Timestamp?
    /// Which surface captured the confirmation.
    public var method: Authorization.Method?
    /// The liveness result, once known.
    public var liveness: LivenessResult?
    /// The application id, once enqueued.
    public var applicationID: String?
    /// Every transition, in order.
    public var history: [Transition]
    /// The instalment plan the shopper chose on the screen with the answer (nil: none chosen;
    /// absent from checkouts recorded by older agents).
    public var plan: ChosenPlan? = nil

    enum CodingKeys: String, CodingKey {
        case id, terminalSerial = "terminal_serial", payment, state, consent, promptRequestID = "prompt_request_id"
        case shownAt = "shown_at", confirmedAt = "confirmed_at", method, liveness, applicationID = "application_id", history, plan
    }
}

/// Something that happened to a checkout.
public enum CheckoutEvent: Sendable, Equatable {
    /// Eligibility was decided (the caller supplies the token's last offer time).
    case eligibilityChecked(lastOfferForToken: Date?, now: Date, at: Timestamp, suspended: String? = nil)
    /// The consent prompt was shown with this request id.
    case consentShown(ConsentText, requestID: UInt32, at: Timestamp)
    /// The terminal (or screen) answered a prompt.
    case promptAnswered(requestID: UInt32, answer: PromptAnswer, method: Authorization.Method, at: Timestamp)
    /// The shopper switched the displayed consent text to another language (same id and version)
    /// before answering: the text recorded (and hashed into the authorization) is the one shown.
    case consentLanguageChanged(ConsentText, requestID: UInt32, at: Timestamp)
    /// The shopper chose an instalment plan on the screen together with the answer to this
    /// prompt (recorded before the answer; it goes into the application).
    case planChosen(ChosenPlan, requestID: UInt32, at: Timestamp)
    /// The liveness check finished.
    case livenessCompleted(LivenessResult, at: Timestamp)
    /// The application was durably enqueued.
    case applicationEnqueued(id: String, at: Timestamp)
    /// The shopper was shown the application reference.
    case referenceShown(at: Timestamp)
    /// The checkout was interrupted.
    case abandoned(reason: String, at: Timestamp)
}

/// The shopper's answer to the consent prompt.
public enum PromptAnswer: String, Sendable, Equatable, Codable {
    /// Accepted.
    case confirmed
    /// Refused.
    case declined
    /// No answer in time.
    case timedOut = "timed_out"
}

/// What the caller must do after a transition.
public enum CheckoutEffect: Sendable, Equatable {
    /// Show the consent prompt (terminal or screen) with this text.
    case showConsent(ConsentText)
    /// Run the liveness check.
    case runLiveness
    /// Enqueue this application durably, then report `applicationEnqueued`.
    case enqueue(CreditApplication)
    /// Show the application reference to the shopper.
    case showReference(String)
    /// Tell the shopper why the checkout ended.
    case showMessage(String)
}

/// An event that does not fit the checkout's state.
public enum CheckoutError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The event is not valid in this state.
    case invalidTransition(from: CheckoutState, event: String)
    /// A prompt answer for another request id (a late answer after a timeout or reconnect).
    case staleAnswer(expected: UInt32?, received: UInt32)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .invalidTransition(from, event): return "event \(event) is not valid in state \(from.rawValue)"
        case let .staleAnswer(expected, received):
            return "prompt answer for request \(received) ignored (expecting \(expected.map(String.init) ?? "none"))"
        }
    }
}

/// The device context an application is built in.
public struct CheckoutContext: Sendable, Equatable {
    /// This kiosk's id.
    public var deviceID: String
    /// The merchant.
    public var merchantID: String
    /// Eligibility rules.
    public var rules: EligibilityRules
    /// The consent text offered.
    public var consent: ConsentText
    /// Whether a passed liveness check is required (false only where no camera is fitted).
    public var requireLiveness: Bool

    /// Creates a context.
    public init(deviceID: String, merchantID: String, rules: EligibilityRules, consent: ConsentText, requireLiveness: Bool = true) {
        self.deviceID = deviceID
        self.merchantID = merchantID
        self.rules = rules
        self.consent = consent
        self.requireLiveness = requireLiveness
    }
}

/// The checkout state machine: pure, no I/O. The caller persists every returned checkout
/// before carrying out its effects, so a restart resumes or closes it (``recover(_:at:)``).
///
/// Invariants: an `enqueue` effect is produced only after a confirmed consent (and a passed
/// liveness check when required), and the authorization in it is built from the checkout's own
/// record of the exact text shown; a prompt answer with another request id never changes a checkout.
public enum CheckoutMachine {
    /// Starts a checkout for a payment reported by a terminal.
    public static func start(payment: Payment, terminalSerial: String, at: Timestamp, id: String = ApplicationID.make()) -> Checkout {
        Checkout(id: id, terminalSerial: terminalSerial, payment: payment, state: .paymentReceived, consent: nil,
                 promptRequestID: nil, shownAt: nil, confirmedAt: nil, method: nil, liveness: nil, applicationID: nil,
                 history: [.init(state: .paymentReceived, at: at, reason: nil)])
    }

    /// Applies an event; returns the new checkout and the effects to carry out, in order.
    public static func apply(_ event: CheckoutEvent, to checkout: Checkout, context: CheckoutContext) throws(CheckoutError) -> (Checkout, [CheckoutEffect]) {
        var c = checkout
        func enter(_ s: CheckoutState, _ at: Timestamp, _ reason: String? = nil) {
            c.state = s
            c.history.append(.init(state: s, at: at, reason: reason))
        }
        switch (checkout.state, event) {
        case let (.paymentReceived, .eligibilityChecked(last, now, at, suspended)):
            // Offers suspended (e.g. the liveness camera is unavailable while liveness is
            // required): nothing is offered that could not become an application.
            if let suspended {
                enter(.ineligible, at, "offers suspended: \(suspended)")
                return (c, [])
            }
            if let why = context.rules.refusal(for: c.payment, merchantID: context.merchantID, lastOfferForToken: last, now: now) {
                enter(.ineligible, at, why)
                return (c, [])
            }
            return (c, [.showConsent(context.consent)])
        case let (.paymentReceived, .consentShown(text, requestID, at)):
            c.consent = text
            c.promptRequestID = requestID
            c.shownAt = at
            enter(.consentShown, at)
            return (c, [])
        case let (.consentShown, .consentLanguageChanged(text, requestID, _)):
            guard requestID == c.promptRequestID else { throw .staleAnswer(expected: c.promptRequestID, received: requestID) }
            guard let shown = c.consent, shown.id == text.id, shown.version == text.version else {
                throw .invalidTransition(from: c.state, event: "consentLanguageChanged to another text id or version")
            }
            c.consent = text
            return (c, [])
        case let (.consentShown, .planChosen(plan, requestID, _)):
            guard requestID == c.promptRequestID else { throw .staleAnswer(expected: c.promptRequestID, received: requestID) }
            guard plan.isConsistent(amountMinor: c.payment.amountMinor, currency: c.payment.currency) else {
                throw .invalidTransition(from: c.state, event: "planChosen with figures that do not add up to the payment")
            }
            c.plan = plan
            return (c, [])
        case let (.consentShown, .promptAnswered(requestID, answer, method, at)):
            guard requestID == c.promptRequestID else { throw .staleAnswer(expected: c.promptRequestID, received: requestID) }
            switch answer {
            case .declined:
                enter(.declined, at, "declined by the shopper")
                return (c, [.showMessage("declined")])
            case .timedOut:
                enter(.timedOut, at, "no answer in time")
                return (c, [.showMessage("timed_out")])
            case .confirmed:
                c.confirmedAt = at
                c.method = method
                enter(.confirmed, at)
                if context.requireLiveness { return (c, [.runLiveness]) }
                let result = LivenessResult(decision: .notPerformed, score: 0, checks: [])
                c.liveness = result
                return (c, [.enqueue(try application(for: c, liveness: result, context: context, at: at))])
            }
        case let (.confirmed, .livenessCompleted(result, at)):
            c.liveness = result
            guard result.decision == .pass else {
                enter(.livenessFailed, at, "liveness \(result.decision.rawValue)")
                return (c, [.showMessage("liveness_\(result.decision.rawValue)")])
            }
            return (c, [.enqueue(try application(for: c, liveness: result, context: context, at: at))])
        case let (.confirmed, .applicationEnqueued(id, at)):
            guard c.confirmedAt != nil, !context.requireLiveness || c.liveness?.decision == .pass else {
                throw .invalidTransition(from: c.state, event: "applicationEnqueued without a passed liveness check")
            }
            c.applicationID = id
            enter(.enqueued, at)
            return (c, [.showReference(id)])
        case let (.enqueued, .referenceShown(at)):
            enter(.completed, at)
            return (c, [])
        case let (state, .abandoned(reason, at)) where !state.isFinal:
            if state == .enqueued {
                // The application is safely queued: the checkout is complete even if the
                // reference could not be shown.
                enter(.completed, at, "reference not shown: \(reason)")
                return (c, [])
            }
            enter(.abandoned, at, reason)
            return (c, [.showMessage("interrupted")])
        default:
            throw .invalidTransition(from: checkout.state, event: "\(event)")
        }
    }

    /// Decides what an unfinished checkout becomes after a restart: queued applications are
    /// completed, everything else is closed as abandoned with its reason (a confirmed consent
    /// stays on record in the closed checkout; it is never silently dropped nor turned into an
    /// application without its liveness check).
    public static func recover(_ checkout: Checkout, at: Timestamp, context: CheckoutContext) -> (Checkout, [CheckoutEffect]) {
        guard !checkout.state.isFinal else { return (checkout, []) }
        let reason: String
        switch checkout.state {
        case .paymentReceived, .consentShown: reason = "restart before the shopper's consent"
        case .confirmed: reason = "restart after consent, before the liveness check"
        default: reason = "restart"
        }
        do {
            return try apply(.abandoned(reason: reason, at: at), to: checkout, context: context)
        } catch {
            return (checkout, [])
        }
    }

    /// Builds the application from the checkout's own records.
    static func application(for c: Checkout, liveness: LivenessResult, context: CheckoutContext, at: Timestamp) throws(CheckoutError) -> CreditApplication {
        guard let consent = c.consent, let shownAt = c.shownAt, let confirmedAt = c.confirmedAt, let method = c.method else {
            throw .invalidTransition(from: c.state, event: "enqueue without a recorded consent")
        }
        return CreditApplication(
            id: ApplicationID.make(now: Date(timeIntervalSince1970: Double(at.wallClockMillis) / 1000)),
            deviceID: context.deviceID, merchantID: context.merchantID, createdAt: at, payment: c.payment,
            authorization: Authorization(consentTextID: consent.id, consentVersion: consent.version, language: consent.language,
                                         consentSHA256: consent.sha256, shownAt: shownAt, confirmedAt: confirmedAt, method: method,
                                         terminalSerial: c.terminalSerial, transactionRef: c.payment.transactionRef, requestID: c.promptRequestID),
            liveness: liveness, plan: c.plan)
    }
}
