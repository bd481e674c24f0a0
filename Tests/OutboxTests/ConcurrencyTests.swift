import Foundation
import GRDB
import Testing

@testable import Outbox

/// Errors collected from worker threads.
private final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [String] = []

    func record(_ error: any Error) {
        lock.lock()
        defer { lock.unlock() }
        errors.append("\(error)")
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return errors
    }
}

/// Several connections on one file: no SQLITE_BUSY under moderate load.
@Suite("Concurrency")
struct ConcurrencyTests {
    @Test("Two Outbox instances writing and a read-only reader polling see no SQLITE_BUSY")
    func twoWritersAndReaders() throws {
        try withTempDir { dir in
            let first = try Outbox(path: dir.dbPath, logger: quietLogger)
            let second = try Outbox(path: dir.dbPath, logger: quietLogger)
            let reader = try rawConnection(dir.dbPath, readonly: true, busyTimeout: nil)
            let errors = ErrorBox()
            let perWriter = 100
            let group = DispatchGroup()
            let writersDone = DispatchSemaphore(value: 0)

            for (name, outbox) in [("w1", first), ("w2", second)] {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave(); writersDone.signal() }
                    for index in 0 ..< perWriter {
                        do {
                            _ = try outbox.enqueue(id: "\(name)-\(index)", payload: payload("\(name)-\(index)", size: 300))
                        } catch {
                            errors.record(error)
                        }
                    }
                }
            }
            // A kioskctl-like reader on its own connection, with no busy handler at all (WAL readers must
            // never need one), plus stats/list through both instances.
            let stop = ErrorBox()
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var polls = 0
                while stop.all.isEmpty || polls < 10 {
                    polls += 1
                    do {
                        _ = try reader.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") }
                        _ = try second.stats()
                        _ = try first.list(states: [.pending], limit: 5)
                    } catch {
                        errors.record(error)
                    }
                    usleep(500)
                }
            }
            writersDone.wait()
            writersDone.wait()
            stop.record(CancellationError())
            group.wait()

            #expect(errors.all.isEmpty, "errors: \(errors.all)")
            let all = try first.list(limit: 1000)
            #expect(all.count == 2 * perWriter)
            #expect(Set(all.map(\.sequence)).count == 2 * perWriter)
            #expect(try first.stats().pending == 2 * perWriter)
            let batch = try first.nextBatch(limit: 1000, maxBytes: 1 << 30)
            #expect(batch.map(\.sequence) == all.map(\.sequence))
            try reader.close()
        }
    }

    @Test("Concurrent callers on one instance (the daemon's sync loop and intake) are serialized safely")
    func oneInstanceManyThreads() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0 ..< 30 {
                    _ = try outbox.enqueue(id: "intake-\(index)", payload: payload("intake-\(index)"))
                }
            }
            group.addTask {
                var delivered = 0
                var rounds = 0
                while delivered < 30 && rounds < 10_000 {
                    rounds += 1
                    let batch = try outbox.nextBatch(limit: 7, maxBytes: 1 << 20)
                    try outbox.markSynced(ids: batch.map(\.id))
                    delivered += batch.count
                    if batch.isEmpty { try await Task.sleep(for: .milliseconds(2)) }
                }
                #expect(delivered == 30)
            }
            try await group.waitForAll()
        }
        let stats = try outbox.stats()
        #expect(stats.synced == 30)
        #expect(stats.pending == 0 && stats.inFlight == 0)
    }
}
