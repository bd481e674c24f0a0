import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// POSIX file helpers for the outbox database: private file creation, free-space checks,
/// directory fsync and setting corrupt files aside.
enum FileSupport {
    /// Suffixes of the files SQLite keeps beside a database.
    static let companionSuffixes = ["-wal", "-shm", "-journal"]

    /// Whether anything (file, link, directory) exists at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Size in bytes of the regular file at `path`, nil if it does not exist.
    static func fileSize(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Up to `count` leading bytes of the file at `path`, nil if it cannot be read.
    static func prefix(_ path: String, count: Int) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = buffer.withUnsafeMutableBytes { bytes -> Int in
                guard let base = bytes.baseAddress else { return 0 }
                return read(fd, base + filled, count - filled)
            }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { break }
            filled += got
        }
        return Data(buffer[0 ..< filled])
    }

    /// The current `errno` as readable text.
    static func errnoDescription(_ code: Int32 = errno) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }

    /// Creates an empty file with mode 0600 if none exists (an empty file is a valid empty SQLite
    /// database), then fsyncs the directory so the new entry survives a power cut.
    ///
    /// Throws ``OutboxError/sqlite(code:message:)`` with SQLITE_CANTOPEN (14) on failure.
    static func createPrivateFileIfMissing(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            let code = errno
            if code == EEXIST { return }
            throw OutboxError.sqlite(code: 14, message: "cannot create \(path): \(errnoDescription(code))")
        }
        _ = fsync(fd)
        _ = close(fd)
        fsyncDirectory(containing: path)
    }

    /// Makes `path` mode 0600 when it grants anything to group or others. Returns an error text on failure.
    @discardableResult
    static func restrictToOwner(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        guard (info.st_mode & 0o077) != 0 else { return nil }
        if chmod(path, 0o600) != 0 {
            return "chmod 0600 \(path): \(errnoDescription())"
        }
        return nil
    }

    /// Fsyncs the directory that contains `path` (best effort: some filesystems refuse it).
    static func fsyncDirectory(containing path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    /// Bytes available to unprivileged users on the filesystem holding `path` (statvfs `f_bavail * f_frsize`).
    ///
    /// Throws ``OutboxError/sqlite(code:message:)`` with SQLITE_IOERR (10) when statvfs fails.
    static func freeBytes(at path: String) throws -> Int64 {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else {
            throw OutboxError.sqlite(code: 10, message: "statvfs(\(path)) failed: \(errnoDescription())")
        }
        let (bytes, overflow) = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        if overflow || bytes > UInt64(Int64.max) { return Int64.max }
        return Int64(bytes)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func utcTimestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ",
            Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// Renames the database at `path` and its companion files to `<path>.corrupt-<UTC timestamp>`
    /// (plus `-wal`, `-shm`, `-journal`), never overwriting and never deleting anything.
    /// Returns the new path of the database file.
    ///
    /// Throws ``OutboxError/sqlite(code:message:)`` with SQLITE_IOERR (10) when a rename fails.
    static func setAside(_ path: String, now: Date) throws -> String {
        let base = "\(path).corrupt-\(utcTimestamp(now))"
        var target = base
        var attempt = 1
        while ([target] + companionSuffixes.map { target + $0 }).contains(where: exists) {
            attempt += 1
            target = "\(base)-\(attempt)"
        }
        if rename(path, target) != 0 {
            throw OutboxError.sqlite(code: 10, message: "cannot rename \(path) to \(target): \(errnoDescription())")
        }
        for suffix in companionSuffixes where exists(path + suffix) {
            if rename(path + suffix, target + suffix) != 0 {
                throw OutboxError.sqlite(
                    code: 10, message: "cannot rename \(path + suffix) to \(target + suffix): \(errnoDescription())")
            }
        }
        fsyncDirectory(containing: path)
        return target
    }
}

/// An exclusive `flock` on `<database>.lock`, held by the one `Outbox` instance that owns the queue.
///
/// The owner performs crash recovery (in-flight rows back to pending) and may set a corrupt database
/// aside; other instances on the same file (another `Outbox` in the process, or `kioskctl`) must not,
/// because the owner may be mid-sync. The kernel drops the lock when the owner dies (kill -9, power cut).
final class OwnerLock: @unchecked Sendable {
    private let mutex = NSLock()
    private var fd: Int32

    private init(fd: Int32) {
        self.fd = fd
    }

    /// Tries to take the lock without waiting. Returns the lock, or nil and the reason it is not held.
    static func acquire(path: String) -> (lock: OwnerLock?, failure: String?) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            return (nil, "cannot open \(path): \(FileSupport.errnoDescription())")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            _ = close(fd)
            if code == EWOULDBLOCK {
                return (nil, "another live Outbox instance holds \(path)")
            }
            return (nil, "flock \(path): \(FileSupport.errnoDescription(code))")
        }
        return (OwnerLock(fd: fd), nil)
    }

    /// Releases the lock (idempotent).
    func release() {
        mutex.lock()
        defer { mutex.unlock() }
        if fd >= 0 {
            _ = close(fd)  // closing the descriptor drops the flock
            fd = -1
        }
    }

    deinit {
        release()
    }
}
