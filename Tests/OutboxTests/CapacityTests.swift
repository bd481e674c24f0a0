import Foundation
import GRDB
import Testing

@testable import Outbox

/// Capacity refusal, duplicate ids and retention.
@Suite("Capacity, duplicates and retention")
struct CapacityTests {
    @Test("Row limit: refusal is typed, nothing is evicted, and enqueue works again after sync + purge")
    func rowLimit() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, limits: OutboxLimits(maxRows: 3, minFreeDiskBytes: 0), logger: quietLogger)
            for id in ["a", "b", "c"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            do {
                _ = try outbox.enqueue(id: "d", payload: payload("d"), now: t0)
                Issue.record("4th row accepted with maxRows 3")
            } catch {
                #expect(isFull(error, mentioning: "rows"))
                #expect(isFull(error, mentioning: "3"))
            }
            #expect(try outbox.list().map(\.id) == ["a", "b", "c"])
            #expect(try outbox.record(id: "d") == nil)

            // Rejected and in-flight rows still count: they are unsynced.
            _ = try outbox.nextBatch(limit: 2, maxBytes: 1 << 20, now: t0)
            try outbox.markRejected(id: "a", reason: "no")
            #expect(throws: OutboxError.self) { try outbox.enqueue(id: "d", payload: payload("d"), now: t0) }

            try outbox.markSynced(ids: ["b"], now: t0)
            _ = try outbox.enqueue(id: "d", payload: payload("d"), now: t0)
            #expect(throws: OutboxError.self) { try outbox.enqueue(id: "e", payload: payload("e"), now: t0) }
            _ = try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0)
            try outbox.markSynced(ids: ["c", "d"], now: t0)
            #expect(try outbox.purgeSynced(olderThan: .distantFuture) == 3)
            _ = try outbox.enqueue(id: "e", payload: payload("e"), now: t0)
            _ = try outbox.enqueue(id: "f", payload: payload("f"), now: t0)
            #expect(try outbox.list().map(\.id) == ["a", "e", "f"])
        }
    }

    @Test("Byte limit counts unsynced payload bytes plus the new payload")
    func byteLimit() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, limits: OutboxLimits(maxBytes: 100, minFreeDiskBytes: 0), logger: quietLogger)
            _ = try outbox.enqueue(id: "a", payload: payload("a", size: 60), now: t0)
            do {
                _ = try outbox.enqueue(id: "b", payload: payload("b", size: 41), now: t0)
                Issue.record("accepted 101 bytes with maxBytes 100")
            } catch {
                #expect(isFull(error, mentioning: "bytes"))
                #expect(isFull(error, mentioning: "100"))
            }
            _ = try outbox.enqueue(id: "b", payload: payload("b", size: 40), now: t0)  // exactly 100
            #expect(try outbox.stats().unsyncedBytes == 100)
            #expect(throws: OutboxError.self) { try outbox.enqueue(id: "c", payload: payload("c", size: 1), now: t0) }
            #expect(try outbox.list().map(\.id) == ["a", "b"])

            _ = try outbox.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0)
            try outbox.markSynced(ids: ["a"], now: t0)
            #expect(try outbox.stats().unsyncedBytes == 40)
            _ = try outbox.enqueue(id: "c", payload: payload("c", size: 60), now: t0)
            // A payload larger than the whole budget is refused, not truncated.
            #expect(throws: OutboxError.self) { try outbox.enqueue(id: "huge", payload: payload("huge", size: 101), now: t0) }
        }
    }

    @Test("Free-disk limit: a huge minFreeDiskBytes refuses before writing")
    func diskLimit() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            }
            let outbox = try Outbox(path: dir.dbPath, limits: OutboxLimits(minFreeDiskBytes: Int64.max), logger: quietLogger)
            do {
                _ = try outbox.enqueue(id: "b", payload: payload("b"), now: t0)
                Issue.record("enqueue accepted with minFreeDiskBytes = Int64.max")
            } catch {
                #expect(isFull(error, mentioning: "disk"))
                #expect(isFull(error, mentioning: "minFreeDiskBytes"))
            }
            #expect(try outbox.list().map(\.id) == ["a"])
            // Asked before an offer, the outbox gives the same reason without writing anything.
            let problem = try outbox.admissionProblem()
            #expect(problem?.hasPrefix("disk: ") == true && problem?.contains("minFreeDiskBytes") == true)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0).map(\.id) == ["a"])
        }
    }

    @Test("SQLITE_FULL on write maps to .full(disk full) and leaves the queue intact")
    func sqliteFull() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, limits: OutboxLimits(minFreeDiskBytes: 0), logger: quietLogger)
            _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            // Cap the database at its current size so the next page allocation fails with SQLITE_FULL.
            try outbox.dbQueue.writeWithoutTransaction { db in
                let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                try db.execute(sql: "PRAGMA max_page_count = \(pages)")
            }
            do {
                _ = try outbox.enqueue(id: "big", payload: payload("big", size: 256 * 1024), now: t0)
                Issue.record("enqueue succeeded past max_page_count")
            } catch {
                #expect(isFull(error, mentioning: "disk full"))
                #expect(isFull(error, mentioning: "SQLITE_FULL=13"))
            }
            #expect(try outbox.record(id: "big") == nil)
            #expect(try outbox.list().map(\.id) == ["a"])
            #expect(try outbox.stats().pending == 1)
        }
    }

    @Test("Duplicate id is refused with .duplicateID and changes nothing")
    func duplicateID() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            let first = try outbox.enqueue(id: "app-1", payload: payload("one"), now: t0)
            do {
                _ = try outbox.enqueue(id: "app-1", payload: payload("two"), now: t0)
                Issue.record("duplicate id accepted")
            } catch let error as OutboxError {
                guard case .duplicateID(let id) = error else {
                    Issue.record("expected .duplicateID, got \(error)")
                    return
                }
                #expect(id == "app-1")
            }
            #expect(try outbox.record(id: "app-1")?.payload == payload("one"))
            #expect(try outbox.stats().pending == 1)
            #expect(try outbox.stats().unsyncedBytes == Int64(payload("one").count))

            // Still a duplicate while synced and not yet purged.
            _ = try outbox.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0)
            try outbox.markSynced(ids: ["app-1"], now: t0)
            #expect(throws: OutboxError.self) { try outbox.enqueue(id: "app-1", payload: payload("two"), now: t0) }
            #expect(try outbox.enqueue(id: "app-2", payload: payload("two"), now: t0) == first + 1)
        }
    }

    @Test("purgeSynced deletes only synced rows older than the cutoff")
    func retention() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for id in ["a", "b", "c", "d", "e"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            _ = try outbox.nextBatch(limit: 4, maxBytes: 1 << 20, now: t0)
            try outbox.markSynced(ids: ["a"], now: t0.addingTimeInterval(10))
            try outbox.markSynced(ids: ["b"], now: t0.addingTimeInterval(100))
            try outbox.markRejected(id: "c", reason: "no")
            try outbox.markFailed(ids: ["d"], error: "503", nextAttemptAt: t0)

            #expect(try outbox.purgeSynced(olderThan: t0.addingTimeInterval(10)) == 0)  // strictly older
            #expect(try outbox.purgeSynced(olderThan: t0.addingTimeInterval(50)) == 1)
            #expect(try outbox.list().map(\.id) == ["b", "c", "d", "e"])
            #expect(try outbox.purgeSynced(olderThan: .distantFuture) == 1)
            #expect(try outbox.list().map(\.id) == ["c", "d", "e"])
            #expect(try outbox.list().map(\.state) == [.rejected, .pending, .pending])
            let stats = try outbox.stats()
            #expect(stats.synced == 0 && stats.rejected == 1 && stats.pending == 2)
        }
    }
}
