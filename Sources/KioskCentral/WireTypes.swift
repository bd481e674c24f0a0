import Foundation
import KioskCore


/// An application as stored by central.
public struct StoredApplication: Codable, Sendable, Equatable {
    /// The arrival cursor (SQLite rowid); strictly increasing in arrival order. Not sent on the wire.
    public var cursor: Int64
    /// The application id.
    public var id: String
    /// The kiosk that sent it first.
    public var deviceID: String
    /// The kiosk's sequence number, as sent.
    public var sequence: Int64
    /// SHA-256 of ``payload``, lowercase hex.
    public var payloadSHA256: String
    /// The canonical JSON, byte for byte as received.
    public var payload: String
    /// When central committed it (RFC 3339, UTC, milliseconds).
    public var receivedAt: String

    /// Creates a stored application value.
    public init(
        cursor: Int64, id: String, deviceID: String, sequence: Int64,
        payloadSHA256: String, payload: String, receivedAt: String
    ) {
        self.cursor = cursor
        self.id = id
        self.deviceID = deviceID
        self.sequence = sequence
        self.payloadSHA256 = payloadSHA256
        self.payload = payload
        self.receivedAt = receivedAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case deviceID = "device_id"
        case sequence
        case payloadSHA256 = "payload_sha256"
        case payload
        case receivedAt = "received_at"
    }

    /// Decodes the wire form, which has no cursor (it is set to 0).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.cursor = 0
        self.id = try container.decode(String.self, forKey: .id)
        self.deviceID = try container.decode(String.self, forKey: .deviceID)
        self.sequence = try container.decode(Int64.self, forKey: .sequence)
        self.payloadSHA256 = try container.decode(String.self, forKey: .payloadSHA256)
        self.payload = try container.decode(String.self, forKey: .payload)
        self.receivedAt = try container.decode(String.self, forKey: .receivedAt)
    }
}

/// One page of `GET /v1/applications`.
public struct ApplicationPage: Codable, Sendable, Equatable {
    /// Applications in arrival order.
    public var applications: [StoredApplication]
    /// The `after` value for the next page, or `nil` when nothing more was stored at query time.
    public var nextCursor: Int64?

    /// Creates a page.
    public init(applications: [StoredApplication], nextCursor: Int64?) {
        self.applications = applications
        self.nextCursor = nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case applications
        case nextCursor = "next_cursor"
    }

    /// Encodes the wire form; `next_cursor` is always present, `null` on the last page.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.applications, forKey: .applications)
        try container.encode(self.nextCursor, forKey: .nextCursor)
    }
}

/// Counters of `GET /v1/stats` and `kiosk-central stats`; persisted in the database.
public struct CentralStats: Codable, Sendable, Equatable {
    /// Applications stored.
    public var stored: Int64
    /// Items answered `accepted`.
    public var accepted: Int64
    /// Items answered `duplicate`.
    public var duplicate: Int64
    /// Items answered `rejected`.
    public var rejected: Int64
    /// Batch requests received (complete requests to `POST /v1/applications/batch`, faulted or not).
    public var requests: Int64
    /// Batch requests on which a fault was injected.
    public var faultsInjected: Int64

    /// Creates a stats value.
    public init(
        stored: Int64 = 0, accepted: Int64 = 0, duplicate: Int64 = 0,
        rejected: Int64 = 0, requests: Int64 = 0, faultsInjected: Int64 = 0
    ) {
        self.stored = stored
        self.accepted = accepted
        self.duplicate = duplicate
        self.rejected = rejected
        self.requests = requests
        self.faultsInjected = faultsInjected
    }

    enum CodingKeys: String, CodingKey {
        case stored, accepted, duplicate, rejected, requests
        case faultsInjected = "faults_injected"
    }
}

/// The body of every 4xx/5xx JSON error response.
public struct ErrorBody: Codable, Sendable, Equatable {
    /// A human-readable explanation.
    public var error: String
    /// A machine-readable reason where the contract names one (e.g. `token_used`, `device_revoked`).
    public var reason: String?

    /// Creates an error body.
    public init(error: String, reason: String? = nil) {
        self.error = error
        self.reason = reason
    }
}
