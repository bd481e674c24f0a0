// Small system helpers for vm-selfcheck: the one errno helper, output, time, threads, arguments.
// No Foundation: the binary runs inside the TCG test VM, where every loaded library costs start-up.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KioskSys

/// The project's errno error (KioskSys), under the name this target's code uses.
typealias SysError = SystemCallError


/// One line to stdout in one write(2): unbuffered, so a test script can wait for it, and never
/// interleaved with lines from other threads.
func say(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0A)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// Monotonic clock in nanoseconds.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// "1.234" (milliseconds with three decimals) from nanoseconds.
func formatMillis(_ nanos: UInt64) -> String {
    let micros = nanos / 1000
    let frac = String(micros % 1000)
    return "\(micros / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
}

func sleepMillis(_ ms: Int) {
    var request = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
}

private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Starts a POSIX thread running `body`; returns it for `joinThread`.
func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, context)
    precondition(rc == 0, "pthread_create: \(rc)")
    return thread
}

func joinThread(_ thread: pthread_t) {
    _ = pthread_join(thread, nil)
}

/// Bad command-line usage.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// `--key value` options after the subcommand.
struct Options {
    private var values: [String: String] = [:]

    init(_ args: ArraySlice<String>) throws(UsageError) {
        var it = args.makeIterator()
        while let key = it.next() {
            guard key.hasPrefix("--") else { throw UsageError(description: "unexpected argument \(key)") }
            guard let value = it.next() else { throw UsageError(description: "\(key) needs a value") }
            values[String(key.dropFirst(2))] = value
        }
    }

    func string(_ key: String, default def: String? = nil) throws(UsageError) -> String {
        if let v = values[key] { return v }
        if let def { return def }
        throw UsageError(description: "missing --\(key)")
    }

    /// Decimal or 0x-prefixed hexadecimal.
    func int(_ key: String, default def: Int? = nil) throws(UsageError) -> Int {
        guard let text = values[key] else {
            if let def { return def }
            throw UsageError(description: "missing --\(key)")
        }
        let parsed = text.hasPrefix("0x") || text.hasPrefix("0X") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        guard let parsed else { throw UsageError(description: "--\(key): not a number: \(text)") }
        return parsed
    }
}
