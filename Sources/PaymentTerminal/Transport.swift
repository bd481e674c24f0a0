// The byte pipe under the terminal link: the libusb bulk endpoints in production,
// SimulatedTransport in tests.

/// Why a transport operation failed.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The device is gone (unplugged, reset, or the simulated cable was cut).
    case disconnected
    /// A write could not complete within its timeout.
    case timeout
    /// Any other I/O failure, with the underlying cause (e.g. a libusb error name).
    case io(String)

    /// A message naming what failed.
    public var description: String {
        switch self {
        case .disconnected: "transport disconnected"
        case .timeout: "transport timed out"
        case .io(let cause): "transport I/O error: \(cause)"
        }
    }
}

/// A blocking, full-duplex byte pipe to the terminal (one reader and any number of writers at a time).
///
/// Implementations must allow `read` and `write` to run concurrently on different threads.
public protocol TerminalTransport: Sendable {
    /// Writes all bytes, or throws (``TransportError/timeout`` if they could not go out in time).
    func write(_ bytes: [UInt8], timeout: Duration) throws
    /// Reads 1…`maxLength` bytes, waiting up to `timeout`; returns `[]` on timeout and throws
    /// ``TransportError/disconnected`` when the device is gone.
    func read(maxLength: Int, timeout: Duration) throws -> [UInt8]
}
