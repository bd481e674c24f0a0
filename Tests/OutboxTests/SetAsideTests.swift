import Foundation
import KioskCore
import GRDB
import Testing

@testable import Outbox

/// Corrupt databases are renamed aside (never deleted) and a fresh one is started.
@Suite("Corrupt database set-aside")
struct SetAsideTests {
    /// Asserts the set-aside path has the documented shape and returns it.
    private func checkAsidePath(_ outbox: Outbox, _ dbPath: String) throws -> String {
        let aside = try #require(outbox.setAsideDatabasePath)
        #expect(aside.hasPrefix(dbPath + ".corrupt-"))
        let stamp = aside.dropFirst((dbPath + ".corrupt-").count)
        #expect(stamp.range(of: #"^\d{8}T\d{6}Z(-\d+)?$"#, options: .regularExpression) != nil)
        return aside
    }

    /// The fresh database must be fully usable.
    private func checkFresh(_ outbox: Outbox) throws {
        #expect(try outbox.integrityCheck() == ["ok"])
        #expect(try outbox.stats().pending == 0)
        _ = try outbox.enqueue(id: "fresh", payload: payload("fresh"), now: t0)
        #expect(try outbox.nextBatch(limit: 10, maxBytes: 1 << 20, now: t0).map(\.id) == ["fresh"])
    }

    @Test("A file of garbage bytes (and its -wal) is renamed aside with its bytes intact")
    func garbageFile() throws {
        try withTempDir { dir in
            var garbage = Data()
            while garbage.count < 16_384 { garbage.append(contentsOf: Array("this is not an SQLite database\n".utf8)) }
            let walGarbage = Data(repeating: 0xA5, count: 4096)
            try garbage.write(to: URL(fileURLWithPath: dir.dbPath))
            try walGarbage.write(to: URL(fileURLWithPath: dir.dbPath + "-wal"))

            let capture = LogCapture()
            let outbox = try Outbox(path: dir.dbPath, logger: capture.logger)
            let aside = try checkAsidePath(outbox, dir.dbPath)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside)) == garbage)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside + "-wal")) == walGarbage)
            #expect(capture.messages(at: .error).contains { $0.contains("corrupt") })
            try checkFresh(outbox)
        }
    }

    @Test("A truncated real database is renamed aside with its bytes intact")
    func truncatedDatabase() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                for index in 0 ..< 200 {
                    _ = try outbox.enqueue(id: "r\(index)", payload: payload("r\(index)", size: 1500), now: t0)
                }
                try outbox.checkpoint()
                try outbox.close()
            }
            let whole = try Data(contentsOf: URL(fileURLWithPath: dir.dbPath))
            #expect(whole.count > 100_000)
            let truncated = whole.prefix(whole.count / 2)
            try truncated.write(to: URL(fileURLWithPath: dir.dbPath))
            try? FileManager.default.removeItem(atPath: dir.dbPath + "-wal")
            try? FileManager.default.removeItem(atPath: dir.dbPath + "-shm")

            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            let aside = try checkAsidePath(outbox, dir.dbPath)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside)) == truncated)
            try checkFresh(outbox)
        }
    }

    @Test("A database whose page 1 is overwritten is renamed aside")
    func clobberedHeader() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
                try outbox.close()
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.dbPath))
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: Data(repeating: 0xFF, count: 100))
            try handle.close()
            let damaged = try Data(contentsOf: URL(fileURLWithPath: dir.dbPath))

            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            let aside = try checkAsidePath(outbox, dir.dbPath)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside)) == damaged)
            try checkFresh(outbox)
        }
    }

    @Test("Repeated corruption never overwrites an earlier set-aside file")
    func repeatedSetAside() throws {
        try withTempDir { dir in
            var asides: [String] = []
            for round in 0 ..< 3 {
                try Data("garbage round \(round) ".utf8 + Data(repeating: UInt8(round), count: 2000))
                    .write(to: URL(fileURLWithPath: dir.dbPath))
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                asides.append(try checkAsidePath(outbox, dir.dbPath))
                try outbox.close()
            }
            #expect(Set(asides).count == 3)
            for (round, aside) in asides.enumerated() {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: aside))
                #expect(bytes.starts(with: Data("garbage round \(round) ".utf8)))
            }
        }
    }

    @Test("A healthy database is not set aside")
    func healthyStays() throws {
        try withTempDir { dir in
            do {
                let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
                _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
            }
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            #expect(outbox.setAsideDatabasePath == nil)
            #expect(try outbox.record(id: "a") != nil)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.contains("corrupt") }
            #expect(leftovers.isEmpty)
        }
    }

    @Test("A non-owner refuses a corrupt database instead of moving it under the owner")
    func nonOwnerDoesNotSetAside() throws {
        try withTempDir { dir in
            try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: dir.dbPath))
            // Hold the owner lock as a live daemon would.
            let lockFD = open(dir.dbPath + ".lock", O_RDWR | O_CREAT, 0o600)
            #expect(lockFD >= 0)
            #expect(flock(lockFD, LOCK_EX | LOCK_NB) == 0)
            defer { close(lockFD) }
            do {
                _ = try Outbox(path: dir.dbPath, logger: quietLogger)
                Issue.record("a non-owner opened a corrupt database")
            } catch let error as OutboxError {
                guard case .sqlite(let code, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(code == 26 || code == 11)
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir.dbPath)) == Data(repeating: 0x42, count: 8192))
        }
    }
}

/// Power-cut images: the files of a live database copied while it is open (nothing checkpointed).
@Suite("Crash images")
struct CrashImageTests {
    /// Copies the database and its WAL as a power cut would leave them (the -shm is rebuilt on open).
    private func snapshot(_ source: String, to target: String) throws {
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(atPath: source + suffix, toPath: target + suffix)
        }
    }

    @Test("Rows committed only to the WAL survive a power cut, and in-flight rows come back pending")
    func walOnlyRowsSurvive() throws {
        try withTempDir { dir in
            let live = try Outbox(path: dir.dbPath, logger: quietLogger)
            for index in 0 ..< 30 { _ = try live.enqueue(id: "r\(index)", payload: payload("r\(index)", size: 500), now: t0) }
            _ = try live.nextBatch(limit: 5, maxBytes: 1 << 20, now: t0)
            let walSize = FileSupport.fileSize(dir.dbPath + "-wal") ?? 0
            #expect(walSize > 0)
            let image = dir.url.appendingPathComponent("image.sqlite").path
            try snapshot(dir.dbPath, to: image)

            let restored = try Outbox(path: image, logger: quietLogger)
            #expect(restored.setAsideDatabasePath == nil)
            #expect(restored.recoveredInFlightCount == 5)
            let rows = try restored.list(limit: 100)
            #expect(rows.map(\.id) == (0 ..< 30).map { "r\($0)" })
            #expect(rows.allSatisfy { $0.state == .pending })
            #expect(rows.allSatisfy { $0.payloadSHA256 == sha256Hex($0.payload) })
            #expect(try restored.integrityCheck() == ["ok"])
        }
    }

    @Test("A corrupt page is detected by quick_check; database and WAL are set aside exactly as found")
    func corruptPageWithWAL() throws {
        try withTempDir { dir in
            let live = try Outbox(path: dir.dbPath, logger: quietLogger)
            for index in 0 ..< 100 { _ = try live.enqueue(id: "r\(index)", payload: payload("r\(index)", size: 1500), now: t0) }
            try live.checkpoint()
            for index in 100 ..< 105 { _ = try live.enqueue(id: "r\(index)", payload: payload("r\(index)", size: 1500), now: t0) }
            let image = dir.url.appendingPathComponent("image.sqlite").path
            try snapshot(dir.dbPath, to: image)

            // Overwrite page 20 (an old leaf of the outbox table, not in the WAL) with garbage.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
            try handle.seek(toOffset: 19 * 4096)
            try handle.write(contentsOf: Data(repeating: 0xAB, count: 4096))
            try handle.close()
            let damaged = try Data(contentsOf: URL(fileURLWithPath: image))
            let wal = try Data(contentsOf: URL(fileURLWithPath: image + "-wal"))
            #expect(wal.count > 0)

            let restored = try Outbox(path: image, logger: quietLogger)
            let aside = try #require(restored.setAsideDatabasePath)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside)) == damaged)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside + "-wal")) == wal)
            #expect(try restored.stats().pending == 0)
        }
    }

    @Test("An empty database file beside a non-empty WAL is set aside, not silently discarded")
    func emptyDatabaseWithWAL() throws {
        try withTempDir { dir in
            try Data().write(to: URL(fileURLWithPath: dir.dbPath))
            let wal = Data(repeating: 0x5A, count: 8192)
            try wal.write(to: URL(fileURLWithPath: dir.dbPath + "-wal"))
            let outbox = try Outbox(path: dir.dbPath, logger: quietLogger)
            let aside = try #require(outbox.setAsideDatabasePath)
            #expect(try Data(contentsOf: URL(fileURLWithPath: aside + "-wal")) == wal)
            _ = try outbox.enqueue(id: "a", payload: payload("a"), now: t0)
        }
    }
}
