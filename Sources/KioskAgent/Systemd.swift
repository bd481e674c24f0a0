import CKioskShims
import Foundation
import Glibc

/// Sends sd_notify(3) messages to `$NOTIFY_SOCKET` without libsystemd.
///
/// A no-op when the variable is unset (not started by systemd). Supports filesystem and
/// abstract (`@…`) socket addresses.
public struct SystemdNotifier: Sendable {
    private let socketPath: String?

    /// Creates a notifier from the environment.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether systemd is listening.
    public var isEnabled: Bool { socketPath != nil }

    /// Sends `READY=1`.
    public func ready(status: String? = nil) { send("READY=1" + (status.map { "\nSTATUS=\($0)" } ?? "")) }
    /// Sends `WATCHDOG=1`.
    public func watchdog() { send("WATCHDOG=1") }
    /// Sends `STOPPING=1`.
    public func stopping() { send("STOPPING=1") }
    /// Sends `STATUS=…`.
    public func status(_ text: String) { send("STATUS=\(text)") }

    /// Sends one datagram; errors are ignored (sd_notify semantics) but reported by the return value.
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (abstract ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return sent == bytes.count
    }

    /// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if it is meant for this process.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
        return .microseconds(usec)
    }
}

/// Clock readings for ``KioskCore/Timestamp``: wall clock, boot id and `CLOCK_BOOTTIME`.
public enum DeviceClock {
    /// The kernel's boot id, read once.
    public static let bootID: String = {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }()

    /// Nanoseconds of `CLOCK_BOOTTIME` (monotonic, counts suspend).
    public static func bootTimeNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
