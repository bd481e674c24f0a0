import Foundation

/// A credit application created at the kiosk: the unit the outbox stores and central receives.
///
/// The JSON form (``CanonicalJSON``) is versioned by ``schemaVersion`` and has a stable key
/// order, so the exact bytes can be hashed, signed and compared for idempotency.
public struct CreditApplication: Codable, Sendable, Equatable {
    /// The current schema version written by this build.
    public static let currentSchemaVersion = 1

    /// Schema version of this document.
    public var schemaVersion: Int
    /// Time-ordered unique id; also the idempotency key at central.
    public var id: String
    /// The kiosk that created the application.
    public var deviceID: String
    /// The merchant at whose checkout the application was made.
    public var merchantID: String
    /// When it was created, robust to a wrong wall clock.
    public var createdAt: Timestamp
    /// The payment that triggered the offer.
    public var payment: Payment
    /// The shopper's recorded consent.
    public var authorization: Authorization
    /// The result of the face-liveness check.
    public var liveness: LivenessResult
    /// The instalment plan the shopper chose (on the kiosk's screen); nil when none was chosen.
    /// Optional and omitted from the JSON when nil, so schema version 1 documents without it stay
    /// valid and byte-identical.
    public var plan: ChosenPlan?

    /// Creates an application; the schema version is the current one.
    public init(
        id: String, deviceID: String, merchantID: String, createdAt: Timestamp,
        payment: Payment, authorization: Authorization, liveness: LivenessResult, plan: ChosenPlan? = nil
    ) {
        self.schemaVersion = Self.currentSchemaVersion
        self.id = id
        self.deviceID = deviceID
        self.merchantID = merchantID
        self.createdAt = createdAt
        self.payment = payment
        self.authorization = authorization
        self.liveness = liveness
        self.plan = plan
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", id, deviceID = "device_id", merchantID = "merchant_id"
        case createdAt = "created_at", payment, authorization, liveness, plan
    }
}

/// A point in time as the kiosk knows it: wall clock plus boot id and monotonic clock.
///
/// Kiosks boot with wrong clocks; `(bootID, monotonicNanoseconds)` orders events within a boot
/// and lets central correct the wall clock once the device has synced its time.
public struct Timestamp: Codable, Sendable, Equatable {
    /// Wall-clock time in milliseconds since the Unix epoch (may be wrong on a fresh boot).
    public var wallClockMillis: Int64
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`).
    public var bootID: String
    /// `CLOCK_BOOTTIME` in nanoseconds since that boot.
    public var monotonicNanos: UInt64

    /// Creates a timestamp from its parts.
    public init(wallClockMillis: Int64, bootID: String, monotonicNanos: UInt64) {
        self.wallClockMillis = wallClockMillis
        self.bootID = bootID
        self.monotonicNanos = monotonicNanos
    }

    enum CodingKeys: String, CodingKey {
        case wallClockMillis = "wall_clock_ms", bootID = "boot_id", monotonicNanos = "monotonic_ns"
    }
}

/// What the payment terminal reported: never a full PAN, track data, CVV or PIN block.
public struct Payment: Codable, Sendable, Equatable {
    /// The terminal's transaction reference.
    public var transactionRef: String
    /// Amount in the currency's minor units (cents, fen).
    public var amountMinor: Int64
    /// ISO 4217 alphabetic code, e.g. "CNY".
    public var currency: String
    /// Masked PAN: at most the first 6 and last 4 digits in clear, e.g. `622202******1234`.
    public var maskedPAN: String
    /// The terminal's token standing for the card.
    public var terminalToken: String
    /// The issuer's approval code.
    public var approvalCode: String

    /// Creates a payment record.
    public init(transactionRef: String, amountMinor: Int64, currency: String, maskedPAN: String, terminalToken: String, approvalCode: String) {
        self.transactionRef = transactionRef
        self.amountMinor = amountMinor
        self.currency = currency
        self.maskedPAN = maskedPAN
        self.terminalToken = terminalToken
        self.approvalCode = approvalCode
    }

    enum CodingKeys: String, CodingKey {
        case transactionRef = "transaction_ref", amountMinor = "amount_minor", currency
        case maskedPAN = "masked_pan", terminalToken = "terminal_token", approvalCode = "approval_code"
    }
}

/// The shopper's consent: which exact text was shown, when, and how it was confirmed.
public struct Authorization: Codable, Sendable, Equatable {
    /// How the shopper confirmed.
    public enum Method: String, Codable, Sendable {
        /// A button on the payment terminal.
        case terminalButton = "terminal_button"
        /// A touch on the kiosk's own screen.
        case kioskScreen = "kiosk_screen"
    }
    /// Identifier of the consent text.
    public var consentTextID: String
    /// Version of the consent text.
    public var consentVersion: String
    /// Language of the text shown (BCP 47, e.g. "zh-CN").
    public var language: String
    /// SHA-256 (lowercase hex) of the exact bytes shown.
    public var consentSHA256: String
    /// When the text was shown.
    public var shownAt: Timestamp
    /// When the shopper confirmed.
    public var confirmedAt: Timestamp
    /// Which surface captured the confirmation.
    public var method: Method

    /// Serial of the terminal the payment came from (absent in applications from older agents).
    public var terminalSerial: String?
    /// The payment's transaction reference the consent belongs to.
    public var transactionRef: String?
    /// Request id of the terminal prompt the shopper answered (ties the answer to this checkout).
    public var requestID: UInt32?
    /// The device's signature over this record without the signature itself (see ``AuthorizationSigner``).
    public var signature: AuthorizationSignature?

    /// Creates an authorization record.
    public init(consentTextID: String, consentVersion: String, language: String, consentSHA256: String, shownAt: Timestamp, confirmedAt: Timestamp, method: Method,
                terminalSerial: String? = nil, transactionRef: String? = nil, requestID: UInt32? = nil, signature: AuthorizationSignature? = nil) {
        self.consentTextID = consentTextID
        self.consentVersion = consentVersion
        self.language = language
        self.consentSHA256 = consentSHA256
        self.shownAt = shownAt
        self.confirmedAt = confirmedAt
        self.method = method
        self.terminalSerial = terminalSerial
        self.transactionRef = transactionRef
        self.requestID = requestID
        self.signature = signature
    }

    enum CodingKeys: String, CodingKey {
        case consentTextID = "consent_text_id", consentVersion = "consent_version", language
        case consentSHA256 = "consent_sha256", shownAt = "shown_at", confirmedAt = "confirmed_at", method
        case terminalSerial = "terminal_serial", transactionRef = "transaction_ref", requestID = "request_id", signature
    }
}

/// The outcome of the local face-liveness check, with the evidence for each check.
public struct LivenessResult: Codable, Sendable, Equatable {
    /// The overall decision.
    public enum Decision: String, Codable, Sendable {
        /// A live person was seen.
        case pass
        /// An attack or a failed challenge was seen.
        case fail
        /// Not enough evidence either way.
        case inconclusive
        /// No check was run (no camera configured).
        case notPerformed = "not_performed"
    }
    /// One check's measured value against its threshold.
    public struct Check: Codable, Sendable, Equatable {
        /// Name of the check, e.g. "blink", "moire".
        public var name: String
        /// Measured value.
        public var value: Double
        /// Threshold it was compared against.
        public var threshold: Double
        /// Whether the check passed.
        public var passed: Bool
        /// Creates a check record.
        public init(name: String, value: Double, threshold: Double, passed: Bool) {
            self.name = name
            self.value = value
            self.threshold = threshold
            self.passed = passed
        }
    }
    /// The overall decision.
    public var decision: Decision
    /// Overall score in 0…1.
    public var score: Double
    /// Per-check evidence.
    public var checks: [Check]

    /// Creates a liveness result.
    public init(decision: Decision, score: Double, checks: [Check]) {
        self.decision = decision
        self.score = score
        self.checks = checks
    }
}
