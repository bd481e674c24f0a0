// KioskSys: the project's one errno helper. No Foundation, so the small binaries that run inside
// the TCG test VM (vm-selfcheck) can use it without paying Foundation's start-up.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call or ioctl: which call, and the errno it left.
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call, as the caller named it (e.g. `open /dev/ffs-term/ep0`).
    public var call: String
    /// The errno value.
    public var code: Int32

    /// Creates the error.
    public init(call: String, code: Int32) {
        self.call = call
        self.code = code
    }

    /// `call failed: ENAME (code, strerror)`.
    public var description: String { "\(call) failed: \(errnoName(code)) (\(code), \(String(cString: strerror(code))))" }
}

/// Runs `body` (returning -1 and setting errno on failure), retrying on EINTR; any other errno
/// throws a ``SystemCallError`` naming `call`.
@discardableResult
public func systemCall<T: BinaryInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemCallError(call: call(), code: code)
    }
}

/// The symbolic name of the errnos device code meets; others print as `errno`.
public func errnoName(_ code: Int32) -> String {
    switch code {
    case EPERM: "EPERM"
    case ENOENT: "ENOENT"
    case EINTR: "EINTR"
    case EIO: "EIO"
    case ENXIO: "ENXIO"
    case EBADF: "EBADF"
    case EAGAIN: "EAGAIN"
    case ENOMEM: "ENOMEM"
    case EACCES: "EACCES"
    case EFAULT: "EFAULT"
    case EBUSY: "EBUSY"
    case ENODEV: "ENODEV"
    case EINVAL: "EINVAL"
    case ENOTTY: "ENOTTY"
    case EPIPE: "EPIPE"
    case ENOSPC: "ENOSPC"
    case ETIMEDOUT: "ETIMEDOUT"
    case ESHUTDOWN: "ESHUTDOWN"
    case EOVERFLOW: "EOVERFLOW"
    case ECONNRESET: "ECONNRESET"
    default: "errno"
    }
}
