import Foundation

// The batch contract of Sources/KioskCentral/openapi.yaml, shared by the agent (Sync) and
// the reference receiver (KioskCentral).

/// The body of `POST /v1/applications/batch`.
public struct BatchRequest: Codable, Sendable, Equatable {
    /// The sending kiosk; must equal the client certificate's subject CN.
    public var deviceID: String
    /// When the kiosk sent the batch (RFC 3339 date-time, e.g. `2026-11-23T10:00:00Z`).
    public var sentAt: String
    /// The applications, at most 1,000.
    public var items: [BatchItem]

    /// Creates a batch request.
    public init(deviceID: String, sentAt: String, items: [BatchItem]) {
        self.deviceID = deviceID
        self.sentAt = sentAt
        self.items = items
    }

    enum CodingKeys: String, CodingKey {
        case deviceID = "device_id"
        case sentAt = "sent_at"
        case items
    }
}

/// One application inside a ``BatchRequest``.
public struct BatchItem: Codable, Sendable, Equatable {
    /// The application id, 1…64 characters of `[A-Za-z0-9._-]`; equals the payload's `"id"`.
    public var id: String
    /// The kiosk's local sequence number of the application.
    public var sequence: Int64
    /// SHA-256 of the payload's UTF-8 bytes, 64 lowercase hex digits.
    public var payloadSHA256: String
    /// The application's canonical JSON, byte for byte.
    public var payload: String

    /// Creates an item.
    public init(id: String, sequence: Int64, payloadSHA256: String, payload: String) {
        self.id = id
        self.sequence = sequence
        self.payloadSHA256 = payloadSHA256
        self.payload = payload
    }

    enum CodingKeys: String, CodingKey {
        case id
        case sequence
        case payloadSHA256 = "payload_sha256"
        case payload
    }
}

/// What happened to one item of a batch.
public enum ItemStatus: String, Codable, Sendable, Equatable {
    /// Stored now, durably, before the response was written.
    case accepted
    /// Already stored earlier with the same `payload_sha256`; nothing stored again.
    case duplicate
    /// Not stored; see ``RejectionReason``.
    case rejected
}

/// Why an item was rejected; the agent must not resend it unchanged.
public struct RejectionReason: RawRepresentable, Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The reason as sent on the wire; unknown reasons from a newer central decode as they are.
    public var rawValue: String
    /// Wraps a wire value.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Decodes any string.
    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    /// Encodes the raw string.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
    /// The raw value.
    public var description: String { rawValue }

    /// SHA-256 of the payload's UTF-8 bytes differs from `payload_sha256`.
    public static let checksumMismatch = RejectionReason(rawValue: "checksum_mismatch")
    /// The payload is not a JSON object, its `"id"` differs from the item id, or the id is malformed.
    public static let invalidPayload = RejectionReason(rawValue: "invalid_payload")
    /// The id was stored earlier with a different `payload_sha256`.
    public static let conflict = RejectionReason(rawValue: "conflict")
    /// The authorization carries a device signature that does not verify (tampered record).
    public static let badSignature = RejectionReason(rawValue: "bad_signature")
    /// A sealed envelope that does not open with central's key (tampered ciphertext, moved to
    /// another id, malformed, or central has no sealing key).
    public static let badSeal = RejectionReason(rawValue: "bad_seal")
    /// A sealed envelope signed by a key other than the one enrolled for the sending device.
    public static let wrongDevice = RejectionReason(rawValue: "wrong_device")
    /// A sealed item whose id was stored earlier with different (opened) content.
    public static let replayed = RejectionReason(rawValue: "replayed")
    /// A plain (unsealed) payload sent to a central that requires sealed applications.
    public static let unsealed = RejectionReason(rawValue: "unsealed")
    /// A sealed application whose authorization was signed by a key other than the one that
    /// signed its envelope (a record lifted from one device and sealed by another).
    public static let signerMismatch = RejectionReason(rawValue: "signer_mismatch")
}

/// The outcome of one item, in the order of the request's items.
public struct ItemResult: Codable, Sendable, Equatable {
    /// The item id, echoed.
    public var id: String
    /// The outcome.
    public var status: ItemStatus
    /// Present only when ``status`` is ``ItemStatus/rejected``.
    public var reason: RejectionReason?

    /// Creates a result.
    public init(id: String, status: ItemStatus, reason: RejectionReason? = nil) {
        self.id = id
        self.status = status
        self.reason = reason
    }
}

/// The 200 body of `POST /v1/applications/batch`.
public struct BatchResponse: Codable, Sendable, Equatable {
    /// One result per request item, same order.
    public var results: [ItemResult]

    /// Creates a response body.
    public init(results: [ItemResult]) {
        self.results = results
    }
}

extension BatchRequest {
    /// The request as a JSON document, written directly rather than through `JSONEncoder`.
    ///
    /// The document `JSONEncoder` writes with `.withoutEscapingSlashes` (strings escaped the same
    /// way), with the keys in the contract's order rather than `JSONEncoder`'s, which varies from run
    /// to run; at a fraction of the cost: a backlog drain spent a sixth of the agent's CPU escaping
    /// payloads through `JSONEncoder`. `WireProtocolTests` check it against `JSONEncoder`.
    public func jsonData() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(128 + items.reduce(0) { $0 + $1.payload.utf8.count + $1.payload.utf8.count / 4 + 160 })
        out.append(contentsOf: #"{"device_id":"#.utf8)
        JSONText.appendString(deviceID, to: &out)
        out.append(contentsOf: #","sent_at":"#.utf8)
        JSONText.appendString(sentAt, to: &out)
        out.append(contentsOf: #","items":["#.utf8)
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"id":"#.utf8)
            JSONText.appendString(item.id, to: &out)
            out.append(contentsOf: #","sequence":"#.utf8)
            out.append(contentsOf: String(item.sequence).utf8)
            out.append(contentsOf: #","payload_sha256":"#.utf8)
            JSONText.appendString(item.payloadSHA256, to: &out)
            out.append(contentsOf: #","payload":"#.utf8)
            JSONText.appendString(item.payload, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "]}".utf8)
        return Data(out)
    }
}

/// JSON text helpers for the hand-written encoders of the wire protocol.
enum JSONText {
    /// Appends `s` as a JSON string literal: quotes, `"` and `\` escaped, control characters as
    /// `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX` (as `JSONEncoder` writes them), everything else as is.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var runStart = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == 0x22 || b == 0x5C else { continue }
                if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
                runStart = i + 1
                out.append(UInt8(ascii: "\\"))
                switch b {
                case 0x22: out.append(UInt8(ascii: "\""))
                case 0x5C: out.append(UInt8(ascii: "\\"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigit(b >> 4), hexDigit(b & 0xF)])
                }
            }
            if runStart < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count])) }
        }
        out.append(UInt8(ascii: "\""))
    }
}
