import Foundation
import GRDB
import Logging
import Testing

@testable import Outbox

/// A fresh temporary directory for one test; removed by `remove()`.
struct TempDir {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("outbox-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Path of the outbox database inside the directory.
    var dbPath: String { url.appendingPathComponent("outbox.sqlite").path }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Runs `body` with a temporary directory that is removed afterwards.
func withTempDir<T>(_ body: (TempDir) throws -> T) throws -> T {
    let dir = try TempDir()
    defer { dir.remove() }
    return try body(dir)
}

/// Log events captured for assertions.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [(level: Logger.Level, message: String)] = []

    func append(_ level: Logger.Level, _ message: String) {
        lock.lock()
        defer { lock.unlock() }
        events.append((level, message))
    }

    /// Messages logged at exactly `level`.
    func messages(at level: Logger.Level) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return events.filter { $0.level == level }.map(\.message)
    }

    /// A logger whose events land here.
    var logger: Logger {
        Logger(label: "test.outbox") { _ in CapturingLogHandler(capture: self) }
    }
}

/// A `LogHandler` that records into a ``LogCapture``.
struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.append(event.level, event.message.description)
    }
}

/// A silent logger for tests that do not look at logs.
let quietLogger: Logger = {
    var logger = Logger(label: "test.outbox.quiet")
    logger.logLevel = .critical
    return logger
}()

/// A second, independent connection to the same database file (like another process would have).
/// With `busyTimeout: nil` it has no busy handler at all: any SQLITE_BUSY surfaces immediately.
func rawConnection(_ path: String, readonly: Bool = false, busyTimeout: TimeInterval? = 10) throws -> DatabaseQueue {
    var config = Configuration()
    config.busyMode = busyTimeout.map { .timeout($0) } ?? .immediateError
    config.readonly = readonly
    return try DatabaseQueue(path: path, configuration: config)
}

/// A fixed, millisecond-exact instant used as "now" in tests.
let t0 = Date(timeIntervalSince1970: 1_700_000_000)

/// Payload bytes for test row `id`.
func payload(_ id: String, size: Int = 32) -> Data {
    var data = Data("payload-\(id)-".utf8)
    while data.count < size { data.append(UInt8(truncatingIfNeeded: data.count)) }
    return data.prefix(size)
}

/// The file's permission bits.
func permissions(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// Whether `error` is `OutboxError.full` whose reason contains `needle`.
func isFull(_ error: any Error, mentioning needle: String) -> Bool {
    if case .full(let reason)? = error as? OutboxError { return reason.contains(needle) }
    return false
}
