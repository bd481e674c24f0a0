import Foundation
import Logging
import Synchronization

/// A swift-log handler writing one line per event to stderr in a form journald understands.
///
/// Under systemd (`JOURNAL_STREAM` set) each line starts with the syslog priority `<N>` so
/// journald files it at the right level; elsewhere a UTC timestamp and the level name lead.
/// Metadata follows as `key=value` pairs. Messages never carry card data: callers pass masked
/// values, and the PCI guard refuses documents holding a full PAN before anything is logged.
public struct JournalLogHandler: LogHandler {
    /// Metadata attached to every event of this logger.
    public var metadata: Logger.Metadata = [:]
    /// The minimum level written.
    public var logLevel: Logger.Level
    private let label: String
    private let journal: Bool
    private static let lock = Mutex(())

    /// Creates a handler for a logger label.
    public init(label: String, level: Logger.Level = .info, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.label = label
        self.logLevel = level
        self.journal = environment["JOURNAL_STREAM"] != nil
    }

    /// Reads or writes one metadata key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one event.
    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = ""
        if journal {
            line = "<\(Self.syslogPriority(event.level))>\(label): \(event.message)"
        } else {
            line = "\(Self.timestamp()) \(event.level.rawValue.uppercased()) \(label): \(event.message)"
        }
        for (k, v) in merged.sorted(by: { $0.key < $1.key }) {
            let text = "\(v)"
            let quoted = text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || text.isEmpty
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : text
            line += " \(k)=\(quoted)"
        }
        line = line.replacingOccurrences(of: "\n", with: "\\n") + "\n"
        Self.lock.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                      tmv.tm_hour, tmv.tm_min, tmv.tm_sec, Int(ts.tv_nsec / 1_000_000))
    }

    /// Installs this handler as swift-log's backend (once per process).
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level) }
    }
}
