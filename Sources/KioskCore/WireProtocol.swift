import Foundation

/// The body of `POST /v1/applications/batch`: the contract of Sources/KioskCentral/openapi.yaml,
/// shared by the agent (Sync) and the reference receiver (KioskCentral).
public struct BatchRequest: Codable, Sendable, Equatable {
    /// The sending device.
    public var deviceID: String
    /// When the batch was sent (device wall clock, RFC 3339).
    public var sentAt: String
    /// The applications, in outbox sequence order.
    public var items: [Item]

    /// One application in a batch.
    public struct Item: Codable, Sendable, Equatable {
        /// The application id: the idempotency key.
        public var id: String
        /// The outbox sequence number.
        public var sequence: Int64
        /// SHA-256 (lowercase hex) of the payload's bytes.
        public var payloadSHA256: String
        /// The application's canonical JSON, exact bytes as a string.
        public var payload: String

        /// Creates an item.
        public init(id: String, sequence: Int64, payloadSHA256: String, payload: String) {
            self.id = id
            self.sequence = sequence
            self.payloadSHA256 = payloadSHA256
            self.payload = payload
        }

        enum CodingKeys: String, CodingKey {
            case id, sequence, payloadSHA256 = "payload_sha256", payload
        }
    }

    /// Creates a batch request.
    public init(deviceID: String, sentAt: String, items: [Item]) {
        self.deviceID = deviceID
        self.sentAt = sentAt
        self.items = items
    }

    enum CodingKeys: String, CodingKey {
        case deviceID = "device_id", sentAt = "sent_at", items
    }
}

/// The 200 response to a batch: one result per item, in the same order.
public struct BatchResponse: Codable, Sendable, Equatable {
    /// Per-item outcome.
    public enum Status: String, Codable, Sendable {
        /// Stored now.
        case accepted
        /// Already stored earlier with the same payload.
        case duplicate
        /// Refused; see the reason. Never retried blindly.
        case rejected
    }
    /// One item's result.
    public struct Result: Codable, Sendable, Equatable {
        /// The application id.
        public var id: String
        /// The outcome.
        public var status: Status
        /// Why it was rejected.
        public var reason: String?
        /// Creates a result.
        public init(id: String, status: Status, reason: String? = nil) {
            self.id = id
            self.status = status
            self.reason = reason
        }
    }
    /// The results.
    public var results: [Result]
    /// Creates a response.
    public init(results: [Result]) { self.results = results }
}
