import Foundation

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
public enum RejectionReason: String, Codable, Sendable, Equatable {
    /// SHA-256 of the payload's UTF-8 bytes differs from `payload_sha256`.
    case checksumMismatch = "checksum_mismatch"
    /// The payload is not a JSON object, its `"id"` differs from the item id, or the id is malformed.
    case invalidPayload = "invalid_payload"
    /// The id was stored earlier with a different `payload_sha256`.
    case conflict = "conflict"
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

    /// Creates an error body.
    public init(error: String) {
        self.error = error
    }
}
