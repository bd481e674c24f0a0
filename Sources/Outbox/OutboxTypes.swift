import Foundation

/// Capacity limits.
///
/// Unsynced rows (`pending`, `in_flight` and `rejected`) are never evicted: when a limit would be
/// exceeded, `Outbox.enqueue` refuses the new row with ``OutboxError/full(reason:)``.
public struct OutboxLimits: Sendable, Equatable {
    /// Maximum number of unsynced rows (pending + in_flight + rejected); default 100_000.
    public var maxRows: Int
    /// Maximum total payload bytes of unsynced rows; default 256 MiB.
    public var maxBytes: Int64
    /// Free space (statvfs `f_bavail * f_frsize`) that must remain on the database's filesystem; default 64 MiB.
    public var minFreeDiskBytes: Int64

    /// Creates limits; every argument has the production default.
    public init(maxRows: Int = 100_000, maxBytes: Int64 = 256 << 20, minFreeDiskBytes: Int64 = 64 << 20) {
        self.maxRows = maxRows
        self.maxBytes = maxBytes
        self.minFreeDiskBytes = minFreeDiskBytes
    }
}

/// Delivery state of an outbox row; the raw value is what is stored in the `state` column.
public enum OutboxState: String, Sendable, Codable, CaseIterable {
    /// Waiting to be delivered (possibly not before `nextAttemptAt`).
    case pending
    /// Handed out by `nextBatch` and not yet acknowledged, failed or rejected.
    case inFlight = "in_flight"
    /// Acknowledged by the server; kept until `purgeSynced` removes it.
    case synced
    /// Refused by the server; kept until an operator retries it. Never retried automatically.
    case rejected
}

/// One row of the outbox, as stored.
public struct OutboxRecord: Sendable, Equatable, Codable {
    /// Monotonic delivery order; never reused (SQLite AUTOINCREMENT).
    public var sequence: Int64
    /// Caller-chosen unique id; the server deduplicates by it.
    public var id: String
    /// Opaque payload bytes.
    public var payload: Data
    /// Lowercase hex SHA-256 of `payload`, computed at enqueue.
    public var payloadSHA256: String
    /// Delivery state.
    public var state: OutboxState
    /// Number of failed delivery attempts (`markFailed`, or a rejection of an in-flight row).
    public var attempts: Int
    /// The row is not handed out by `nextBatch` before this instant.
    public var nextAttemptAt: Date
    /// Last delivery error reported by `markFailed` (or the reject reason kept across an operator retry).
    public var lastError: String?
    /// When the row was enqueued (the `now` passed to `enqueue`), millisecond precision.
    public var createdAt: Date
    /// When the row was marked synced.
    public var syncedAt: Date?
    /// Why the server rejected the row (state `rejected`).
    public var rejectReason: String?

    /// Creates a record value (rows are normally created by `Outbox.enqueue`).
    public init(
        sequence: Int64, id: String, payload: Data, payloadSHA256: String, state: OutboxState, attempts: Int,
        nextAttemptAt: Date, lastError: String?, createdAt: Date, syncedAt: Date?, rejectReason: String?
    ) {
        self.sequence = sequence
        self.id = id
        self.payload = payload
        self.payloadSHA256 = payloadSHA256
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.createdAt = createdAt
        self.syncedAt = syncedAt
        self.rejectReason = rejectReason
    }
}

/// A row moved out of the outbox because its payload failed its SHA-256 check (or could not be decoded).
public struct QuarantinedRow: Sendable, Equatable, Codable {
    /// The row's original outbox sequence.
    public var sequence: Int64
    /// The row's id.
    public var id: String
    /// Why it was quarantined (names the stored and recomputed digests).
    public var reason: String
    /// When it was quarantined, millisecond precision.
    public var quarantinedAt: Date
    /// The payload bytes exactly as they were found in the outbox (empty if the column was NULL).
    public var payload: Data

    /// Creates a quarantined-row value.
    public init(sequence: Int64, id: String, reason: String, quarantinedAt: Date, payload: Data) {
        self.sequence = sequence
        self.id = id
        self.reason = reason
        self.quarantinedAt = quarantinedAt
        self.payload = payload
    }
}

/// Counters describing the outbox.
public struct OutboxStats: Sendable, Equatable, Codable {
    /// Rows in state `pending`.
    public var pending: Int
    /// Rows in state `in_flight`.
    public var inFlight: Int
    /// Rows in state `synced` (not yet purged).
    public var synced: Int
    /// Rows in state `rejected`.
    public var rejected: Int
    /// Rows in the `quarantine` table.
    public var quarantined: Int
    /// Payload bytes of unsynced rows (pending + in_flight + rejected); what `OutboxLimits.maxBytes` bounds.
    public var unsyncedBytes: Int64
    /// `createdAt` of the head pending row (lowest sequence), nil when nothing is pending.
    public var oldestPendingCreatedAt: Date?
    /// `nextAttemptAt` of the head pending row: `nextBatch` returns nothing before then. Nil when nothing is pending.
    public var nextAttemptAt: Date?

    /// Creates a stats value.
    public init(
        pending: Int, inFlight: Int, synced: Int, rejected: Int, quarantined: Int, unsyncedBytes: Int64,
        oldestPendingCreatedAt: Date?, nextAttemptAt: Date?
    ) {
        self.pending = pending
        self.inFlight = inFlight
        self.synced = synced
        self.rejected = rejected
        self.quarantined = quarantined
        self.unsyncedBytes = unsyncedBytes
        self.oldestPendingCreatedAt = oldestPendingCreatedAt
        self.nextAttemptAt = nextAttemptAt
    }
}

/// Errors thrown by `Outbox`.
public enum OutboxError: Error, Sendable, CustomStringConvertible {
    /// Capacity refusal: unsynced rows, unsynced bytes, free disk space, or SQLite's SQLITE_FULL (13) on write.
    /// The reason names which limit and the numbers.
    case full(reason: String)
    /// `enqueue` of an id already present in the outbox (SQLITE_CONSTRAINT_UNIQUE, 2067, on `outbox.id`).
    case duplicateID(String)
    /// Any other SQLite failure, with SQLite's primary result code (e.g. SQLITE_BUSY=5, SQLITE_CORRUPT=11,
    /// SQLITE_NOTADB=26; SQLITE_MISMATCH=20 for a stored value of the wrong type).
    case sqlite(code: Int32, message: String)
    /// No row with this id is in a state the operation accepts.
    case notFound(String)
    /// A checkout row whose JSON document cannot be decoded (reported, kept on disk for an operator).
    case corruptCheckout(String)

    /// A human-readable description naming the SQLite result code where there is one.
    public var description: String {
        switch self {
        case .full(let reason):
            return "outbox full: \(reason)"
        case .duplicateID(let id):
            return "duplicate outbox id \"\(id)\" (SQLITE_CONSTRAINT_UNIQUE=2067)"
        case .sqlite(let code, let message):
            return "SQLite error \(code) (\(SQLiteCode.name(code))): \(message)"
        case .notFound(let id):
            return "no outbox row \"\(id)\" in a state this operation accepts"
        case .corruptCheckout(let what):
            return "corrupt \(what)"
        }
    }
}

/// SQLite primary result codes used by the outbox.
enum SQLiteCode {
    static let error: Int32 = 1
    static let interrupt: Int32 = 9
    static let busy: Int32 = 5
    static let corrupt: Int32 = 11
    static let full: Int32 = 13
    static let constraint: Int32 = 19
    static let mismatch: Int32 = 20
    static let misuse: Int32 = 21
    static let notADatabase: Int32 = 26

    /// The symbolic name of a primary result code.
    static func name(_ code: Int32) -> String {
        let names: [Int32: String] = [
            0: "SQLITE_OK", 1: "SQLITE_ERROR", 2: "SQLITE_INTERNAL", 3: "SQLITE_PERM", 4: "SQLITE_ABORT",
            5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY", 9: "SQLITE_INTERRUPT",
            10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND", 13: "SQLITE_FULL",
            14: "SQLITE_CANTOPEN", 15: "SQLITE_PROTOCOL", 16: "SQLITE_EMPTY", 17: "SQLITE_SCHEMA",
            18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH", 21: "SQLITE_MISUSE",
            22: "SQLITE_NOLFS", 23: "SQLITE_AUTH", 24: "SQLITE_FORMAT", 25: "SQLITE_RANGE", 26: "SQLITE_NOTADB",
            27: "SQLITE_NOTICE", 28: "SQLITE_WARNING",
        ]
        return names[code & 0xff] ?? "SQLITE_\(code)"
    }
}
