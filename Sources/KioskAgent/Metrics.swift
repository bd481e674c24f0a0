import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle
import Synchronization

/// A Prometheus metric type (text exposition format 0.0.4).
public enum MetricType: String, Sendable {
    /// Only goes up (resets with the process).
    case counter
    /// Goes up and down.
    case gauge
    /// Observations in cumulative buckets, with `_sum` and `_count`.
    case histogram
}

/// One sample line: `name{labels} value`.
public struct MetricSample: Sendable, Equatable {
    /// The full sample name (a histogram's carry `_bucket`, `_sum`, `_count`).
    public var name: String
    /// Label names and values, in order.
    public var labels: [(String, String)]
    /// The value.
    public var value: Double

    /// Creates a sample.
    public init(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    /// Equal names, labels and values.
    public static func == (a: MetricSample, b: MetricSample) -> Bool {
        a.name == b.name && a.value == b.value && a.labels.map(\.0) == b.labels.map(\.0) && a.labels.map(\.1) == b.labels.map(\.1)
    }
}

/// A metric family: its `# HELP`, `# TYPE` and samples.
public struct MetricFamily: Sendable, Equatable {
    /// The metric name.
    public var name: String
    /// One line of help.
    public var help: String
    /// The type.
    public var type: MetricType
    /// The samples.
    public var samples: [MetricSample]

    /// Creates a family.
    public init(name: String, help: String, type: MetricType, samples: [MetricSample]) {
        self.name = name
        self.help = help
        self.type = type
        self.samples = samples
    }

    /// A family with one unlabelled sample.
    public static func single(_ name: String, _ help: String, _ type: MetricType, _ value: Double) -> MetricFamily {
        MetricFamily(name: name, help: help, type: type, samples: [MetricSample(name, [], value)])
    }

    /// A family with one sample per value of one label.
    public static func labelled(_ name: String, _ help: String, _ type: MetricType, label: String, _ values: [String: Double]) -> MetricFamily {
        MetricFamily(name: name, help: help, type: type,
                     samples: values.sorted { $0.key < $1.key }.map { MetricSample(name, [(label, $0.key)], $0.value) })
    }
}

/// Renders metric families in Prometheus's text exposition format.
public enum PrometheusText {
    /// The content type of the format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The exposition text: per family `# HELP`, `# TYPE`, then its samples; ends with a newline.
    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        for f in families {
            out += "# HELP \(f.name) \(escapeHelp(f.help))\n"
            out += "# TYPE \(f.name) \(f.type.rawValue)\n"
            for s in f.samples {
                out += s.name
                if !s.labels.isEmpty {
                    out += "{" + s.labels.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
                }
                out += " " + format(s.value) + "\n"
            }
        }
        return out
    }

    /// Help text escaping: backslash and line feed.
    public static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Label value escaping: backslash, double quote and line feed.
    public static func escapeLabelValue(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}

/// A counter with labels, monotonic for the life of the process.
public final class LabelledCounter: Sendable {
    /// The metric name (ends in `_total`).
    public let name: String
    /// Its help text.
    public let help: String
    /// The label names.
    public let labelNames: [String]
    private let values = Mutex<[[String]: Double]>([:])

    /// Creates a counter.
    public init(name: String, help: String, labelNames: [String]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
    }

    /// Adds `amount` (negative amounts are ignored: a counter never goes down).
    public func increment(_ labelValues: [String], by amount: Double = 1) {
        guard amount > 0, labelValues.count == labelNames.count else { return }
        values.withLock { $0[labelValues, default: 0] += amount }
    }

    /// The current value for a label set.
    public func value(_ labelValues: [String]) -> Double { values.withLock { $0[labelValues] ?? 0 } }

    /// The family, one sample per label set seen.
    public var family: MetricFamily {
        let snapshot = values.withLock { $0 }
        let samples = snapshot.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { key, v in
            MetricSample(name, Array(zip(labelNames, key)), v)
        }
        return MetricFamily(name: name, help: help, type: .counter, samples: samples)
    }
}

/// A histogram with labels: per label set, counts per upper bound, a sum and a count.
public final class LabelledHistogram: Sendable {
    /// The metric name.
    public let name: String
    /// Its help text.
    public let help: String
    /// The label names.
    public let labelNames: [String]
    /// Upper bounds, ascending (`+Inf` is implied).
    public let buckets: [Double]
    private struct Series { var counts: [UInt64]; var sum: Double; var count: UInt64 }
    private let series = Mutex<[[String]: Series]>([:])

    /// Creates a histogram.
    public init(name: String, help: String, labelNames: [String], buckets: [Double]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.buckets = buckets.sorted()
    }

    /// Records one observation.
    public func observe(_ labelValues: [String], _ value: Double) {
        guard labelValues.count == labelNames.count else { return }
        let buckets = self.buckets
        series.withLock { all in
            var s = all[labelValues] ?? Series(counts: Array(repeating: 0, count: buckets.count), sum: 0, count: 0)
            if let i = buckets.firstIndex(where: { value <= $0 }) { s.counts[i] += 1 }
            s.sum += value
            s.count += 1
            all[labelValues] = s
        }
    }

    /// The family: cumulative `_bucket` samples with `le`, then `_sum` and `_count`, per label set.
    public var family: MetricFamily {
        let snapshot = series.withLock { $0 }
        var samples: [MetricSample] = []
        for (key, s) in snapshot.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let labels = Array(zip(labelNames, key))
            var cumulative: UInt64 = 0
            for (bound, n) in zip(buckets, s.counts) {
                cumulative += n
                samples.append(MetricSample(name + "_bucket", labels + [("le", PrometheusText.format(bound))], Double(cumulative)))
            }
            samples.append(MetricSample(name + "_bucket", labels + [("le", "+Inf")], Double(s.count)))
            samples.append(MetricSample(name + "_sum", labels, s.sum))
            samples.append(MetricSample(name + "_count", labels, Double(s.count)))
        }
        return MetricFamily(name: name, help: help, type: .histogram, samples: samples)
    }
}

/// Writes the exposition text to a file atomically (a temporary file in the same directory,
/// fsync'd, then renamed over the target), as node_exporter's textfile collector requires.
public enum MetricsTextfile {
    /// Writes `text` to `path` atomically, mode 0644.
    public static func write(_ text: String, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MetricsWriteError(path: tmp, errno: errno) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw MetricsWriteError(path: tmp, errno: e)
            }
            off += n
        }
        fchmod(fd, 0o644)
        fsync(fd)
        close(fd)
        guard rename(tmp, path) == 0 else { throw MetricsWriteError(path: path, errno: errno) }
        ok = true
    }
}

/// The metrics file could not be written.
public struct MetricsWriteError: Error, Sendable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// The errno.
    public var errno: Int32
    /// `path: strerror`.
    public var description: String { "\(path): \(String(cString: strerror(errno)))" }
}

/// Writes the agent's metrics to `metrics.textfile` every interval (and once more at shutdown).
struct MetricsTextfileService: Service {
    let path: String
    let interval: Duration
    let logger: Logger
    let render: @Sendable () -> String

    func run() async throws {
        let failing = Box(false)
        let writeOnce: @Sendable () -> Void = { [path, logger, render] in
            do {
                try MetricsTextfile.write(render(), to: path)
                if failing.get() {
                    failing.set(false)
                    logger.notice("metrics textfile written again", metadata: ["path": "\(path)"])
                }
            } catch {
                if !failing.get() {
                    failing.set(true)
                    logger.warning("cannot write the metrics textfile", metadata: ["error": "\(error)"])
                }
            }
        }
        writeOnce()
        let interval = self.interval
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                writeOnce()
            }
        }
        writeOnce()
    }
}
