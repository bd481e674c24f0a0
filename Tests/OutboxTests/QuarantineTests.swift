import Foundation
import KioskCore
import GRDB
import Testing

@testable import Outbox

/// Rows whose payload fails its SHA-256 check are quarantined by nextBatch.
@Suite("Quarantine")
struct QuarantineTests {
    @Test("A row corrupted behind the outbox's back is quarantined and the others are still delivered")
    func corruptPayload() throws {
        try withTempDir { dir in
            let capture = LogCapture()
            let outbox = try Outbox(path: dir.dbPath, logger: capture.logger)
            for id in ["a", "b", "c", "d"] { _ = try outbox.enqueue(id: id, payload: payload(id, size: 64), now: t0) }
            let sequenceB = try #require(try outbox.record(id: "b")).sequence

            // Flip payload bytes of "b" through a second, independent connection.
            var corrupted = payload("b", size: 64)
            corrupted[10] ^= 0xFF
            let raw = try rawConnection(dir.dbPath)
            try raw.write { db in
                try db.execute(sql: "UPDATE outbox SET payload = ? WHERE id = 'b'", arguments: [corrupted])
            }
            try raw.close()

            let batch = try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0)
            #expect(batch.map(\.id) == ["a", "c", "d"])
            #expect(try outbox.record(id: "b") == nil)

            let quarantined = try outbox.quarantined()
            #expect(quarantined.count == 1)
            let row = try #require(quarantined.first)
            #expect(row.id == "b")
            #expect(row.sequence == sequenceB)
            #expect(row.payload == corrupted)
            #expect(row.reason.contains("SHA-256 mismatch"))
            #expect(row.reason.contains(sha256Hex(payload("b", size: 64))))
            #expect(row.quarantinedAt.timeIntervalSinceNow < 5)

            #expect(capture.messages(at: .error).contains { $0.contains("quarantined") })
            let stats = try outbox.stats()
            #expect(stats.quarantined == 1)
            #expect(stats.inFlight == 3)
            #expect(stats.pending == 0)
            #expect(stats.unsyncedBytes == 3 * 64)
        }
    }

    @Test("Quarantine and in-flight marking commit together; the batch limit counts only delivered rows")
    func quarantineWithinLimit() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for id in ["a", "b", "c"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            let raw = try rawConnection(dir.dbPath)
            try raw.write { db in
                try db.execute(sql: "UPDATE outbox SET payload_sha256 = 'deadbeef' WHERE id IN ('a', 'b')")
            }
            try raw.close()
            #expect(try outbox.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0).map(\.id) == ["c"])
            #expect(try outbox.quarantined().map(\.id) == ["a", "b"])
            #expect(try outbox.quarantined(limit: 1).map(\.id) == ["a"])

            // The quarantine survives a reopen.
            try outbox.close()
            let reopened = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(try reopened.quarantined().map(\.id) == ["a", "b"])
            #expect(try reopened.stats().quarantined == 2)
        }
    }

    @Test("Type-confused columns written behind the outbox's back do not crash delivery")
    func typeConfusedColumns() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for id in ["a", "b"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            let raw = try rawConnection(dir.dbPath)
            try raw.write { db in
                try db.execute(sql: "UPDATE outbox SET last_error = X'00FF', attempts = 'many' WHERE id = 'a'")
            }
            try raw.close()
            // The payload still matches its digest, so the row is delivered rather than quarantined.
            let batch = try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0)
            #expect(batch.map(\.id) == ["a", "b"])
            #expect(batch.first?.payload == payload("a"))
            #expect(try outbox.quarantined().isEmpty)
        }
    }
}
