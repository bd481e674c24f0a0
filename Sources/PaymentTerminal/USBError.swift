// The one place where libusb return codes and errnos become typed Swift errors.
#if canImport(Glibc)
import KioskSys
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CLibUSB

/// A failed libusb call: which call, its libusb error code and the code's name
/// (`libusb_error_name`, e.g. `LIBUSB_ERROR_NO_DEVICE`).
public struct LibUSBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call that failed, with what it was applied to (`libusb_bulk_transfer(IN 0x81)`).
    public var call: String
    /// The `enum libusb_error` value (negative).
    public var code: Int32

    public init(call: String, code: Int32) {
        self.call = call
        self.code = code
    }

    /// `LIBUSB_ERROR_NO_DEVICE`, `LIBUSB_ERROR_PIPE`, ... (libusb's own name for the code).
    public var name: String { String(cString: libusb_error_name(code)) }

    public var description: String { "\(call) failed: \(name) (\(code))" }

    /// The device is gone: unplugged, unbound, or reset away.
    public var isDisconnect: Bool { code == LIBUSB_ERROR_NO_DEVICE.rawValue }

    /// What a ``TerminalTransport`` reports for this error.
    ///
    /// - `LIBUSB_ERROR_NO_DEVICE` → ``TransportError/disconnected``
    /// - `LIBUSB_ERROR_TIMEOUT` → ``TransportError/timeout``
    /// - anything else (`LIBUSB_ERROR_IO`, `LIBUSB_ERROR_PIPE` (a stall), `LIBUSB_ERROR_OVERFLOW`,
    ///   `LIBUSB_ERROR_ACCESS`, ...) → ``TransportError/io(_:)`` whose text names the call, the
    ///   libusb error name and code, e.g. `libusb_bulk_transfer(OUT 0x02) failed: LIBUSB_ERROR_PIPE (-9)`.
    ///
    /// `LIBUSB_ERROR_IO` during an unplug is told apart by ``USBTransport`` (it asks the device
    /// whether it is still there) before it gets here.
    public var transportError: TransportError {
        switch code {
        case LIBUSB_ERROR_NO_DEVICE.rawValue: .disconnected
        case LIBUSB_ERROR_TIMEOUT.rawValue: .timeout
        default: .io(description)
        }
    }
}

/// Checks a libusb return value: negative values throw a ``LibUSBError`` naming `call`;
/// non-negative values (counts, lengths) are returned.
@discardableResult
package func libusbCheck(_ call: @autoclosure () -> String, _ rc: Int32) throws(LibUSBError) -> Int32 {
    guard rc >= 0 else { throw LibUSBError(call: call(), code: rc) }
    return rc
}

extension SystemCallError {
    /// The USB link went down under the call: a FunctionFS endpoint ends in-flight I/O with
    /// ESHUTDOWN on unbind/disable; ENODEV when the function is gone.
    public var isDisconnect: Bool { code == ESHUTDOWN || code == ENODEV }

    /// What a ``TerminalTransport`` reports for this error.
    public var transportError: TransportError {
        if isDisconnect { return .disconnected }
        if code == ETIMEDOUT { return .timeout }
        return .io(description)
    }
}
