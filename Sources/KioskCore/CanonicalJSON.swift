import Foundation

/// Encodes and decodes the versioned, canonical JSON form of domain documents.
///
/// Canonical means: keys sorted, no insignificant white space, `/` not escaped, so the same
/// value always produces the same bytes and those bytes can be hashed and signed.
public enum CanonicalJSON {
    /// Encodes a value to canonical JSON bytes.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// Decodes a value from JSON bytes.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }
}

extension CreditApplication {
    /// The canonical JSON bytes of this application after the PCI guard has checked them.
    ///
    /// - Throws: ``PCIViolation`` when any field holds a full PAN or track data, and
    ///   ``ApplicationValidationError`` when a field is out of its domain.
    public func canonicalPayload() throws -> Data {
        try validate()
        let data = try CanonicalJSON.encode(self)
        try PCIGuard.check(json: data)
        return data
    }

    /// Checks field domains: id shape, currency code, amount, masked PAN shape, hash shapes.
    public func validate() throws {
        guard schemaVersion == Self.currentSchemaVersion else {
            throw ApplicationValidationError(field: "schema_version", reason: "unsupported version \(schemaVersion)")
        }
        guard ApplicationID.isValid(id) else {
            throw ApplicationValidationError(field: "id", reason: "must be 1–64 characters of [A-Za-z0-9._-]")
        }
        guard !deviceID.isEmpty else { throw ApplicationValidationError(field: "device_id", reason: "empty") }
        guard !merchantID.isEmpty else { throw ApplicationValidationError(field: "merchant_id", reason: "empty") }
        guard payment.amountMinor > 0 else {
            throw ApplicationValidationError(field: "payment.amount_minor", reason: "must be positive")
        }
        guard payment.currency.count == 3, payment.currency.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
            throw ApplicationValidationError(field: "payment.currency", reason: "must be an ISO 4217 code such as CNY")
        }
        guard PANMask.isAcceptableMaskedPAN(payment.maskedPAN) else {
            throw ApplicationValidationError(
                field: "payment.masked_pan",
                reason: "must show at most the first 6 and last 4 digits, e.g. 622202******1234"
            )
        }
        guard Self.isSHA256Hex(authorization.consentSHA256) else {
            throw ApplicationValidationError(field: "authorization.consent_sha256", reason: "must be 64 lowercase hex digits")
        }
        if let plan, !plan.isConsistent(amountMinor: payment.amountMinor, currency: payment.currency) {
            throw ApplicationValidationError(field: "plan", reason: "instalments must add up to the total (amount plus fee) in the payment's currency, with a lender")
        }
        guard liveness.score.isFinite, (0...1).contains(liveness.score) else {
            throw ApplicationValidationError(field: "liveness.score", reason: "must be within 0…1")
        }
    }

    static func isSHA256Hex(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// A field of an application is outside its domain.
public struct ApplicationValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The JSON path of the field, e.g. `payment.currency`.
    public var field: String
    /// What is wrong with it.
    public var reason: String
    /// Creates the error.
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    /// A one-line message naming the field.
    public var description: String { "invalid application field \(field): \(reason)" }
}
