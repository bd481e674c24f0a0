import Foundation
import KioskCore
import GRDB
import Testing

@testable import Outbox

/// Backlog performance, and the opt-in enqueue benchmark.
@Suite("Performance")
struct PerformanceTests {
    @Test("The delivery scan and head lookups use outbox_state_sequence without sorting")
    func queryPlans() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            try outbox.dbQueue.read { db in
                for sql in [Outbox.pendingScanSQL, Outbox.inFlightHeadSQL] {
                    let arguments: StatementArguments = sql.contains("?") ? [Int64.max] : []
                    let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments)
                        .map { $0["detail"] as String? ?? "" }
                        .joined(separator: " | ")
                    #expect(plan.contains("outbox_state_sequence"), "plan: \(plan)")
                    #expect(!plan.contains("TEMP B-TREE"), "plan: \(plan)")
                }
            }
        }
    }

    @Test("nextBatch and stats stay fast on a 100,000-row backlog")
    func largeBacklog() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            let body = payload("bulk", size: 200)
            let digest = sha256Hex(body)
            let t0ms = Int64(t0.timeIntervalSince1970 * 1000)
            try outbox.dbQueue.write { db in
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO outbox (id, payload, payload_sha256, payload_size, state, attempts, next_attempt_at, created_at)
                    VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)
                    """)
                for index in 0 ..< 100_000 {
                    try insert.execute(arguments: ["bulk-\(index)", body, digest, body.count, t0ms, t0ms])
                }
            }
            // Synced rows ahead of the pending ones must not slow the scan down either.
            try outbox.dbQueue.write { db in
                try db.execute(sql: "UPDATE outbox SET state = 'synced', synced_at = ? WHERE sequence <= 50000", arguments: [t0ms])
            }
            let clock = ContinuousClock()
            var batches = 0
            let elapsed = try clock.measure {
                for _ in 0 ..< 20 {
                    let batch = try outbox.nextBatch(limit: 100, maxBytes: 1 << 20, now: t0)
                    #expect(batch.count == 100)
                    try outbox.markSynced(ids: batch.map(\.id), now: t0)
                    batches += 1
                }
            }
            #expect(batches == 20)
            // 20 batches of 100 on a 100k backlog; a full scan or sort per batch would take far longer.
            #expect(elapsed < .seconds(15), "20 batches took \(elapsed)")
            let statsElapsed = try clock.measure {
                let stats = try outbox.stats()
                #expect(stats.pending == 48_000)
                #expect(stats.synced == 52_000)
                #expect(stats.unsyncedBytes == 48_000 * 200)
            }
            #expect(statsElapsed < .seconds(2), "stats took \(statsElapsed)")
        }
    }

    /// Opt-in: `OUTBOX_BENCH=2000 swift test --filter OutboxTests.PerformanceTests/enqueueBenchmark`.
    @Test(
        "Durable enqueue rate (opt-in benchmark, OUTBOX_BENCH=<rows>)",
        .enabled(if: ProcessInfo.processInfo.environment["OUTBOX_BENCH"] != nil))
    func enqueueBenchmark() throws {
        let rows = Int(ProcessInfo.processInfo.environment["OUTBOX_BENCH"] ?? "") ?? 2000
        let size = Int(ProcessInfo.processInfo.environment["OUTBOX_BENCH_PAYLOAD"] ?? "") ?? 1024
        let base = ProcessInfo.processInfo.environment["OUTBOX_BENCH_DIR"] ?? FileManager.default.temporaryDirectory.path
        let dir = URL(fileURLWithPath: base).appendingPathComponent("outbox-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outbox = try Outbox(path: dir.appendingPathComponent("outbox.sqlite").path, logger: quietLogger)
        var generator = SystemRandomNumberGenerator()
        let payloads = (0 ..< rows).map { _ in Data((0 ..< size).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }) }
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for index in 0 ..< rows {
                _ = try outbox.enqueue(id: "id-\(index)", payload: payloads[index])
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("OUTBOX_BENCH rows=\(rows) payload=\(size)B seconds=\(seconds) rate=\(Double(rows) / seconds) rows/s")
        #expect(try outbox.stats().pending == rows)
    }
}
