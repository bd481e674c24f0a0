// The one place where camera failures become typed Swift errors. errno values come from the
// project's errno helper (KioskSys.systemCall), which retries EINTR.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KioskSys

/// A camera failure: which C call or V4L2 ioctl failed and with which errno, or what else went wrong.
public enum CameraError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A V4L2 ioctl (`VIDIOC_DQBUF`, ...) or C call (`v4l2_open`, `v4l2_mmap`, `poll`) on `device`
    /// failed with `errno`.
    case system(call: String, device: String, errno: Int32)
    /// No frame arrived within the timeout (`poll` on the capture fd returned 0 for `seconds`).
    case timeout(device: String, seconds: Double)
    /// The node exists but cannot be used as asked (not a capture device, format refused, ...).
    case unsupported(device: String, reason: String)
    /// No enumerated device matches the identity or path asked for.
    case notFound(String)
    /// A Netpbm (PGM/PPM) file or replay directory could not be read or written.
    case file(path: String, reason: String)
    /// A camera profile could not be used: file, dotted field (empty for the whole file), message.
    case profile(file: String, field: String, message: String)

    /// Maps a ``SystemCallError`` from the errno helper: the call text is kept, the errno too.
    public init(_ error: SystemCallError, device: String) {
        self = .system(call: error.call, device: device, errno: error.code)
    }

    /// The device is gone (unplugged, driver unbound or removed): ENODEV, ENXIO, EIO, EPIPE, ESHUTDOWN,
    /// or a POLLERR/POLLHUP reported as ENODEV.
    public var isDisconnect: Bool {
        if case .system(_, _, let code) = self {
            return code == ENODEV || code == ENXIO || code == EIO || code == EPIPE || code == ESHUTDOWN || code == ENOENT
        }
        return false
    }

    /// One line for logs and `kioskctl`.
    public var description: String {
        switch self {
        case .system(let call, let device, let code):
            "\(call) on \(device) failed: \(errnoName(code)) (\(code), \(String(cString: strerror(code))))"
        case .timeout(let device, let seconds):
            "no frame from \(device) within \(seconds) s (poll timeout before VIDIOC_DQBUF)"
        case .unsupported(let device, let reason):
            "\(device): \(reason)"
        case .notFound(let what):
            "no camera matches \(what)"
        case .file(let path, let reason):
            "\(path): \(reason)"
        case .profile(let file, let field, let message):
            field.isEmpty ? "\(file): \(message)" : "\(file): field \(field): \(message)"
        }
    }
}

/// Runs a C call through the project's errno helper (EINTR retried) and maps failures to
/// ``CameraError/system(call:device:errno:)``.
@discardableResult
func cameraCall<T: BinaryInteger>(_ call: String, device: String, _ body: () -> T) throws(CameraError) -> T {
    do {
        return try systemCall(call, body)
    } catch {
        throw CameraError(error, device: device)
    }
}
