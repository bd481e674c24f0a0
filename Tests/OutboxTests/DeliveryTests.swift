import Foundation
import KioskCore
import Testing

@testable import Outbox

/// Delivery order and the row state machine.
@Suite("Delivery order and state machine")
struct DeliveryTests {
    @Test("Rows are delivered in ascending sequence with their payloads intact")
    func deliveryOrder() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            var sequences: [Int64] = []
            for index in 0 ..< 10 {
                sequences.append(try outbox.enqueue(id: "app-\(index)", payload: payload("app-\(index)"), now: t0))
            }
            #expect(sequences == sequences.sorted())
            #expect(Set(sequences).count == 10)

            let first = try outbox.nextBatch(limit: 4, maxBytes: 1 << 20, now: t0)
            #expect(first.map(\.id) == ["app-0", "app-1", "app-2", "app-3"])
            #expect(first.allSatisfy { $0.state == .inFlight })
            #expect(first.map(\.payload) == (0 ..< 4).map { payload("app-\($0)") })
            #expect(first.map(\.payloadSHA256) == (0 ..< 4).map { sha256Hex(payload("app-\($0)")) })
            try outbox.markSynced(ids: first.map(\.id), now: t0)

            let rest = try outbox.nextBatch(limit: 100, maxBytes: 1 << 20, now: t0)
            #expect(rest.map(\.id) == (4 ..< 10).map { "app-\($0)" })
            #expect(rest.map(\.sequence) == Array(sequences[4...]))
        }
    }

    @Test("A batch read ahead follows the one in flight, never overtakes a due retry, and is handed back untouched")
    func readAhead() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for index in 0 ..< 10 { _ = try outbox.enqueue(id: "app-\(index)", payload: payload("app-\(index)"), now: t0) }
            let first = try outbox.nextBatch(limit: 3, maxBytes: 1 << 20, now: t0)
            // The plain read hands out nothing behind an in-flight batch; the read-ahead does.
            #expect(try outbox.nextBatch(limit: 3, maxBytes: 1 << 20, now: t0).isEmpty)
            let second = try outbox.nextBatch(limit: 3, maxBytes: 1 << 20, now: t0, following: try #require(first.last).sequence)
            #expect(second.map(\.id) == ["app-3", "app-4", "app-5"])
            #expect(try outbox.record(id: "app-4")?.state == .inFlight)

            // The first batch failed: the read-ahead goes back as it was (no attempt counted)...
            try outbox.markFailed(ids: first.map(\.id), error: "HTTP 503", nextAttemptAt: t0)
            try outbox.release(ids: second.map(\.id))
            let released = try #require(try outbox.record(id: "app-4"))
            #expect(released.state == .pending && released.attempts == 0 && released.lastError == nil)
            // ...and no read-ahead passes a pending row that must go first.
            #expect(try outbox.nextBatch(limit: 3, maxBytes: 1 << 20, now: t0, following: 5).isEmpty)
            // The next plain read starts again at the head, in order.
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0).map(\.id) == (0 ..< 10).map { "app-\($0)" })
            // Release never touches a synced row.
            try outbox.markSynced(ids: ["app-0"], now: t0)
            try outbox.release(ids: ["app-0"])
            #expect(try outbox.record(id: "app-0")?.state == .synced)
        }
    }

    @Test("Enqueue stores the documented fields")
    func enqueuedRecord() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            let body = Data("{\"amount\":1200}".utf8)
            let sequence = try outbox.enqueue(id: "a", payload: body, now: t0)
            let record = try #require(try outbox.record(id: "a"))
            #expect(record == OutboxRecord(
                sequence: sequence, id: "a", payload: body, payloadSHA256: sha256Hex(body), state: .pending,
                attempts: 0, nextAttemptAt: t0, lastError: nil, createdAt: t0, syncedAt: nil, rejectReason: nil))
            #expect(record.payloadSHA256 == record.payloadSHA256.lowercased())
            #expect(record.payloadSHA256.count == 64)
            #expect(try outbox.record(id: "missing") == nil)
        }
    }

    @Test("Full state machine: pending → in_flight → synced / rejected / pending with backoff")
    func stateMachine() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for id in ["a", "b", "c"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }

            let batch = try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0)
            #expect(batch.map(\.id) == ["a", "b", "c"])
            #expect(try outbox.stats().inFlight == 3)

            try outbox.markSynced(ids: ["a"], now: t0.addingTimeInterval(1))
            try outbox.markRejected(id: "b", reason: "422 invalid applicant")
            let retryAt = t0.addingTimeInterval(30)
            try outbox.markFailed(ids: ["c"], error: "HTTP 503", nextAttemptAt: retryAt)

            let a = try #require(try outbox.record(id: "a"))
            #expect(a.state == .synced)
            #expect(a.syncedAt == t0.addingTimeInterval(1))
            let b = try #require(try outbox.record(id: "b"))
            #expect(b.state == .rejected)
            #expect(b.rejectReason == "422 invalid applicant")
            #expect(b.attempts == 1)
            let c = try #require(try outbox.record(id: "c"))
            #expect(c.state == .pending)
            #expect(c.attempts == 1)
            #expect(c.lastError == "HTTP 503")
            #expect(c.nextAttemptAt == retryAt)

            let stats = try outbox.stats()
            #expect(stats.pending == 1 && stats.inFlight == 0 && stats.synced == 1 && stats.rejected == 1)
            #expect(stats.nextAttemptAt == retryAt)

            // Backoff: not before nextAttemptAt; the rejected row is never handed out again by itself.
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0.addingTimeInterval(29)).isEmpty)
            let again = try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: retryAt)
            #expect(again.map(\.id) == ["c"])
            #expect(again.first?.attempts == 1)
            try outbox.markFailed(ids: ["c"], error: "timeout", nextAttemptAt: retryAt.addingTimeInterval(60))
            #expect(try outbox.record(id: "c")?.attempts == 2)
            #expect(try outbox.record(id: "c")?.lastError == "timeout")
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0.addingTimeInterval(3600)).map(\.id) == ["c"])
            try outbox.markSynced(ids: ["c"], now: t0.addingTimeInterval(3600))
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: .distantFuture).isEmpty)

            // Operator retry of the rejected row: pending again, due now, attempts reset, reason kept in lastError.
            let retryNow = t0.addingTimeInterval(7200)
            try outbox.retry(id: "b", now: retryNow)
            let retried = try #require(try outbox.record(id: "b"))
            #expect(retried.state == .pending)
            #expect(retried.nextAttemptAt == retryNow)
            #expect(retried.attempts == 0)
            #expect(retried.rejectReason == nil)
            #expect(retried.lastError == "rejected: 422 invalid applicant")
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: retryNow).map(\.id) == ["b"])
        }
    }

    @Test("Head of line is never overtaken by later due rows")
    func headOfLine() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for id in ["a", "b", "c"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            #expect(try outbox.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0).map(\.id) == ["a"])
            try outbox.markFailed(ids: ["a"], error: "503", nextAttemptAt: t0.addingTimeInterval(60))

            // b and c are due, but a (the head) is not: nothing is handed out.
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0.addingTimeInterval(59)).isEmpty)
            #expect(try outbox.stats().pending == 3)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0.addingTimeInterval(60)).map(\.id) == ["a", "b", "c"])
        }
    }

    @Test("Rows behind an in-flight row are not handed out until it is resolved")
    func inFlightBlocksLaterRows() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for id in ["a", "b"] { _ = try outbox.enqueue(id: id, payload: payload(id), now: t0) }
            #expect(try outbox.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0).map(\.id) == ["a"])
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0).isEmpty)
            try outbox.markSynced(ids: ["a"], now: t0)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0).map(\.id) == ["b"])
            // requeueInFlight releases an abandoned batch.
            #expect(try outbox.requeueInFlight() == 1)
            #expect(try outbox.record(id: "b")?.state == .pending)
        }
    }

    @Test("Batch size is bounded by limit and maxBytes, but a due head row is always returned")
    func batchBounds() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for index in 0 ..< 6 { _ = try outbox.enqueue(id: "r\(index)", payload: payload("r\(index)", size: 100), now: t0) }
            #expect(try outbox.nextBatch(limit: 0, maxBytes: 1 << 20, now: t0).isEmpty)
            #expect(try outbox.nextBatch(limit: 2, maxBytes: 1 << 20, now: t0).map(\.id) == ["r0", "r1"])
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 250, now: t0).isEmpty)  // r0/r1 still in flight
            try outbox.markSynced(ids: ["r0", "r1"], now: t0)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 250, now: t0).map(\.id) == ["r2", "r3"])
            try outbox.markSynced(ids: ["r2", "r3"], now: t0)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 10, now: t0).map(\.id) == ["r4"])
            try outbox.markSynced(ids: ["r4"], now: t0)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 300, now: t0).map(\.id) == ["r5"])
        }
    }

    @Test("Not-found and state guards of the mark operations")
    func markGuards() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            _ = try outbox.enqueue(id: "b", payload: payload("b"), now: t0)
            _ = try outbox.nextBatch(limit: 1, maxBytes: 1 << 20, now: t0)
            try outbox.markSynced(ids: ["a"], now: t0)

            // A late failure report never resurrects a synced row; a replayed ack keeps the first syncedAt.
            try outbox.markFailed(ids: ["a"], error: "late", nextAttemptAt: t0)
            try outbox.markSynced(ids: ["a", "unknown"], now: t0.addingTimeInterval(99))
            let a = try #require(try outbox.record(id: "a"))
            #expect(a.state == .synced)
            #expect(a.syncedAt == t0)
            #expect(a.attempts == 0)

            #expect(throws: OutboxError.self) { try outbox.markRejected(id: "a", reason: "x") }
            #expect(throws: OutboxError.self) { try outbox.markRejected(id: "unknown", reason: "x") }
            #expect(throws: OutboxError.self) { try outbox.retry(id: "a") }
            #expect(throws: OutboxError.self) { try outbox.retry(id: "unknown") }
            do {
                try outbox.retry(id: "unknown")
            } catch let error as OutboxError {
                guard case .notFound(let id) = error else {
                    Issue.record("expected .notFound, got \(error)")
                    return
                }
                #expect(id == "unknown")
            }

            // A failure report never auto-retries a rejected row.
            try outbox.markRejected(id: "b", reason: "bad")
            try outbox.markFailed(ids: ["b"], error: "x", nextAttemptAt: t0)
            #expect(try outbox.record(id: "b")?.state == .rejected)
            #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: .distantFuture).isEmpty)
        }
    }

    @Test("list filters by state and returns ascending sequence; limit applies")
    func listing() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            for index in 0 ..< 5 { _ = try outbox.enqueue(id: "r\(index)", payload: payload("r\(index)"), now: t0) }
            _ = try outbox.nextBatch(limit: 2, maxBytes: 1 << 20, now: t0)
            try outbox.markSynced(ids: ["r0"], now: t0)
            try outbox.markRejected(id: "r1", reason: "no")

            #expect(try outbox.list().map(\.id) == ["r0", "r1", "r2", "r3", "r4"])
            #expect(try outbox.list(limit: 2).map(\.id) == ["r0", "r1"])
            #expect(try outbox.list(states: [.pending]).map(\.id) == ["r2", "r3", "r4"])
            #expect(try outbox.list(states: [.rejected, .synced]).map(\.id) == ["r0", "r1"])
            #expect(try outbox.list(states: []).isEmpty)
            #expect(try outbox.list(limit: 0).isEmpty)
            let sequences = try outbox.list().map(\.sequence)
            #expect(sequences == sequences.sorted())
        }
    }

    @Test("stats are exact and match a recount after a mix of operations")
    func statsConsistency() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(try outbox.stats() == OutboxStats(
                pending: 0, inFlight: 0, synced: 0, rejected: 0, quarantined: 0, unsyncedBytes: 0,
                oldestPendingCreatedAt: nil, nextAttemptAt: nil))
            for index in 0 ..< 8 {
                _ = try outbox.enqueue(
                    id: "r\(index)", payload: payload("r\(index)", size: 10 * (index + 1)),
                    now: t0.addingTimeInterval(Double(index)))
            }
            _ = try outbox.nextBatch(limit: 5, maxBytes: 1 << 20, now: t0.addingTimeInterval(10))
            try outbox.markSynced(ids: ["r0", "r1"], now: t0)
            try outbox.markRejected(id: "r2", reason: "no")
            try outbox.markFailed(ids: ["r3"], error: "e", nextAttemptAt: t0.addingTimeInterval(100))

            let stats = try outbox.stats()
            #expect(stats.pending == 4)  // r3, r5, r6, r7
            #expect(stats.inFlight == 1)  // r4
            #expect(stats.synced == 2)
            #expect(stats.rejected == 1)
            let expectedBytes: Int64 = 30 + 40 + 50 + 60 + 70 + 80
            #expect(stats.unsyncedBytes == expectedBytes)
            #expect(stats.oldestPendingCreatedAt == t0.addingTimeInterval(3))
            #expect(stats.nextAttemptAt == t0.addingTimeInterval(100))

            let all = try outbox.list(limit: 1000)
            #expect(stats.pending == all.filter { $0.state == .pending }.count)
            let recounted: Int64 = all.filter { $0.state != .synced }.reduce(0) { $0 + Int64($1.payload.count) }
            #expect(stats.unsyncedBytes == recounted)
        }
    }

    @Test("Records and stats round-trip through Codable")
    func codable() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            let record = try #require(try outbox.record(id: "a"))
            let decoded = try JSONDecoder().decode(OutboxRecord.self, from: JSONEncoder().encode(record))
            #expect(decoded == record)
            let stats = try outbox.stats()
            #expect(try JSONDecoder().decode(OutboxStats.self, from: JSONEncoder().encode(stats)) == stats)
            #expect(OutboxState.allCases.map(\.rawValue) == ["pending", "in_flight", "synced", "rejected"])
        }
    }
}
