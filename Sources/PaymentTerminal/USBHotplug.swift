// Plug and unplug of terminals: libusb hotplug callbacks (or polling enumeration where libusb
// has no hotplug), handled on a dedicated thread and handed to async code as an AsyncStream.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CLibUSB
import Logging
import Synchronization

/// A matching device came or went.
public enum USBHotplugEvent: Sendable, Equatable, CustomStringConvertible {
    case arrived(USBDeviceInfo)
    case left(USBDeviceInfo)

    public var device: USBDeviceInfo {
        switch self {
        case .arrived(let d), .left(let d): d
        }
    }

    public var description: String {
        switch self {
        case .arrived(let d): "arrived \(d)"
        case .left(let d): "left \(d)"
        }
    }
}

/// Watches the bus for devices with one vendor id (and product id). Events of devices already
/// plugged in when watching starts come first, as arrivals.
///
/// libusb's event handling runs on the watcher's own thread (`usb-events`): hotplug callbacks
/// fire there, only record the event, and the thread hands it on after
/// `libusb_handle_events_timeout_completed` returns (callbacks must not block). Without hotplug
/// support the same thread enumerates every ``Mode/polling(interval:)`` and reports differences.
public final class USBDeviceWatcher: Sendable {
    public enum Mode: Sendable, Equatable {
        /// Hotplug when `libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)`, else polling every 500 ms.
        case automatic
        /// Poll the device list (also when hotplug is available).
        case polling(interval: Duration)
    }

    /// Every event, in order. One consumer; ends after ``stop()``.
    public let events: AsyncStream<USBHotplugEvent>
    /// True when libusb hotplug callbacks are used, false when polling.
    public let usesHotplug: Bool

    private let context: USBContext
    private let vendorID: UInt16
    private let productID: UInt16?
    private let pollInterval: Duration
    private let logger: Logger
    private let continuation: AsyncStream<USBHotplugEvent>.Continuation
    private let shared = HotplugShared()
    private let thread = Mutex<USBThread?>(nil)

    public init(context: USBContext, vendorID: UInt16, productID: UInt16?, mode: Mode = .automatic, logger: Logger) {
        self.context = context
        self.vendorID = vendorID
        self.productID = productID
        self.logger = logger
        switch mode {
        case .automatic:
            usesHotplug = USBContext.hasHotplug
            pollInterval = .milliseconds(500)
        case .polling(let interval):
            usesHotplug = false
            pollInterval = interval
        }
        (events, continuation) = AsyncStream.makeStream(of: USBHotplugEvent.self, bufferingPolicy: .unbounded)
    }

    deinit {
        stop()
    }

    /// Starts watching. `handler`, when given, is called on the watcher's thread for each event
    /// before it goes to ``events`` (keep it short: it delays the next events).
    public func start(handler: (@Sendable (USBHotplugEvent) -> Void)? = nil) throws {
        try thread.withLock { thread in
            guard thread == nil else { return }
            shared.handler.withLock { $0 = handler }
            if usesHotplug {
                try registerCallback()
            }
            let run: @Sendable () -> Void = { [self] in
                if usesHotplug { hotplugLoop() } else { pollLoop() }
            }
            thread = try USBThread(name: usesHotplug ? "usb-hotplug" : "usb-poll", run)
        }
        logger.debug("USB watcher started", metadata: ["ids": "\(hex4(vendorID)):\(productID.map(hex4) ?? "*")", "mode": "\(usesHotplug ? "hotplug" : "polling")"])
    }

    /// Stops the thread, deregisters the callback and finishes ``events``. Idempotent.
    public func stop() {
        let running = thread.withLock { thread -> USBThread? in
            defer { thread = nil }
            return thread
        }
        guard let running else { return }
        shared.stop.store(true, ordering: .sequentiallyConsistent)
        libusb_interrupt_event_handler(context.pointer)
        running.join()
        if let handle = shared.callbackHandle.withLock({ $0 }) {
            libusb_hotplug_deregister_callback(context.pointer, handle)
        }
        continuation.finish()
    }

    private func deliver(_ event: USBHotplugEvent) {
        logger.debug("USB \(event)")
        shared.handler.withLock { $0 }?(event)
        continuation.yield(event)
    }

    // MARK: Hotplug

    private func registerCallback() throws(LibUSBError) {
        let events = Int32(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED.rawValue | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT.rawValue)
        var handle: libusb_hotplug_callback_handle = 0
        // ENUMERATE: devices already present are reported (from this call, on this thread).
        try libusbCheck("libusb_hotplug_register_callback", libusb_hotplug_register_callback(
            context.pointer, events, Int32(LIBUSB_HOTPLUG_ENUMERATE.rawValue),
            Int32(vendorID), productID.map { Int32($0) } ?? KA_LIBUSB_HOTPLUG_MATCH_ANY, KA_LIBUSB_HOTPLUG_MATCH_ANY,
            { _, device, event, user in
                guard let user, let device, let info = USBContext.info(of: device) else { return 0 }
                let shared = Unmanaged<HotplugShared>.fromOpaque(user).takeUnretainedValue()
                shared.pending.withLock {
                    $0.append(event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? .arrived(info) : .left(info))
                }
                return 0  // stay registered
            },
            Unmanaged.passUnretained(shared).toOpaque(), &handle))
        shared.callbackHandle.withLock { $0 = handle }
    }

    private func hotplugLoop() {
        while true {
            for event in shared.pending.withLock({ p -> [USBHotplugEvent] in defer { p = [] }; return p }) {
                deliver(event)
            }
            if shared.stop.load(ordering: .sequentiallyConsistent) { return }
            var tv = timeval(tv_sec: 0, tv_usec: 250_000)
            let rc = libusb_handle_events_timeout_completed(context.pointer, &tv, nil)
            if rc < 0 && rc != LIBUSB_ERROR_INTERRUPTED.rawValue {
                logger.warning("USB event handling failed", metadata: ["error": "\(LibUSBError(call: "libusb_handle_events_timeout_completed", code: rc))"])
                sleepNanos(100_000_000)
            }
        }
    }

    // MARK: Polling

    private func pollLoop() {
        var present: [USBDeviceInfo] = []
        var lastError: LibUSBError?
        while !shared.stop.load(ordering: .sequentiallyConsistent) {
            do {
                let now = try context.devices(vendorID: vendorID, productID: productID)
                lastError = nil
                for old in present where !now.contains(where: { $0.isSamePlugIn(as: old) }) { deliver(.left(old)) }
                for new in now where !present.contains(where: { $0.isSamePlugIn(as: new) }) { deliver(.arrived(new)) }
                present = now
            } catch {
                if lastError != error { logger.warning("USB enumeration failed", metadata: ["error": "\(error)"]) }
                lastError = error
            }
            // Sleep in short slices so stop() is prompt.
            var left = pollInterval.clampedNanos
            while left > 0 && !shared.stop.load(ordering: .sequentiallyConsistent) {
                let slice = min(left, 50_000_000)
                sleepNanos(slice)
                left -= slice
            }
        }
    }
}

/// State shared with the C callback (passed as its user data) and the event thread.
private final class HotplugShared: Sendable {
    let pending = Mutex<[USBHotplugEvent]>([])
    let stop = Atomic<Bool>(false)
    let callbackHandle = Mutex<libusb_hotplug_callback_handle?>(nil)
    let handler = Mutex<(@Sendable (USBHotplugEvent) -> Void)?>(nil)
}
