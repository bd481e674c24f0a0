// usb-host and usb-hotplug: the libusb side of the FunctionFS echo device.
#if canImport(Glibc)
import KioskSys
import Glibc
#endif
import CKioskShims
import CLibUSB
import Synchronization

/// A failed libusb call: which one and its libusb error name.
struct USBError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    var description: String { "\(call) failed: \(String(cString: libusb_error_name(code))) (\(code))" }
}

@discardableResult
private func usb(_ call: @autoclosure () -> String, _ rc: Int32) throws(USBError) -> Int32 {
    guard rc >= 0 else { throw USBError(call: call(), code: rc) }
    return rc
}

struct USBCheckFailure: Error, CustomStringConvertible {
    let description: String
}

/// An opened libusb context (default options; the Linux backend uses udev when it is running).
final class USBContext {
    let ctx: OpaquePointer

    init() throws(USBError) {
        var ctx: OpaquePointer?
        try usb("libusb_init", libusb_init(&ctx))
        self.ctx = ctx!
        if let level = getenv("VM_SELFCHECK_USB_DEBUG"), level.pointee != 0 {
            _ = ka_libusb_set_log_level(ctx, LIBUSB_LOG_LEVEL_DEBUG)
        }
    }

    deinit { libusb_exit(ctx) }

    /// Opens the first device with vid:pid, retrying until `timeoutMs` passes (enumeration of a
    /// freshly bound gadget takes a moment).
    func open(vid: UInt16, pid: UInt16, timeoutMs: Int) throws -> OpaquePointer {
        let deadline = monotonicNanos() + UInt64(timeoutMs) * 1_000_000
        while true {
            var list: UnsafeMutablePointer<OpaquePointer?>?
            let count = try usb("libusb_get_device_list", Int32(truncatingIfNeeded: libusb_get_device_list(ctx, &list)))
            defer { libusb_free_device_list(list, 1) }
            for i in 0..<Int(count) {
                guard let dev = list?[i] else { continue }
                var desc = libusb_device_descriptor()
                guard libusb_get_device_descriptor(dev, &desc) == 0, desc.idVendor == vid, desc.idProduct == pid else { continue }
                var handle: OpaquePointer?
                try usb("libusb_open", libusb_open(dev, &handle))
                return handle!
            }
            if monotonicNanos() > deadline {
                throw USBCheckFailure(description: "no USB device \(hex4(vid)):\(hex4(pid)) within \(timeoutMs) ms")
            }
            sleepMillis(100)
        }
    }
}

func hex4(_ v: UInt16) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 4 - s.count) + s
}

/// The bulk IN and OUT endpoint addresses of interface 0 in the active configuration.
private func bulkEndpoints(_ handle: OpaquePointer) throws -> (inAddr: UInt8, outAddr: UInt8) {
    var config: UnsafeMutablePointer<libusb_config_descriptor>?
    try usb("libusb_get_active_config_descriptor", libusb_get_active_config_descriptor(libusb_get_device(handle), &config))
    defer { libusb_free_config_descriptor(config) }
    guard let config, config.pointee.bNumInterfaces >= 1, config.pointee.interface[0].num_altsetting >= 1 else {
        throw USBCheckFailure(description: "device has no interface 0")
    }
    let alt = config.pointee.interface[0].altsetting[0]
    var inAddr: UInt8?
    var outAddr: UInt8?
    for i in 0..<Int(alt.bNumEndpoints) {
        let ep = alt.endpoint[i]
        guard ep.bmAttributes & 0x03 == UInt8(LIBUSB_TRANSFER_TYPE_BULK.rawValue) else { continue }
        if ep.bEndpointAddress & UInt8(LIBUSB_ENDPOINT_IN.rawValue) != 0 {
            inAddr = inAddr ?? ep.bEndpointAddress
        } else {
            outAddr = outAddr ?? ep.bEndpointAddress
        }
    }
    guard let inAddr, let outAddr else { throw USBCheckFailure(description: "interface 0 lacks a bulk IN/OUT pair") }
    return (inAddr, outAddr)
}

func runUSBHost(_ options: Options) throws -> Int32 {
    let vid = UInt16(try options.int("vid", default: 0x1209))
    let pid = UInt16(try options.int("pid", default: 0x4b41))
    let count = try options.int("count", default: 200)
    let timeoutMs = UInt32(try options.int("timeout-ms", default: 1000))
    let prefix = Array(try options.string("prefix", default: "ECHO:").utf8)

    let context = try USBContext()
    let handle = try context.open(vid: vid, pid: pid, timeoutMs: try options.int("wait-ms", default: 10_000))
    defer { libusb_close(handle) }
    try usb("libusb_set_auto_detach_kernel_driver", libusb_set_auto_detach_kernel_driver(handle, 1))
    let (inAddr, outAddr) = try bulkEndpoints(handle)
    try usb("libusb_claim_interface", libusb_claim_interface(handle, 0))
    defer { libusb_release_interface(handle, 0) }
    say("usb-host: \(hex4(vid)):\(hex4(pid)) opened, interface 0 claimed, bulk OUT 0x\(String(outAddr, radix: 16)) IN 0x\(String(inAddr, radix: 16))")

    var latencies: [UInt64] = []
    latencies.reserveCapacity(count)
    var mismatches = 0
    let session = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    var response = [UInt8](repeating: 0, count: 512)
    for i in 0..<count {
        var request = Array("req-\(i)-\(session)-kiosk".utf8)
        let expected = echoResponse(prefix: prefix, request: request)
        let t0 = monotonicNanos()
        var sent: Int32 = 0
        try usb("libusb_bulk_transfer OUT #\(i)", libusb_bulk_transfer(handle, outAddr, &request, Int32(request.count), &sent, timeoutMs))
        guard sent == Int32(request.count) else { throw USBCheckFailure(description: "exchange \(i): sent \(sent)/\(request.count) bytes") }
        var got: Int32 = 0
        try usb("libusb_bulk_transfer IN #\(i)", libusb_bulk_transfer(handle, inAddr, &response, Int32(response.count), &got, timeoutMs))
        latencies.append(monotonicNanos() - t0)
        if Array(response[0..<Int(got)]) != expected {
            mismatches += 1
            if mismatches <= 3 {
                say("usb-host: exchange \(i) MISMATCH: got '\(String(decoding: response[0..<Int(got)], as: UTF8.self))', want '\(String(decoding: expected, as: UTF8.self))'")
            }
        }
    }
    latencies.sort()
    let median = latencies.isEmpty ? 0 : latencies[latencies.count / 2]
    let p99 = latencies.isEmpty ? 0 : latencies[max(0, (latencies.count * 99 + 99) / 100 - 1)]
    let summary = "\(count) exchanges, \(mismatches) mismatches, latency median \(formatMillis(median)) ms p99 \(formatMillis(p99)) ms max \(formatMillis(latencies.last ?? 0)) ms"
    if mismatches == 0 && latencies.count == count {
        say("OK usb-host: \(summary)")
        return 0
    }
    say("FAIL usb-host: \(summary)")
    return 1
}

/// What the hotplug callback saw; read by the main thread.
private final class HotplugState: Sendable {
    let arrived = Atomic<Int>(0)
    let left = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    let start = monotonicNanos()
}

/// Context handle for the event thread (libusb contexts are thread-safe).
private struct ContextRef: @unchecked Sendable {
    let ctx: OpaquePointer
}

func runUSBHotplug(_ options: Options) throws -> Int32 {
    let vid = try options.int("vid", default: 0x1209)
    let pid = try options.int("pid", default: 0x4b41)
    let timeoutSeconds = try options.int("timeout", default: 30)

    let context = try USBContext()
    guard libusb_has_capability(UInt32(LIBUSB_CAP_HAS_HOTPLUG.rawValue)) != 0 else {
        say("FAIL usb-hotplug: libusb reports no hotplug capability")
        return 1
    }
    let state = HotplugState()
    let events = Int32(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED.rawValue | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT.rawValue)
    var handle: libusb_hotplug_callback_handle = 0
    try usb("libusb_hotplug_register_callback", libusb_hotplug_register_callback(
        context.ctx, events, 0 /* no LIBUSB_HOTPLUG_ENUMERATE */, Int32(vid), Int32(pid), KA_LIBUSB_HOTPLUG_MATCH_ANY,
        { _, device, event, user in
            let state = Unmanaged<HotplugState>.fromOpaque(user!).takeUnretainedValue()
            let ms = formatMillis(monotonicNanos() - state.start)
            let where_ = "bus \(libusb_get_bus_number(device)) address \(libusb_get_device_address(device))"
            if event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED {
                state.arrived.add(1, ordering: .sequentiallyConsistent)
                say("ARRIVED \(where_) at +\(ms) ms")
            } else {
                state.left.add(1, ordering: .sequentiallyConsistent)
                say("LEFT \(where_) at +\(ms) ms")
            }
            return 0 // stay registered
        },
        Unmanaged.passUnretained(state).toOpaque(), &handle))
    defer { libusb_hotplug_deregister_callback(context.ctx, handle) }

    // libusb delivers hotplug callbacks from whichever thread handles events: a dedicated one.
    let ref = ContextRef(ctx: context.ctx)
    let eventThread = spawnThread {
        while !state.stop.load(ordering: .sequentiallyConsistent) {
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)
            _ = libusb_handle_events_timeout_completed(ref.ctx, &tv, nil)
        }
    }
    say("READY usb-hotplug \(hex4(UInt16(vid))):\(hex4(UInt16(pid))): waiting \(timeoutSeconds) s for an arrival and a departure")

    let deadline = monotonicNanos() + UInt64(timeoutSeconds) * 1_000_000_000
    while monotonicNanos() < deadline {
        if state.arrived.load(ordering: .sequentiallyConsistent) >= 1 && state.left.load(ordering: .sequentiallyConsistent) >= 1 { break }
        sleepMillis(20)
    }
    state.stop.store(true, ordering: .sequentiallyConsistent)
    joinThread(eventThread)
    let arrived = state.arrived.load(ordering: .sequentiallyConsistent)
    let left = state.left.load(ordering: .sequentiallyConsistent)
    if arrived >= 1 && left >= 1 {
        say("OK usb-hotplug: \(arrived) arrival(s), \(left) departure(s)")
        return 0
    }
    say("FAIL usb-hotplug: \(arrived) arrival(s), \(left) departure(s) within \(timeoutSeconds) s")
    return 1
}
