import ArgumentParser
import Foundation
import KioskAgent
import KioskCore
import Outbox

/// One measured figure, with the peer measured in the same run.
struct BenchResult: Codable {
    var name: String
    var value: Double
    var unit: String
    var peer: String?
    var peerValue: Double?
    var ratio: Double?
    var goal: String?

    enum CodingKeys: String, CodingKey {
        case name, value, unit, peer, peerValue = "peer_value", ratio, goal
    }
}

/// kiosk-bench: the measurements behind `make bench` (peers run in the same process run).
@main
struct KioskBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiosk-bench",
        abstract: "Benchmarks against peers measured in the same run.",
        subcommands: [Enqueue.self, Drain.self, LivenessMode.self]
    )
}

/// Prints results as a table and appends them to a JSON file.
func report(_ results: [BenchResult], json path: String?) throws {
    for r in results {
        var line = "\(pad(r.name, 34)) \(pad(String(format: "%.2f", r.value), 12)) \(pad(r.unit, 8))"
        if let p = r.peer, let pv = r.peerValue { line += " peer \(p) \(String(format: "%.2f", pv))" }
        if let ratio = r.ratio { line += String(format: "  ratio %.2f", ratio) }
        if let goal = r.goal { line += "  (goal \(goal))" }
        print(line)
    }
    guard let path else { return }
    var all: [BenchResult] = []
    if let data = FileManager.default.contents(atPath: path), let old = try? JSONDecoder().decode([BenchResult].self, from: data) {
        all = old.filter { o in !results.contains { $0.name == o.name } }
    }
    all += results
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try enc.encode(all).write(to: URL(fileURLWithPath: path))
}

func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }

/// Runs a program and returns its wall time in seconds; throws if it fails.
func timed(_ path: String, _ args: [String], stdin: String? = nil) throws -> Double {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let stdin { p.standardInput = FileHandle(forReadingAtPath: stdin) }
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    let start = ContinuousClock.now
    try p.run()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let t = (ContinuousClock.now - start)
    guard p.terminationStatus == 0 else {
        throw ValidationError("\(path) failed (\(p.terminationStatus)): \(String(decoding: e, as: UTF8.self).prefix(500))")
    }
    return Double(t.components.seconds) + Double(t.components.attoseconds) / 1e18
}

func samplePayloads(_ n: Int) throws -> [(String, Data)] {
    try (0..<n).map { i in
        let app = CreditApplication.sample(deviceID: "kiosk-bench-0001", amountMinor: 1000 + Int64(i))
        return (app.id, try app.canonicalPayload())
    }
}

func sqlQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

extension KioskBench {
    /// Durable enqueue rate and latency vs the sqlite3 CLI, one transaction per row, synchronous=FULL.
    struct Enqueue: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Durable enqueue vs the sqlite3 CLI.")
        @Option(help: "Scratch directory on the disk to measure.") var dir: String
        @Option(help: "Rows.") var count = 2000
        @Option(help: "Append results to this JSON file.") var json: String?

        func run() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let rows = try samplePayloads(count)
            // Ours: Outbox.enqueue, each call durable (WAL fsync'd) before it returns.
            let dbPath = (dir as NSString).appendingPathComponent("bench-outbox.sqlite")
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dbPath + suffix) }
            let outbox = try Outbox(path: dbPath, limits: OutboxLimits(maxRows: count + 1, maxBytes: 1 << 40, minFreeDiskBytes: 0))
            var latencies: [Double] = []
            latencies.reserveCapacity(count)
            let start = ContinuousClock.now
            for (id, payload) in rows {
                let t0 = ContinuousClock.now
                _ = try outbox.enqueue(id: id, payload: payload)
                let d = ContinuousClock.now - t0
                latencies.append(Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000)
            }
            let elapsed = ContinuousClock.now - start
            let ours = Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            latencies.sort()
            let p50 = latencies[latencies.count / 2]
            let p99 = latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]

            // Peer: the sqlite3 CLI, same rows, same disk, WAL + synchronous=FULL, one transaction each.
            let peerDB = (dir as NSString).appendingPathComponent("bench-peer.sqlite")
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: peerDB + suffix) }
            var sql = """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            CREATE TABLE outbox (sequence INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL, payload_sha256 TEXT NOT NULL, payload_size INTEGER NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL);

            """
            for (id, payload) in rows {
                let hex = payload.map { String(format: "%02x", $0) }.joined()
                sql += "BEGIN; INSERT INTO outbox (id, payload, payload_sha256, payload_size, state, created_at) VALUES (\(sqlQuote(id)), X'\(hex)', '\(String(repeating: "0", count: 64))', \(payload.count), 'pending', 0); COMMIT;\n"
            }
            let sqlPath = (dir as NSString).appendingPathComponent("bench-peer.sql")
            try sql.write(toFile: sqlPath, atomically: true, encoding: .utf8)
            let peerSeconds = try timed("/usr/bin/sqlite3", [peerDB], stdin: sqlPath)
            let peer = Double(count) / peerSeconds
            try report([
                BenchResult(name: "enqueue_rate_durable", value: ours, unit: "rows/s", peer: "sqlite3 CLI (WAL, synchronous=FULL, 1 txn/row)",
                            peerValue: peer, ratio: ours / peer, goal: ">= 0.8"),
                BenchResult(name: "enqueue_latency_p50", value: p50, unit: "ms"),
                BenchResult(name: "enqueue_latency_p99", value: p99, unit: "ms"),
            ], json: json)
        }
    }
}
