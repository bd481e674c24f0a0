// A libusb context and finding/opening terminals by vendor, product and serial.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CLibUSB

/// One USB device as enumerated: where it sits on the bus and what it says it is.
public struct USBDeviceInfo: Sendable, Hashable, CustomStringConvertible {
    public var vendorID: UInt16
    public var productID: UInt16
    public var bus: UInt8
    /// The device address on its bus: a new one at every plug-in.
    public var address: UInt8
    /// The iSerialNumber string; nil when not read (hotplug events) or the device has none.
    public var serial: String?

    public init(vendorID: UInt16, productID: UInt16, bus: UInt8, address: UInt8, serial: String? = nil) {
        self.vendorID = vendorID
        self.productID = productID
        self.bus = bus
        self.address = address
        self.serial = serial
    }

    /// The same plug-in of the same device (bus and address; serial not compared).
    public func isSamePlugIn(as other: USBDeviceInfo) -> Bool {
        bus == other.bus && address == other.address && vendorID == other.vendorID && productID == other.productID
    }

    /// `1209:4b41 bus 1 address 3 serial X`.
    public var description: String {
        "\(hex4(vendorID)):\(hex4(productID)) bus \(bus) address \(address)" + (serial.map { " serial \($0)" } ?? "")
    }
}

/// Why a terminal could not be opened.
public enum USBTerminalError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No device with these ids (and serial) is plugged in.
    case notFound(usbID: String, serial: String?)
    /// Several devices match and no serial was given to choose.
    case ambiguous(usbID: String, serials: [String])
    /// The device lacks the interface or endpoints its profile names.
    case descriptorMismatch(String)
    /// A libusb call failed.
    case libusb(LibUSBError)

    public var description: String {
        switch self {
        case .notFound(let id, let serial): "no USB device \(id)" + (serial.map { " with serial \($0)" } ?? "") + " is plugged in"
        case .ambiguous(let id, let serials): "\(serials.count) USB devices \(id) are plugged in (serials \(serials.joined(separator: ", "))): configure the serial of the one to use"
        case .descriptorMismatch(let text): "device does not match its profile: \(text)"
        case .libusb(let e): e.description
        }
    }
}

/// A libusb context. libusb contexts are thread-safe; transports and watchers keep the context
/// alive until they are gone (`libusb_exit` runs last).
public final class USBContext: @unchecked Sendable {
    /// The `libusb_context *` (immutable after init).
    package let pointer: OpaquePointer

    /// Initialises libusb. `KIOSK_USB_DEBUG=1` in the environment turns on libusb's debug log.
    public init() throws(LibUSBError) {
        var ctx: OpaquePointer?
        try libusbCheck("libusb_init", libusb_init(&ctx))
        guard let ctx else { throw LibUSBError(call: "libusb_init", code: LIBUSB_ERROR_OTHER.rawValue) }
        pointer = ctx
        if let level = getenv("KIOSK_USB_DEBUG"), level.pointee != 0, level.pointee != 0x30 {
            _ = ka_libusb_set_log_level(ctx, LIBUSB_LOG_LEVEL_DEBUG)
        }
    }

    deinit { libusb_exit(pointer) }

    /// Whether this libusb build delivers hotplug events (the Linux backend does, via udev or netlink).
    public static var hasHotplug: Bool {
        libusb_has_capability(UInt32(LIBUSB_CAP_HAS_HOTPLUG.rawValue)) != 0
    }

    /// Devices with `vendorID` (and `productID` when given) now on the bus; serials are read
    /// (the device is opened briefly) when `readSerials` is true.
    public func devices(vendorID: UInt16, productID: UInt16?, readSerials: Bool = false) throws(LibUSBError) -> [USBDeviceInfo] {
        try withDeviceList { list in
            list.compactMap { device -> USBDeviceInfo? in
                guard var info = Self.info(of: device), info.vendorID == vendorID, productID.map({ $0 == info.productID }) ?? true else {
                    return nil
                }
                if readSerials {
                    var handle: OpaquePointer?
                    if libusb_open(device, &handle) == 0, let handle {
                        info.serial = Self.serialString(handle)
                        libusb_close(handle)
                    }
                }
                return info
            }
        }
    }

    /// Opens the terminal of `profile`: the only device with its ids, or the one whose serial is
    /// `serial`. Claims its interface (kernel driver detached, re-attached on close).
    public func openTerminal(profile: DeviceProfile, serial: String? = nil) throws(USBTerminalError) -> USBTransport {
        let (handle, info) = try openHandle(vendorID: profile.vendorID, productID: profile.productID, serial: serial)
        return try USBTransport(context: self, handle: handle, device: info, profile: profile)
    }

    package func openHandle(vendorID: UInt16, productID: UInt16, serial: String?) throws(USBTerminalError) -> (OpaquePointer, USBDeviceInfo) {
        let usbID = "\(hex4(vendorID)):\(hex4(productID))"
        let result: Result<(OpaquePointer, USBDeviceInfo), USBTerminalError>
        do {
            result = try withDeviceList { list in
                var candidates: [(OpaquePointer, USBDeviceInfo)] = []
                var openError: LibUSBError?
                for device in list {
                    guard var info = Self.info(of: device), info.vendorID == vendorID, info.productID == productID else { continue }
                    var handle: OpaquePointer?
                    let rc = libusb_open(device, &handle)
                    guard rc == 0, let handle else {
                        openError = LibUSBError(call: "libusb_open(\(info))", code: rc)
                        continue
                    }
                    info.serial = Self.serialString(handle)
                    candidates.append((handle, info))
                }
                let chosen: (OpaquePointer, USBDeviceInfo)?
                if let serial {
                    chosen = candidates.first { $0.1.serial == serial }
                } else if candidates.count > 1 {
                    candidates.forEach { libusb_close($0.0) }
                    return .failure(.ambiguous(usbID: usbID, serials: candidates.map { $0.1.serial ?? "(none)" }))
                } else {
                    chosen = candidates.first
                }
                for candidate in candidates where candidate.0 != chosen?.0 { libusb_close(candidate.0) }
                if let chosen { return .success(chosen) }
                // Present but not openable (permissions: is the udev rule installed?) says why.
                if let openError { return .failure(.libusb(openError)) }
                return .failure(.notFound(usbID: usbID, serial: serial))
            }
        } catch {
            throw .libusb(error)
        }
        return try result.get()
    }

    /// Runs `body` over the current device list (freed afterwards: keep no `libusb_device *`
    /// without `libusb_ref_device`).
    private func withDeviceList<R>(_ body: ([OpaquePointer]) -> R) throws(LibUSBError) -> R {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = try libusbCheck("libusb_get_device_list", Int32(truncatingIfNeeded: libusb_get_device_list(pointer, &list)))
        defer { libusb_free_device_list(list, 1) }
        var devices: [OpaquePointer] = []
        devices.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            if let device = list?[i] { devices.append(device) }
        }
        return body(devices)
    }

    /// Ids and bus position of a `libusb_device *` (from the cached descriptor: no I/O).
    package static func info(of device: OpaquePointer) -> USBDeviceInfo? {
        var desc = libusb_device_descriptor()
        guard libusb_get_device_descriptor(device, &desc) == 0 else { return nil }
        return USBDeviceInfo(
            vendorID: desc.idVendor, productID: desc.idProduct,
            bus: libusb_get_bus_number(device), address: libusb_get_device_address(device))
    }

    /// The iSerialNumber string of an open device, nil if it has none or it cannot be read.
    package static func serialString(_ handle: OpaquePointer) -> String? {
        var desc = libusb_device_descriptor()
        guard libusb_get_device_descriptor(libusb_get_device(handle), &desc) == 0, desc.iSerialNumber != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = libusb_get_string_descriptor_ascii(handle, desc.iSerialNumber, &buffer, Int32(buffer.count))
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<Int(n)], as: UTF8.self)
    }
}
