import Foundation
import GRDB
import Testing

@testable import Outbox

/// Durability, crash recovery, owner lock, configuration and file modes.
@Suite("Durability and recovery")
struct DurabilityTests {
    @Test("An enqueued row is visible to a fresh Outbox on the same path, while open and after close")
    func durableAcrossInstances() throws {
        try withTempDir { dir in
            let first = try Outbox(path: dir.dbPath, logger: quietLogger)
            let sequence = try first.enqueue(id: "a", payload: payload("a"), now: t0)
            #expect(sequence > 0)

            let concurrent = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(try concurrent.record(id: "a")?.sequence == sequence)
            try concurrent.close()
            try first.close()

            let reopened = try Outbox(path: dir.dbPath, logger: quietLogger)
            let record = try #require(try reopened.record(id: "a"))
            #expect(record.sequence == sequence)
            #expect(record.payload == payload("a"))
            #expect(record.state == .pending)
            // Sequences are never reused, even after purge.
            _ = try reopened.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0)
            try reopened.markSynced(ids: ["a"], now: t0)
            #expect(try reopened.purgeSynced(olderThan: .distantFuture) == 1)
            #expect(try reopened.enqueue(id: "b", payload: payload("b"), now: t0) > sequence)
        }
    }

    @Test("Crash recovery: in-flight rows go back to pending when the owner reopens")
    func crashRecoveryOnReopen() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                for id in ["a", "b", "c"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
                #expect(try outbox.nextBatch(limit: 2, maxBytes: 1 << 20, now: t0).map(\.id) == ["a", "b"])
                try outbox.close()  // the process "dies" with a and b in flight
            }
            let capture = LogCapture()
            let reopened = try Outbox(path: dir.dbPath, logger: capture.logger)
            #expect(reopened.isOwner)
            #expect(reopened.recoveredInFlightCount == 2)
            #expect(try reopened.record(id: "a")?.state == .pending)
            #expect(try reopened.stats().inFlight == 0)
            #expect(try reopened.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0).map(\.id) == ["a", "b", "c"])
            #expect(capture.messages(at: .warning).contains { $0.contains("crash recovery") })
        }
    }

    @Test("Crash recovery after an unclean stop (rows left in_flight by a process that never closed)")
    func crashRecoveryAfterKill() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                for id in ["a", "b"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            }
            // What a killed process leaves behind: rows in flight, written by some other connection.
            let raw = try rawConnection(dir.dbPath)
            try raw.write { db in try db.execute(sql: "UPDATE outbox SET state = 'in_flight'") }
            try raw.close()

            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(outbox.recoveredInFlightCount == 2)
            #expect(try outbox.list().map(\.state) == [.pending, .pending])
            #expect(try outbox.stats().pending == 2)
        }
    }

    @Test("A second live instance does not reset the owner's in-flight rows")
    func nonOwnerDoesNotRecover() throws {
        try withTempDir { dir in
            let owner = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(owner.isOwner)
            _ = try owner.enqueue(id: "a", payload: payload("a"), now: t0)
            _ = try owner.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0)

            let second = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(!second.isOwner)
            #expect(second.recoveredInFlightCount == 0)
            #expect(try second.record(id: "a")?.state == .inFlight)

            // Ownership passes on once the owner is gone.
            try owner.close()
            try second.close()
            let next = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(next.isOwner)
            #expect(try next.record(id: "a")?.state == .pending)
        }
    }

    @Test("Counters are rebuilt by the owner if they ever drift")
    func counterRepair() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                for id in ["a", "b"] { _ = try outbox.enqueue(id: id, payload: payload(id, size: 50), now: t0) }
            }
            let raw = try rawConnection(dir.dbPath)
            try raw.write { db in try db.execute(sql: "UPDATE outbox_state_counts SET row_count = 99, byte_count = 7") }
            try raw.close()
            let capture = LogCapture()
            let outbox = try Outbox(path: dir.dbPath, logger: capture.logger)
            let stats = try outbox.stats()
            #expect(stats.pending == 2)
            #expect(stats.synced == 0)
            #expect(stats.unsyncedBytes == 100)
            #expect(capture.messages(at: .error).contains { $0.contains("counters") })
        }
    }

    @Test("SQLite is configured for durability: WAL, synchronous=FULL, foreign keys, busy timeout")
    func pragmas() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            try outbox.dbQueue.read { db in
                #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
                #expect(try Int.fetchOne(db, sql: "PRAGMA synchronous") == 2)  // FULL
                #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_keys") == 1)
                #expect(try Int.fetchOne(db, sql: "PRAGMA busy_timeout") ?? 0 >= 1000)
                #expect(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") == ["v1-outbox", "v2-checkouts"])
                let indexes = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'")
                #expect(indexes.contains("outbox_state_sequence"))
                #expect(try Bool.fetchOne(db, sql: "SELECT 1 FROM sqlite_master WHERE name = 'quarantine'") == true)
            }
            #expect(OutboxSchema.migrationIdentifiers == ["v1-outbox", "v2-checkouts"])
        }
    }

    @Test("The schema rejects invalid states and empty ids")
    func schemaChecks() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            #expect(throws: DatabaseError.self) {
                try outbox.dbQueue.write { db in try db.execute(sql: "UPDATE outbox SET state = 'lost'") }
            }
            do {
                _ = try outbox.enqueue(id: "", payload: payload("x"), now: t0)
                Issue.record("empty id accepted")
            } catch let error as OutboxError {
                guard case .sqlite(let code, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(code == 19)  // SQLITE_CONSTRAINT
            }
        }
    }

    @Test("Database files are private (0600), including a pre-existing world-readable file")
    func fileModes() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            #expect(try permissions(dir.dbPath) == 0o600)
            #expect(try permissions(dir.dbPath + "-wal") == 0o600)
            #expect(try permissions(dir.dbPath + "-shm") == 0o600)
            try outbox.close()

            #expect(chmod(dir.dbPath, 0o644) == 0)
            _ = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(try permissions(dir.dbPath) == 0o600)
        }
    }

    @Test("integrityCheck reports ok and checkpoint truncates the WAL")
    func integrityAndCheckpoint() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for index in 0 ..< 20 { _ = try outbox.enqueue(id: "r\(index)", payload: payload("r\(index)", size: 2000), now: t0) }
            #expect(try outbox.integrityCheck() == ["ok"])
            let walBefore = try FileManager.default.attributesOfItem(atPath: dir.dbPath + "-wal")[.size] as? NSNumber
            #expect((walBefore?.intValue ?? 0) > 0)
            try outbox.checkpoint()
            let walAfter = try FileManager.default.attributesOfItem(atPath: dir.dbPath + "-wal")[.size] as? NSNumber
            #expect(walAfter?.intValue == 0)
            #expect(try outbox.list(limit: 100).count == 20)
        }
    }

    @Test("Operations after close fail with a typed SQLite error")
    func useAfterClose() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            try outbox.close()
            do {
                _ = try outbox.stats()
                Issue.record("stats succeeded on a closed outbox")
            } catch let error as OutboxError {
                guard case .sqlite(let code, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(code == 21)  // SQLITE_MISUSE
            }
        }
    }

    @Test("An unusable path is reported as a typed error, not a crash")
    func unopenablePath() throws {
        try withTempDir { dir in
            let path = dir.url.appendingPathComponent("missing-dir/outbox.sqlite").path
            #expect(throws: OutboxError.self) { try Outbox(path: path, logger: quietLogger) }
        }
    }

    @Test("Error descriptions name the SQLite result code")
    func errorDescriptions() {
        #expect(OutboxError.sqlite(code: 11, message: "x").description.contains("SQLITE_CORRUPT"))
        #expect(OutboxError.sqlite(code: 5, message: "x").description.contains("SQLITE_BUSY"))
        #expect(OutboxError.duplicateID("a").description.contains("2067"))
        let mapped = Outbox.mapError(DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full"))
        guard case .full(let reason) = mapped else {
            Issue.record("SQLITE_FULL mapped to \(mapped)")
            return
        }
        #expect(reason.contains("SQLITE_FULL=13"))
        let corrupt = Outbox.mapError(DatabaseError(resultCode: .SQLITE_CORRUPT_INDEX, message: "bad index"))
        guard case .sqlite(let code, let message) = corrupt else {
            Issue.record("SQLITE_CORRUPT mapped to \(corrupt)")
            return
        }
        #expect(code == 11)
        #expect(message.contains("779"))  // extended code kept in the message
    }
}
