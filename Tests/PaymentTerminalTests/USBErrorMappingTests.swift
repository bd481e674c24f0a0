import KioskSys
import CLibUSB
import Glibc
import Testing

@testable import PaymentTerminal

@Suite("libusb and errno error mapping")
struct USBErrorMappingTests {
    @Test func noDeviceIsDisconnected() {
        let e = LibUSBError(call: "libusb_bulk_transfer(IN 0x81)", code: LIBUSB_ERROR_NO_DEVICE.rawValue)
        #expect(e.isDisconnect)
        #expect(e.transportError == .disconnected)
        #expect(e.name == "LIBUSB_ERROR_NO_DEVICE")
        #expect(e.description == "libusb_bulk_transfer(IN 0x81) failed: LIBUSB_ERROR_NO_DEVICE (-4)")
    }

    @Test func timeoutIsTimeout() {
        #expect(LibUSBError(call: "x", code: LIBUSB_ERROR_TIMEOUT.rawValue).transportError == .timeout)
    }

    /// Everything else becomes .io with the call, libusb's error name and the code.
    @Test(arguments: [
        (LIBUSB_ERROR_IO.rawValue, "LIBUSB_ERROR_IO", -1),
        (LIBUSB_ERROR_PIPE.rawValue, "LIBUSB_ERROR_PIPE", -9),
        (LIBUSB_ERROR_OVERFLOW.rawValue, "LIBUSB_ERROR_OVERFLOW", -8),
        (LIBUSB_ERROR_ACCESS.rawValue, "LIBUSB_ERROR_ACCESS", -3),
        (LIBUSB_ERROR_BUSY.rawValue, "LIBUSB_ERROR_BUSY", -6),
        (LIBUSB_ERROR_NOT_FOUND.rawValue, "LIBUSB_ERROR_NOT_FOUND", -5),
    ])
    func otherErrorsAreIOAndNameTheCode(_ code: Int32, name: String, value: Int) {
        let e = LibUSBError(call: "libusb_bulk_transfer(OUT 0x02)", code: code)
        #expect(!e.isDisconnect)
        #expect(e.name == name)
        #expect(e.transportError == .io("libusb_bulk_transfer(OUT 0x02) failed: \(name) (\(value))"))
    }

    @Test func libusbCheckPassesCountsAndThrowsNegatives() throws {
        #expect(try libusbCheck("libusb_get_device_list", 3) == 3)
        #expect(throws: LibUSBError(call: "libusb_claim_interface(0)", code: LIBUSB_ERROR_BUSY.rawValue)) {
            try libusbCheck("libusb_claim_interface(0)", LIBUSB_ERROR_BUSY.rawValue)
        }
    }

    @Test func functionFSShutdownIsDisconnected() {
        #expect(SystemCallError(call: "read ep2", code: ESHUTDOWN).transportError == .disconnected)
        #expect(SystemCallError(call: "read ep2", code: ENODEV).transportError == .disconnected)
        #expect(SystemCallError(call: "write ep1", code: ETIMEDOUT).transportError == .timeout)
        let e = SystemCallError(call: "open /dev/ffs-x/ep0", code: ENOENT)
        #expect(e.transportError == .io("open /dev/ffs-x/ep0 failed: ENOENT (2, No such file or directory)"))
    }

    @Test func systemCallRetriesEINTRAndThrowsTheRest() throws {
        var calls = 0
        let n = try systemCall("read") { () -> Int in
            calls += 1
            if calls == 1 {
                errno = EINTR
                return -1
            }
            return 7
        }
        #expect(n == 7 && calls == 2)
        #expect(throws: SystemCallError(call: "open x", code: EACCES)) {
            try systemCall("open x") { () -> Int32 in
                errno = EACCES
                return -1
            }
        }
    }

    @Test func usbTerminalErrorsSayWhatToDo() {
        #expect("\(USBTerminalError.notFound(usbID: "1209:4b41", serial: nil))" == "no USB device 1209:4b41 is plugged in")
        #expect("\(USBTerminalError.ambiguous(usbID: "1209:4b41", serials: ["A", "B"]))".contains("configure the serial"))
    }

    @Test func libusbTimeoutsAreNeverZero() {
        #expect(Duration.zero.libusbMillis == 1)
        #expect(Duration.microseconds(10).libusbMillis == 1)
        #expect(Duration.milliseconds(100).libusbMillis == 100)
        #expect(Duration.nanoseconds(100_000_001).libusbMillis == 101)
        #expect(Duration.seconds(-1).libusbMillis == 1)
    }
}
