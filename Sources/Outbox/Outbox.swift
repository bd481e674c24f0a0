import Foundation
import KioskCore
import GRDB
import Logging

/// The durable outbox. Thread-safe (`Sendable`), backed by one GRDB `DatabaseQueue`.
///
/// Rows are enqueued durably (WAL, `synchronous=FULL`: `enqueue` returns after the WAL is fsync'd;
/// delivery bookkeeping — in flight, synced, failed, purged — is committed without its own fsync,
/// since forgetting it in a power cut only causes a resend that central deduplicates)
/// and handed to the sync loop in strict sequence order by ``nextBatch(limit:maxBytes:now:)``.
/// Every row handed out must be resolved with ``markSynced(ids:now:)``, ``markFailed(ids:error:nextAttemptAt:)``
/// or ``markRejected(id:reason:)``; rows still in flight when the process dies are put back to pending
/// at the next open (at-least-once delivery; the server deduplicates by id).
///
/// Several instances may open the same file (another process such as `kioskctl` included). The first
/// one holds an exclusive lock on `<path>.lock` and is the owner: only the owner performs crash recovery
/// and may set a corrupt database aside.
public final class Outbox: Sendable {
    /// Path of the SQLite database file.
    public let path: String
    /// Capacity limits enforced by ``enqueue(id:payload:now:)``.
    public let limits: OutboxLimits
    /// Strips personal data from checkouts before they are stored (nil: stored as they are; development).
    public let redactor: CheckoutRedactor?
    /// Non-nil when a corrupt database was renamed away at open; this is its new path.
    public let setAsideDatabasePath: String?
    /// Whether this instance owns the queue (holds `<path>.lock`); only the owner resets in-flight rows at open.
    public let isOwner: Bool
    /// Number of in-flight rows put back to pending by crash recovery at open (0 when not the owner).
    public let recoveredInFlightCount: Int

    let dbQueue: DatabaseQueue
    private let logger: Logger
    private let ownerLock: OwnerLock?
    /// Set by `close()` inside the database queue; checked inside it by every operation (GRDB must not
    /// be used after its connection is closed).
    private let closed = Flag()

    /// Busy timeout for every connection: how long to wait for another connection's lock.
    static let busyTimeout: TimeInterval = 10

    /// Opens (creating if needed) the outbox at `path`, checks it, migrates it and recovers in-flight rows.
    ///
    /// If the existing file is not a database or fails `PRAGMA quick_check`, the owner renames it and its
    /// `-wal`/`-shm` to `<path>.corrupt-<UTC timestamp>` (never deleting), logs an error, sets
    /// ``setAsideDatabasePath`` and starts on a fresh database. A non-owner throws instead
    /// (``OutboxError/sqlite(code:message:)`` with SQLITE_CORRUPT=11 or SQLITE_NOTADB=26).
    public init(path: String, limits: OutboxLimits = .init(), redactor: CheckoutRedactor? = nil,
                logger: Logger = Logger(label: "kiosk.outbox")) throws {
        self.redactor = redactor
        self.path = path
        self.limits = limits
        self.logger = logger

        let (lock, lockFailure) = OwnerLock.acquire(path: path + ".lock")
        let owner = lock != nil
        ownerLock = lock
        isOwner = owner
        if let lockFailure {
            logger.info(
                "outbox opened without owning the queue: no crash recovery from this instance",
                metadata: ["path": "\(path)", "reason": "\(lockFailure)"])
        }

        try FileSupport.createPrivateFileIfMissing(path)
        if let problem = FileSupport.restrictToOwner(path) {
            logger.warning("cannot restrict outbox database permissions", metadata: ["error": "\(problem)"])
        }

        var setAside: String?
        let queue: DatabaseQueue
        switch Self.openChecked(path: path) {
        case .success(let opened):
            queue = opened
        case .failure(.unusable(let code, let reason)):
            guard owner else {
                throw OutboxError.sqlite(
                    code: code, message: "outbox database \(path) is unusable (\(reason)); not the owner, not setting it aside")
            }
            let target = try FileSupport.setAside(path, now: Date())
            setAside = target
            logger.error(
                "outbox database is corrupt: set aside, starting on a fresh database",
                metadata: ["path": "\(path)", "setAsidePath": "\(target)", "reason": "\(reason)"])
            try FileSupport.createPrivateFileIfMissing(path)
            switch Self.openChecked(path: path) {
            case .success(let opened):
                queue = opened
            case .failure(.unusable(let code, let reason)), .failure(.other(let code, let reason)):
                throw OutboxError.sqlite(code: code, message: "fresh outbox database \(path) unusable: \(reason)")
            }
        case .failure(.other(let code, let reason)):
            throw OutboxError.sqlite(code: code, message: "cannot open outbox database \(path): \(reason)")
        }
        setAsideDatabasePath = setAside
        dbQueue = queue

        do {
            try OutboxSchema.migrator.migrate(queue)
        } catch {
            throw Self.mapError(error)
        }
        for suffix in ["-wal", "-shm"] {
            if let problem = FileSupport.restrictToOwner(path + suffix) {
                logger.warning("cannot restrict outbox database permissions", metadata: ["error": "\(problem)"])
            }
        }

        if owner {
            recoveredInFlightCount = try Self.recover(queue, logger: logger)
        } else {
            recoveredInFlightCount = 0
        }
    }

    /// Closes the database connection and releases the owner lock. Later calls throw
    /// ``OutboxError/sqlite(code:message:)`` with SQLITE_MISUSE (21).
    public func close() throws {
        defer { ownerLock?.release() }
        do {
            // Raise the flag on the serialized queue so no operation is mid-flight, then close.
            dbQueue.writeWithoutTransaction { _ in closed.value = true }
            try dbQueue.close()
        } catch {
            throw Self.mapError(error)
        }
    }

    // MARK: - Enqueue

    /// Durably appends a row and returns its sequence once the commit is on disk.
    ///
    /// Refuses with ``OutboxError/full(reason:)`` (nothing written, nothing evicted) when unsynced rows
    /// would reach `maxRows`, unsynced bytes plus this payload would exceed `maxBytes`, free disk space is
    /// below `minFreeDiskBytes`, or SQLite reports SQLITE_FULL. Throws ``OutboxError/duplicateID(_:)`` when
    /// a row with this id is still in the outbox (a synced row keeps its id until `purgeSynced` removes it).
    public func enqueue(id: String, payload: Data, now: Date = Date()) throws -> Int64 {
        try enqueue(contentsOf: CollectionOfOne((id: id, payload: payload)), now: now)[0]
    }

    /// Durably appends several rows in one transaction (all or none) and returns their sequences
    /// once the commit is on disk. The same refusals as ``enqueue(id:payload:now:)`` apply to the
    /// batch as a whole; used to import a backlog.
    public func enqueue<C: Collection>(contentsOf items: C, now: Date = Date()) throws -> [Int64]
    where C.Element == (id: String, payload: Data) {
        try enqueue(contentsOf: items, now: now, alongside: { _ in })
    }

    /// ``enqueue(contentsOf:now:)`` with `alongside` run in the same durable transaction (after the
    /// inserts): both commit, or neither does.
    func enqueue<C: Collection>(contentsOf items: C, now: Date, alongside: (Database) throws -> Void) throws -> [Int64]
    where C.Element == (id: String, payload: Data) {
        guard !items.isEmpty else { return [] }
        let prepared = items.map { (id: $0.id, payload: $0.payload, digest: sha256Hex($0.payload), size: Int64($0.payload.count)) }
        let batchBytes = prepared.reduce(Int64(0)) { $0 &+ $1.size }
        let nowMillis = Millis.from(now)

        if let reason = try diskRefusal() { throw OutboxError.full(reason: reason) }
        let limits = self.limits
        var current = prepared[0].id
        do {
            return try perform(.immediate) { db in
                let usage = try Self.unsyncedUsage(db)
                if let reason = Self.capacityRefusal(usage: usage, rows: prepared.count, bytes: batchBytes, limits: limits) {
                    throw OutboxError.full(reason: reason)
                }
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO outbox (id, payload, payload_sha256, payload_size, state, attempts, next_attempt_at, created_at)
                    VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)
                    """)
                var sequences: [Int64] = []
                sequences.reserveCapacity(prepared.count)
                for row in prepared {
                    current = row.id
                    try insert.execute(arguments: [row.id, row.payload, row.digest, row.size, nowMillis, nowMillis])
                    sequences.append(db.lastInsertedRowID)
                }
                try alongside(db)
                return sequences
            }
        } catch let error as DatabaseError
            where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE && (error.message ?? "").contains("outbox.id")
        {
            throw OutboxError.duplicateID(current)
        } catch {
            throw Self.mapError(error)
        }
    }

    // MARK: - Delivery

    /// Hands out the next rows to deliver and marks them `in_flight`, in one transaction.
    ///
    /// Walks pending rows in ascending sequence and stops at the first row not yet due
    /// (`nextAttemptAt > now`), so the head is never overtaken; rows behind an earlier in-flight row are
    /// not handed out either. Returns at most `limit` rows and at most `maxBytes` payload bytes, but always
    /// the head row when it is due. A row whose payload fails its SHA-256 check is moved to the quarantine
    /// (logged at error level) and the walk continues with the next row.
    public func nextBatch(limit: Int, maxBytes: Int, now: Date = Date()) throws -> [OutboxRecord] {
        try nextBatch(limit: limit, maxBytes: maxBytes, now: now, following: nil)
    }

    /// The batch that follows the one in flight, whose last row is `sequence`, marked in flight:
    /// the sync reads it while the current batch is being posted, and posts it only once the
    /// current one is acknowledged (``release(ids:)`` hands it back otherwise).
    ///
    /// Empty when a pending row comes before `sequence` (that row must be delivered first) or the
    /// next pending row is not due yet; otherwise as ``nextBatch(limit:maxBytes:now:)``.
    public func nextBatch(limit: Int, maxBytes: Int, now: Date = Date(), following sequence: Int64) throws -> [OutboxRecord] {
        try nextBatch(limit: limit, maxBytes: maxBytes, now: now, following: Optional(sequence))
    }

    private func nextBatch(limit: Int, maxBytes: Int, now: Date, following: Int64?) throws -> [OutboxRecord] {
        guard limit > 0 else { return [] }
        let nowMillis = Millis.from(now)
        do {
            let (batch, quarantined) = try perform(.immediate, durable: false) { db -> ([OutboxRecord], [(sequence: Int64, id: String, reason: String)]) in
                var batch: [OutboxRecord] = []
                var quarantine: [(sequence: Int64, id: String, reason: String)] = []
                var bytes = 0
                let statement: Statement
                let arguments: StatementArguments
                if let following {
                    if try Bool.fetchOne(db.cachedStatement(sql: Self.pendingBeforeSQL), arguments: [following]) ?? false {
                        return ([], [])
                    }
                    statement = try db.cachedStatement(sql: Self.pendingAfterSQL)
                    arguments = [following]
                } else {
                    let bound = try Int64.fetchOne(db.cachedStatement(sql: Self.inFlightHeadSQL)) ?? Int64.max
                    statement = try db.cachedStatement(sql: Self.pendingScanSQL)
                    arguments = [bound]
                }
                do {
                    let rows = try Row.fetchCursor(statement, arguments: arguments)
                    while let row = try rows.next() {
                        let sequence: Int64 = try row.decode(atIndex: 0)
                        let record: OutboxRecord
                        do {
                            record = try Self.decodeRecord(row)
                        } catch {
                            let id = ((try? row.decode(String?.self, atIndex: 1)) ?? nil) ?? ""
                            quarantine.append((sequence, id, "undecodable row: \(error)"))
                            continue
                        }
                        if Millis.from(record.nextAttemptAt) > nowMillis { break }
                        let actual = sha256Hex(record.payload)
                        if actual != record.payloadSHA256 {
                            quarantine.append((
                                sequence, record.id,
                                "payload SHA-256 mismatch: stored \(record.payloadSHA256), computed \(actual) over \(record.payload.count) bytes"
                            ))
                            continue
                        }
                        if !batch.isEmpty && bytes + record.payload.count > maxBytes { break }
                        bytes += record.payload.count
                        var handedOut = record
                        handedOut.state = .inFlight
                        batch.append(handedOut)
                        if batch.count >= limit { break }
                    }
                }
                let quarantinedAt = Millis.from(Date())
                for entry in quarantine {
                    try db.cachedStatement(sql: """
                        INSERT INTO quarantine (sequence, id, payload, reason, quarantined_at)
                        SELECT sequence, coalesce(CAST(id AS TEXT), ''), payload, ?, ? FROM outbox WHERE sequence = ?
                        """).execute(arguments: [entry.reason, quarantinedAt, entry.sequence])
                    try db.cachedStatement(sql: "DELETE FROM outbox WHERE sequence = ?").execute(arguments: [entry.sequence])
                }
                let markInFlight = try db.cachedStatement(sql: "UPDATE outbox SET state = 'in_flight' WHERE sequence = ?")
                for record in batch {
                    try markInFlight.execute(arguments: [record.sequence])
                }
                return (batch, quarantine)
            }
            for entry in quarantined {
                logger.error(
                    "outbox row failed its integrity check: quarantined",
                    metadata: ["sequence": "\(entry.sequence)", "id": "\(entry.id)", "reason": "\(entry.reason)"])
            }
            return batch
        } catch {
            throw Self.mapError(error)
        }
    }

    /// Hands in-flight rows back as `pending`, attempts and due time unchanged: a batch read ahead
    /// that was never sent (``nextBatch(limit:maxBytes:now:following:)``).
    public func release(ids: [String]) throws {
        guard !ids.isEmpty else { return }
        try write(durable: false) { db in
            let update = try db.cachedStatement(sql: "UPDATE outbox SET state = 'pending' WHERE id = ? AND state = 'in_flight'")
            for id in ids { try update.execute(arguments: [id]) }
        }
    }

    /// Marks rows as acknowledged by the server (`synced`, `syncedAt = now`).
    ///
    /// Accepts rows in any unsynced state; already-synced rows keep their first `syncedAt`. Ids not in the
    /// outbox (already purged or quarantined) are skipped with a warning, so an acknowledgement can be
    /// replayed safely.
    public func markSynced(ids: [String], now: Date = Date()) throws {
        guard !ids.isEmpty else { return }
        let nowMillis = Millis.from(now)
        let missing = try write(durable: false) { db in
            let update = try db.cachedStatement(
                sql: "UPDATE outbox SET state = 'synced', synced_at = ? WHERE id = ? AND state <> 'synced'")
            var missing: [String] = []
            for id in ids {
                try update.execute(arguments: [nowMillis, id])
                if db.changesCount == 0, try !Self.exists(db, id: id) {
                    missing.append(id)
                }
            }
            return missing
        }
        if !missing.isEmpty {
            logger.warning("markSynced: ids not in the outbox were skipped", metadata: ["ids": "\(missing)"])
        }
    }

    /// Marks server-refused rows `rejected` with `reason`; they stay until an operator calls ``retry(id:)``.
    ///
    /// A rejection of an in-flight row counts as an attempt. Throws ``OutboxError/notFound(_:)`` when no
    /// unsynced row has this id.
    public func markRejected(id: String, reason: String) throws {
        let changed = try write { db in
            try db.cachedStatement(sql: """
                UPDATE outbox SET state = 'rejected', reject_reason = ?, attempts = attempts + (state = 'in_flight')
                WHERE id = ? AND state <> 'synced'
                """).execute(arguments: [reason, id])
            return db.changesCount
        }
        if changed == 0 { throw OutboxError.notFound(id) }
        logger.warning("outbox row rejected by the server", metadata: ["id": "\(id)", "reason": "\(reason)"])
    }

    /// Puts failed rows back to `pending` with `attempts += 1`, `lastError = error` and the given `nextAttemptAt`.
    ///
    /// Only pending or in-flight rows change: a failure report never resurrects a synced row nor
    /// auto-retries a rejected one. Other ids are skipped with a warning.
    public func markFailed(ids: [String], error: String, nextAttemptAt: Date) throws {
        guard !ids.isEmpty else { return }
        let nextMillis = Millis.from(nextAttemptAt)
        let skipped = try write(durable: false) { db in
            let update = try db.cachedStatement(sql: """
                UPDATE outbox SET state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt_at = ?
                WHERE id = ? AND state IN ('pending', 'in_flight')
                """)
            var skipped: [String] = []
            for id in ids {
                try update.execute(arguments: [error, nextMillis, id])
                if db.changesCount == 0 { skipped.append(id) }
            }
            return skipped
        }
        if !skipped.isEmpty {
            logger.warning("markFailed: ids not pending or in flight were skipped", metadata: ["ids": "\(skipped)"])
        }
    }

    /// Operator action: puts a `rejected` (or `pending`) row back to `pending`, due now, with attempts reset.
    ///
    /// The reject reason moves to `lastError`. Throws ``OutboxError/notFound(_:)`` when no rejected or
    /// pending row has this id.
    public func retry(id: String) throws {
        try retry(id: id, now: Date())
    }

    /// Operator action: puts a `rejected` (or `pending`) row back to `pending`, due at `now`, attempts reset.
    public func retry(id: String, now: Date) throws {
        let nowMillis = Millis.from(now)
        let changed = try write { db in
            try db.cachedStatement(sql: """
                UPDATE outbox SET state = 'pending', next_attempt_at = ?, attempts = 0, reject_reason = NULL,
                    last_error = CASE WHEN state = 'rejected' THEN 'rejected: ' || coalesce(reject_reason, '') ELSE last_error END
                WHERE id = ? AND state IN ('rejected', 'pending')
                """).execute(arguments: [nowMillis, id])
            return db.changesCount
        }
        if changed == 0 { throw OutboxError.notFound(id) }
        logger.notice("outbox row queued again by operator", metadata: ["id": "\(id)"])
    }

    /// Puts every `in_flight` row back to `pending` and returns how many changed.
    ///
    /// Crash recovery does this at open; call it only when no delivery is in progress (for instance
    /// after a sync task was cancelled without resolving its batch).
    @discardableResult
    public func requeueInFlight() throws -> Int {
        try write { db in
            try db.cachedStatement(sql: "UPDATE outbox SET state = 'pending' WHERE state = 'in_flight'").execute()
            return db.changesCount
        }
    }

    /// Deletes `synced` rows whose `syncedAt` is before `olderThan`; returns how many. Unsynced rows are never purged.
    public func purgeSynced(olderThan: Date) throws -> Int {
        let cutoff = Millis.from(olderThan)
        return try write(durable: false) { db in
            try db.cachedStatement(sql: "DELETE FROM outbox WHERE state = 'synced' AND synced_at < ?")
                .execute(arguments: [cutoff])
            return db.changesCount
        }
    }

    // MARK: - Inspection

    /// Current counters; O(1) in the backlog size.
    public func stats() throws -> OutboxStats {
        try read { db in
            var counts: [String: (rows: Int, bytes: Int64)] = [:]
            let countRows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT state, row_count, byte_count FROM outbox_state_counts"))
            while let row = try countRows.next() {
                let state: String = try row.decode(atIndex: 0)
                let rows: Int = try row.decode(atIndex: 1)
                let bytes: Int64 = try row.decode(atIndex: 2)
                counts[state] = (rows, bytes)
            }
            let quarantined = try Int.fetchOne(db.cachedStatement(sql: "SELECT count(*) FROM quarantine")) ?? 0
            let head = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT created_at, next_attempt_at FROM outbox WHERE state = 'pending' ORDER BY sequence LIMIT 1
                """))
            let unsyncedBytes = counts.filter { $0.key != OutboxState.synced.rawValue }.reduce(Int64(0)) { $0 + $1.value.bytes }
            return OutboxStats(
                pending: counts[OutboxState.pending.rawValue]?.rows ?? 0,
                inFlight: counts[OutboxState.inFlight.rawValue]?.rows ?? 0,
                synced: counts[OutboxState.synced.rawValue]?.rows ?? 0,
                rejected: counts[OutboxState.rejected.rawValue]?.rows ?? 0,
                quarantined: quarantined,
                unsyncedBytes: unsyncedBytes,
                oldestPendingCreatedAt: try head.map { Millis.date(try $0.decode(Int64.self, atIndex: 0)) },
                nextAttemptAt: try head.map { Millis.date(try $0.decode(Int64.self, atIndex: 1)) })
        }
    }

    /// Rows in ascending sequence, optionally only those in `states`, at most `limit`.
    public func list(states: Set<OutboxState>? = nil, limit: Int = 100) throws -> [OutboxRecord] {
        guard limit > 0 else { return [] }
        if let states, states.isEmpty { return [] }
        return try read { db in
            let statement: Statement
            var arguments: StatementArguments = []
            if let states {
                let sorted = states.map(\.rawValue).sorted()
                let placeholders = Array(repeating: "?", count: sorted.count).joined(separator: ", ")
                statement = try db.cachedStatement(sql: """
                    SELECT \(Self.recordColumns) FROM outbox WHERE state IN (\(placeholders)) ORDER BY sequence LIMIT ?
                    """)
                arguments += StatementArguments(sorted)
            } else {
                statement = try db.cachedStatement(sql: "SELECT \(Self.recordColumns) FROM outbox ORDER BY sequence LIMIT ?")
            }
            arguments += [limit]
            var records: [OutboxRecord] = []
            let rows = try Row.fetchCursor(statement, arguments: arguments)
            while let row = try rows.next() {
                records.append(try Self.decodeRecord(row))
            }
            return records
        }
    }

    /// The row with this id, or nil when it is not in the outbox.
    public func record(id: String) throws -> OutboxRecord? {
        try read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT \(Self.recordColumns) FROM outbox WHERE id = ?"), arguments: [id]
            ).map(Self.decodeRecord)
        }
    }

    /// Quarantined rows in ascending original sequence, at most `limit`.
    public func quarantined(limit: Int = 100) throws -> [QuarantinedRow] {
        guard limit > 0 else { return [] }
        return try read { db in
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: """
                    SELECT sequence, id, payload, reason, quarantined_at FROM quarantine ORDER BY sequence LIMIT ?
                    """),
                arguments: [limit])
            var result: [QuarantinedRow] = []
            while let row = try rows.next() {
                result.append(QuarantinedRow(
                    sequence: try row.decode(atIndex: 0),
                    id: try row.decode(atIndex: 1),
                    reason: try row.decode(atIndex: 3),
                    quarantinedAt: Millis.date(try row.decode(atIndex: 4)),
                    payload: try row.decode(Data?.self, atIndex: 2) ?? Data()))
            }
            return result
        }
    }

    /// `PRAGMA integrity_check` rows: `["ok"]` when the database is sound.
    public func integrityCheck() throws -> [String] {
        try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    /// Runs `PRAGMA wal_checkpoint(TRUNCATE)`: copies the WAL into the database and truncates it.
    ///
    /// Throws ``OutboxError/sqlite(code:message:)`` with SQLITE_BUSY (5) if readers kept it from completing
    /// within the busy timeout.
    public func checkpoint() throws {
        do {
            _ = try perform(nil) { db in try db.checkpoint(.truncate) }
        } catch {
            throw Self.mapError(error)
        }
    }

    // MARK: - Internals

    /// Columns read into an ``OutboxRecord``, in ``decodeRecord(_:)`` order.
    static let recordColumns = """
        sequence, id, payload, payload_sha256, state, attempts, next_attempt_at, last_error, created_at, synced_at, reject_reason
        """

    /// Lowest in-flight sequence: `nextBatch` never hands out rows behind it.
    static let inFlightHeadSQL = "SELECT sequence FROM outbox WHERE state = 'in_flight' ORDER BY sequence LIMIT 1"

    /// Whether a pending row comes before a sequence.
    static let pendingBeforeSQL = "SELECT EXISTS (SELECT 1 FROM outbox WHERE state = 'pending' AND sequence < ?)"

    /// Pending rows after a sequence, in delivery order.
    static let pendingAfterSQL = """
        SELECT \(recordColumns) FROM outbox WHERE state = 'pending' AND sequence > ? ORDER BY sequence
        """

    /// Pending rows before a bound, in delivery order (a range scan of `outbox_state_sequence`, no sort).
    static let pendingScanSQL = """
        SELECT \(recordColumns) FROM outbox WHERE state = 'pending' AND sequence < ? ORDER BY sequence
        """

    /// Decodes a row selected with ``recordColumns``; a stored value of the wrong type throws
    /// ``OutboxError/sqlite(code:message:)`` with SQLITE_MISMATCH (20).
    static func decodeRecord(_ row: Row) throws -> OutboxRecord {
        do {
            let rawState: String = try row.decode(atIndex: 4)
            guard let state = OutboxState(rawValue: rawState) else {
                throw OutboxError.sqlite(code: SQLiteCode.mismatch, message: "unknown outbox state \"\(rawState)\"")
            }
            return OutboxRecord(
                sequence: try row.decode(atIndex: 0),
                id: try row.decode(atIndex: 1),
                payload: try row.decode(atIndex: 2),
                payloadSHA256: try row.decode(atIndex: 3),
                state: state,
                attempts: try row.decode(atIndex: 5),
                nextAttemptAt: Millis.date(try row.decode(atIndex: 6)),
                lastError: try row.decode(atIndex: 7),
                createdAt: Millis.date(try row.decode(atIndex: 8)),
                syncedAt: try row.decode(Int64?.self, atIndex: 9).map(Millis.date),
                rejectReason: try row.decode(atIndex: 10))
        } catch let error as OutboxError {
            throw error
        } catch {
            throw OutboxError.sqlite(code: SQLiteCode.mismatch, message: "undecodable outbox row: \(error)")
        }
    }

    /// Unsynced row count and payload bytes, from the trigger-maintained counters.
    /// Why an application of about `expectedBytes` would be refused now (rows, bytes or free disk
    /// space at their limits), or `nil` when it would be taken: asked before an offer is made, so
    /// that a shopper is never asked to consent to an application the kiosk cannot keep.
    public func admissionProblem(expectedBytes: Int64 = 16 << 10) throws -> String? {
        if let reason = try diskRefusal() { return reason }
        let limits = self.limits
        return try perform(nil) { db in
            Self.capacityRefusal(usage: try Self.unsyncedUsage(db), rows: 1, bytes: expectedBytes, limits: limits)
        }
    }

    /// The refusal for free disk space below `minFreeDiskBytes`, if any.
    private func diskRefusal() throws -> String? {
        let free = try FileSupport.freeBytes(at: path)
        guard free < limits.minFreeDiskBytes else { return nil }
        return "disk: \(free) free bytes on the filesystem of \(path) < minFreeDiskBytes \(limits.minFreeDiskBytes)"
    }

    /// The refusal for `rows` more rows of `bytes` in all on top of `usage`, if any.
    static func capacityRefusal(usage: (rows: Int64, bytes: Int64), rows: Int, bytes: Int64, limits: OutboxLimits) -> String? {
        if usage.rows + Int64(rows) > Int64(limits.maxRows) {
            return "rows: \(usage.rows) unsynced rows + \(rows) > maxRows \(limits.maxRows)"
        }
        let (total, overflow) = usage.bytes.addingReportingOverflow(bytes)
        if overflow || total > limits.maxBytes {
            return "bytes: \(usage.bytes) unsynced bytes + \(bytes) payload bytes > maxBytes \(limits.maxBytes)"
        }
        return nil
    }

    static func unsyncedUsage(_ db: Database) throws -> (rows: Int64, bytes: Int64) {
        let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT coalesce(sum(row_count), 0), coalesce(sum(byte_count), 0) FROM outbox_state_counts WHERE state <> 'synced'
            """))
        guard let row else { return (0, 0) }
        return (try row.decode(atIndex: 0), try row.decode(atIndex: 1))
    }

    private static func exists(_ db: Database, id: String) throws -> Bool {
        try Int.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM outbox WHERE id = ?"), arguments: [id]) != nil
    }

    /// Runs `body` on the serialized connection inside a transaction of `kind` (no transaction when nil).
    ///
    /// IMMEDIATE for writes takes the write lock up front, so a write never has to upgrade a read lock
    /// (an SQLITE_BUSY that the busy timeout cannot resolve when another process writes concurrently).
    func perform<T>(_ kind: Database.TransactionKind?, durable: Bool = true, _ body: (Database) throws -> T) throws -> T {
        try dbQueue.writeWithoutTransaction { db in
            guard !closed.value else {
                throw OutboxError.sqlite(code: SQLiteCode.misuse, message: "the outbox at \(path) is closed")
            }
            if !durable {
                // Delivery bookkeeping: committed to the WAL without its own fsync. The next
                // durable commit (an enqueue) fsyncs the WAL and with it everything before, in
                // order. A power cut can forget it, which only means a resend that central
                // deduplicates by id.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            defer { if !durable { try? db.execute(sql: "PRAGMA synchronous = FULL") } }
            guard let kind else { return try body(db) }
            var result: T?
            try db.inTransaction(kind) {
                result = try body(db)
                return .commit
            }
            guard let result else {
                throw OutboxError.sqlite(code: SQLiteCode.error, message: "transaction produced no result")
            }
            return result
        }
    }

    /// Runs `updates` in an IMMEDIATE write transaction, mapping every error to ``OutboxError``.
    func write<T>(durable: Bool = true, _ updates: (Database) throws -> T) throws -> T {
        do {
            return try perform(.immediate, durable: durable, updates)
        } catch {
            throw Self.mapError(error)
        }
    }

    /// Runs `value` in a DEFERRED (read) transaction, mapping every error to ``OutboxError``.
    func read<T>(_ value: (Database) throws -> T) throws -> T {
        do {
            return try perform(.deferred, value)
        } catch {
            throw Self.mapError(error)
        }
    }

    /// Maps any error to ``OutboxError``: SQLITE_FULL becomes `.full`, other SQLite errors `.sqlite`.
    static func mapError(_ error: any Error) -> OutboxError {
        switch error {
        case let error as OutboxError:
            return error
        case let error as DatabaseError:
            let code = error.resultCode.rawValue
            var message = error.message ?? SQLiteCode.name(code)
            if error.extendedResultCode.rawValue != code {
                message += " (extended code \(error.extendedResultCode.rawValue))"
            }
            if error.resultCode == .SQLITE_FULL {
                return .full(reason: "disk full (SQLITE_FULL=13): \(message)")
            }
            return .sqlite(code: code, message: message)
        case is CancellationError:
            return .sqlite(code: SQLiteCode.interrupt, message: "cancelled")
        default:
            return .sqlite(code: SQLiteCode.error, message: "\(error)")
        }
    }

    private enum OpenFailure: Error {
        /// Not a database, corrupt, or failing quick_check: to be set aside.
        case unusable(code: Int32, reason: String)
        /// Any other failure (permissions, I/O, busy...): never set aside.
        case other(code: Int32, reason: String)
    }

    /// Result of inspecting an existing file before any read-write connection touches it.
    private enum Inspection {
        case healthy
        case unusable(code: Int32, reason: String)
        /// The read-only check could not run (e.g. a hot rollback journal needs a writer): check on the writer.
        case inconclusive
    }

    /// Opens `path` read-write with the outbox configuration once it has been found sound.
    private static func openChecked(path: String) -> Result<DatabaseQueue, OpenFailure> {
        var checkOnWriter = false
        switch inspect(path: path) {
        case .healthy:
            break
        case .unusable(let code, let reason):
            return .failure(.unusable(code: code, reason: reason))
        case .inconclusive:
            checkOnWriter = true
        }
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration())
        } catch {
            return .failure(classify(error))
        }
        if checkOnWriter, let failure = quickCheck(queue) {
            try? queue.close()
            return .failure(failure)
        }
        return .success(queue)
    }

    /// Checks the file without modifying it: the header magic, then `PRAGMA quick_check` on a read-only
    /// connection. A read-only connection never checkpoints into the file nor deletes its WAL when it
    /// closes, so a corrupt database and its WAL are set aside byte for byte as found.
    private static func inspect(path: String) -> Inspection {
        let size = FileSupport.fileSize(path) ?? 0
        if size == 0 {
            // SQLite would delete a WAL found beside an empty database file; never let it.
            if (FileSupport.fileSize(path + "-wal") ?? 0) > 0 {
                return .unusable(code: SQLiteCode.corrupt, reason: "empty database file beside a non-empty WAL")
            }
            return .healthy
        }
        let magic = Data("SQLite format 3\u{0}".utf8)
        guard FileSupport.prefix(path, count: magic.count) == magic else {
            return .unusable(code: SQLiteCode.notADatabase, reason: "file does not start with the SQLite header")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(busyTimeout)
        config.label = "kiosk.outbox.check"
        let reader: DatabaseQueue
        do {
            reader = try DatabaseQueue(path: path, configuration: config)
        } catch {
            if case .unusable(let code, let reason) = classify(error) { return .unusable(code: code, reason: reason) }
            return .inconclusive
        }
        defer { try? reader.close() }
        switch quickCheck(reader) {
        case nil:
            return .healthy
        case .unusable(let code, let reason)?:
            return .unusable(code: code, reason: reason)
        case .other?:
            return .inconclusive
        }
    }

    /// Runs `PRAGMA quick_check`; nil when it reports "ok".
    private static func quickCheck(_ queue: DatabaseQueue) -> OpenFailure? {
        do {
            let result = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            if result == ["ok"] { return nil }
            let summary = result.prefix(5).joined(separator: "; ")
            return .unusable(code: SQLiteCode.corrupt, reason: "quick_check failed: \(summary)")
        } catch {
            return classify(error)
        }
    }

    private static func classify(_ error: any Error) -> OpenFailure {
        guard let error = error as? DatabaseError else {
            return .other(code: SQLiteCode.error, reason: "\(error)")
        }
        let code = error.resultCode.rawValue
        let reason = "\(SQLiteCode.name(code)): \(error.message ?? "")"
        if error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB {
            return .unusable(code: code, reason: reason)
        }
        return .other(code: code, reason: reason)
    }

    /// Connection configuration: WAL, synchronous=FULL, a 512 KiB page cache, foreign keys, busy timeout.
    static func configuration() -> Configuration {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(busyTimeout)
        config.label = "kiosk.outbox"
        config.prepareDatabase { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw DatabaseError(resultCode: .SQLITE_ERROR, message: "cannot enable WAL (journal_mode is \(mode ?? "nil"))")
            }
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // SQLite's default page cache is 2 MiB per connection, the largest single block of the
            // agent's anonymous memory during a drain. The outbox appends at the end of its tables and reads them in order: the pages it
            // revisits (the B-trees' inner pages, the pending index) fit in 512 KiB; the kernel's page
            // cache holds the rest.
            try db.execute(sql: "PRAGMA cache_size = -512")
        }
        return config
    }

    /// Crash recovery: in-flight rows go back to pending; the per-state counters are verified and repaired.
    private static func recover(_ queue: DatabaseQueue, logger: Logger) throws -> Int {
        do {
            let (requeued, drift) = try queue.write { db -> (Int, String?) in
                try db.execute(sql: "UPDATE outbox SET state = 'pending' WHERE state = 'in_flight'")
                let requeued = db.changesCount
                let actual = try Row.fetchAll(db, sql: """
                    SELECT s.state, count(o.sequence), coalesce(sum(o.payload_size), 0)
                    FROM outbox_state_counts s LEFT JOIN outbox o ON o.state = s.state GROUP BY s.state
                    """)
                let stored = try Row.fetchAll(db, sql: "SELECT state, row_count, byte_count FROM outbox_state_counts ORDER BY state")
                let render = { (row: Row) -> String in
                    let state = ((try? row.decode(String?.self, atIndex: 0)) ?? nil) ?? "?"
                    let rows = ((try? row.decode(Int64?.self, atIndex: 1)) ?? nil) ?? -1
                    let bytes = ((try? row.decode(Int64?.self, atIndex: 2)) ?? nil) ?? -1
                    return "\(state)=\(rows)/\(bytes)"
                }
                let actualText = actual.map(render)
                let storedText = stored.map(render)
                guard actualText.sorted() != storedText.sorted() else { return (requeued, nil) }
                try db.execute(sql: """
                    UPDATE outbox_state_counts SET
                        row_count = (SELECT count(*) FROM outbox WHERE outbox.state = outbox_state_counts.state),
                        byte_count = (SELECT coalesce(sum(payload_size), 0) FROM outbox WHERE outbox.state = outbox_state_counts.state)
                    """)
                return (requeued, "stored \(storedText.sorted()) actual \(actualText.sorted())")
            }
            if requeued > 0 {
                logger.warning(
                    "crash recovery: in-flight outbox rows put back to pending (at-least-once delivery)",
                    metadata: ["count": "\(requeued)"])
            }
            if let drift {
                logger.error("outbox counters were inconsistent and have been rebuilt", metadata: ["detail": "\(drift)"])
            }
            return requeued
        } catch {
            throw mapError(error)
        }
    }
}

/// A Bool behind a lock.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false

    /// The current value.
    var value: Bool {
        get {
            lock.lock()
            defer { lock.unlock() }
            return stored
        }
        set {
            lock.lock()
            defer { lock.unlock() }
            stored = newValue
        }
    }
}

/// Dates are stored as INTEGER milliseconds since the Unix epoch, rounded to the nearest millisecond.
enum Millis {
    /// Milliseconds since 1970 for `date`, clamped to the Int64 range.
    static func from(_ date: Date) -> Int64 {
        let millis = (date.timeIntervalSince1970 * 1000).rounded()
        if millis.isNaN { return 0 }
        if millis >= 9.2e18 { return Int64.max }
        if millis <= -9.2e18 { return Int64.min }
        return Int64(millis)
    }

    /// The date for a stored millisecond value.
    static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }
}
