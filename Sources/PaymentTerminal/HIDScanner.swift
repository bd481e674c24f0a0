// The USB HID barcode / QR scanner: the shopper's payment code, read as boot-keyboard reports
// over libusb.
//
// Why libusb and not hidraw: a scanner is a keyboard to the kernel; while usbhid is bound, every
// code it reads is also typed into whatever has the focus — the kiosk's full-screen browser. The
// driver claims the interface with kernel-driver auto-detach, so the codes reach the agent only
// (the keyboard comes back when the driver releases it).
import CLibUSB
import CKioskShims
import Foundation
import Logging
import Synchronization

/// A scanner's profile (Devices/scanners/*.json): which USB device, which layout.
public struct ScannerProfile: Sendable, Equatable {
    /// Profile name (= file name without .json).
    public var name: String
    /// What the device is.
    public var description: String
    /// USB vendor id.
    public var vendorID: UInt16
    /// USB product id.
    public var productID: UInt16
    /// The keyboard interface number.
    public var interfaceNumber: UInt8
    /// The interrupt IN endpoint of the keyboard interface.
    public var inEndpoint: UInt8
    /// The layout the scanner is configured for.
    public var layout: KeyboardLayout
    /// The longest code accepted.
    public var maxLength: Int
    /// A pending code ends after this much silence (scanners configured without a terminator); 0 = never.
    public var idleTerminateMillis: Int

    /// Creates a profile.
    public init(name: String, description: String = "", vendorID: UInt16, productID: UInt16, interfaceNumber: UInt8 = 0,
                inEndpoint: UInt8 = 0x81, layout: KeyboardLayout = .us, maxLength: Int = 512, idleTerminateMillis: Int = 300) {
        self.name = name
        self.description = description
        self.vendorID = vendorID
        self.productID = productID
        self.interfaceNumber = interfaceNumber
        self.inEndpoint = inEndpoint
        self.layout = layout
        self.maxLength = maxLength
        self.idleTerminateMillis = idleTerminateMillis
    }

    /// `vvvv:pppp`.
    public var usbID: String { "\(hex4(vendorID)):\(hex4(productID))" }

    /// Reads and checks a profile file; errors name the file, the field and the problem.
    public static func load(path: String) throws(DeviceProfileError) -> ScannerProfile {
        try parse(try ProfileReader.contents(of: path), source: path)
    }

    /// Parses a profile document. `source` names it in errors.
    public static func parse(_ data: Data, source: String) throws(DeviceProfileError) -> ScannerProfile {
        do {
            return try JSONDecoder().decode(ScannerDocument.self, from: data).profile
        } catch var error as DeviceProfileError {
            error.file = source
            throw error
        } catch let error as DecodingError {
            if case .dataCorrupted(let c) = error, c.codingPath.isEmpty {
                throw DeviceProfileError(file: source, field: "", message: "is not valid JSON")
            }
            throw ProfileReader.translate(error, source: source)
        } catch {
            throw DeviceProfileError(file: source, field: "", message: "\(error)")
        }
    }
}

private struct ScannerDocument: Decodable {
    let profile: ScannerProfile

    init(from decoder: any Decoder) throws {
        let top: KeyedDecodingContainer<AnyKey>
        do {
            top = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            throw DeviceProfileError(file: "", field: "", message: "the top level must be a JSON object")
        }
        let root = try ProfileReader(top, path: "", allowed: ["name", "description", "kind", "usb", "layout", "max_length", "idle_terminate_ms"])
        let kind = try root.string("kind")
        guard kind == "hid-keyboard-scanner" else { throw root.error("kind", "\"\(kind)\" is not hid-keyboard-scanner") }
        let name = try root.string("name")
        let description = root.has("description") ? try root.string("description") : ""
        let usb = try root.object("usb", allowed: ["vendor_id", "product_id", "interface", "in_endpoint"])
        let inEndpoint = UInt8(try usb.integer("in_endpoint", in: 0x81...0x8F, default: 0x81))
        let layoutText = root.has("layout") ? try root.string("layout") : "us"
        guard let layout = KeyboardLayout(rawValue: layoutText) else {
            throw root.error("layout", "\"\(layoutText)\" is not a known layout (\(KeyboardLayout.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        profile = ScannerProfile(
            name: name, description: description,
            vendorID: UInt16(try usb.integer("vendor_id", in: 0x0001...0xFFFF)),
            productID: UInt16(try usb.integer("product_id", in: 0x0000...0xFFFF)),
            interfaceNumber: UInt8(try usb.integer("interface", in: 0...255, default: 0)),
            inEndpoint: inEndpoint, layout: layout,
            maxLength: try root.integer("max_length", in: 1...4096, default: 512),
            idleTerminateMillis: try root.integer("idle_terminate_ms", in: 0...10_000, default: 300))
    }
}

/// What the scanner driver reports.
public enum ScannerEvent: Sendable, Equatable {
    /// The scanner was opened (its keyboard interface is now the agent's).
    case connected(USBDeviceInfo)
    /// A code was scanned.
    case code(String)
    /// A code longer than the profile's limit was discarded.
    case overflow(length: Int)
    /// The scanner is gone (unplugged) or failed; the driver keeps looking for it.
    case disconnected(String)
}

/// Reads a USB HID keyboard-wedge scanner through libusb on a thread of its own.
///
/// The thread opens the scanner (looking again every second while it is absent), claims its
/// keyboard interface with kernel-driver auto-detach, reads interrupt IN reports, decodes them
/// with the profile's layout and yields ``ScannerEvent``s; an unplug ends in
/// ``ScannerEvent/disconnected(_:)`` and the search resumes.
public final class HIDScanner: Sendable {
    /// The profile.
    public let profile: ScannerProfile
    /// Scanner events, in order (bounded; the newest are kept).
    public let events: AsyncStream<ScannerEvent>
    private let continuation: AsyncStream<ScannerEvent>.Continuation
    private let serial: String?
    private let context: USBContext
    private let logger: Logger
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Mutex<DispatchSemaphore?>(nil)

    /// Prepares the driver (libusb is initialised; nothing is opened until ``start()``).
    public init(profile: ScannerProfile, serial: String? = nil, context: USBContext? = nil, logger: Logger) throws(LibUSBError) {
        self.profile = profile
        self.serial = serial
        if let context { self.context = context } else { self.context = try USBContext() }
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: ScannerEvent.self, bufferingPolicy: .bufferingNewest(256))
    }

    /// Starts the reader thread. Idempotent.
    public func start() {
        let done = DispatchSemaphore(value: 0)
        let first = finished.withLock { f -> Bool in
            guard f == nil else { return false }
            f = done
            return true
        }
        guard first else { return }
        let thread = Thread { [self] in
            _ = ka_usb_set_thread_name("kiosk-scanner")
            run()
            continuation.finish()
            done.signal()
        }
        thread.name = "kiosk-scanner"
        thread.start()
    }

    /// Stops the reader (within about a quarter of a second) and releases the scanner.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        if let done = finished.withLock({ $0 }) {
            done.wait()
            done.signal()  // later stop() calls return at once
        }
    }

    private var stopping: Bool { stopFlag.load(ordering: .acquiring) }

    private func run() {
        var lastAbsence = ""
        while !stopping {
            let handle: OpaquePointer
            let device: USBDeviceInfo
            do {
                (handle, device) = try context.openHandle(vendorID: profile.vendorID, productID: profile.productID, serial: serial)
            } catch {
                let why = "\(error)"
                if why != lastAbsence {
                    logger.info("scanner not available", metadata: ["scanner": "\(profile.name)", "reason": "\(why)"])
                    lastAbsence = why
                }
                sleepChecking(seconds: 1)
                continue
            }
            lastAbsence = ""
            let reason = read(handle: handle, device: device)
            logger.notice("scanner released", metadata: ["scanner": "\(profile.name)", "reason": "\(reason)"])
            if !stopping { continuation.yield(.disconnected(reason)) }
        }
    }

    /// Claims the interface and reads until the device goes or the driver stops; returns why it ended.
    private func read(handle: OpaquePointer, device: USBDeviceInfo) -> String {
        let interface = Int32(profile.interfaceNumber)
        defer { libusb_close(handle) }
        do {
            let rc = libusb_set_auto_detach_kernel_driver(handle, 1)
            if rc != LIBUSB_ERROR_NOT_SUPPORTED.rawValue { try libusbCheck("libusb_set_auto_detach_kernel_driver", rc) }
            try libusbCheck("libusb_claim_interface(\(interface))", libusb_claim_interface(handle, interface))
        } catch {
            return "\(error)"
        }
        defer { libusb_release_interface(handle, interface) }  // usbhid is re-attached: the keyboard returns
        let packet = max(8, Int(libusb_get_max_packet_size(libusb_get_device(handle), profile.inEndpoint)))
        logger.notice("scanner opened", metadata: ["scanner": "\(profile.name)", "device": "\(device)", "layout": "\(profile.layout.rawValue)"])
        continuation.yield(.connected(device))
        var decoder = HIDKeyboardDecoder(layout: profile.layout, maxLength: profile.maxLength)
        var buffer = [UInt8](repeating: 0, count: packet)
        var lastKey = ContinuousClock.now
        let idle = Duration.milliseconds(profile.idleTerminateMillis)
        while !stopping {
            var transferred: Int32 = 0
            let rc = libusb_interrupt_transfer(handle, profile.inEndpoint, &buffer, Int32(packet), &transferred, 250)
            switch rc {
            case 0:
                lastKey = .now
                do {
                    for event in try decoder.feed(buffer[0..<Int(transferred)]) { deliver(event) }
                } catch {
                    logger.warning("ignored a report", metadata: ["scanner": "\(profile.name)", "error": "\(error)"])
                }
            case LIBUSB_ERROR_TIMEOUT.rawValue:
                if profile.idleTerminateMillis > 0, decoder.pending > 0, ContinuousClock.now - lastKey >= idle, let event = decoder.flush() {
                    deliver(event)
                }
            case LIBUSB_ERROR_INTERRUPTED.rawValue:
                continue
            default:
                return LibUSBError(call: "libusb_interrupt_transfer(IN \(hex2(profile.inEndpoint)))", code: rc).description
            }
        }
        return "driver stopped"
    }

    private func deliver(_ event: HIDScanEvent) {
        switch event {
        case .code(let code):
            logger.info("code scanned", metadata: ["scanner": "\(profile.name)", "code": "\(HIDKeyboardDecoder.masked(code))"])
            continuation.yield(.code(code))
        case .overflow(let length):
            logger.warning("code too long: discarded", metadata: ["scanner": "\(profile.name)", "length": "\(length)"])
            continuation.yield(.overflow(length: length))
        }
    }

    private func sleepChecking(seconds: Int) {
        for _ in 0..<(seconds * 4) where !stopping { Thread.sleep(forTimeInterval: 0.25) }
    }
}
