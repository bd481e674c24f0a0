// usb-ffs-device: play a USB device through Linux FunctionFS. One vendor-specific interface with
// a bulk IN and a bulk OUT endpoint (full and high speed); whatever arrives on bulk OUT goes back
// on bulk IN upper-cased behind a prefix, so the host can tell an echo from a loop-back.
#if canImport(Glibc)
import KioskSys
import Glibc
#endif
import CKioskShims
import Synchronization

/// Little-endian byte builder for the FunctionFS blobs.
private struct LEBytes {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((v >> UInt32(s)) & 0xFF)) } }
}

/// FunctionFS v2 descriptors: head, counts, then for each speed the interface and two endpoints.
func ffsDescriptorBlob() -> [UInt8] {
    func speed(_ maxPacket: UInt16) -> [UInt8] {
        var d = LEBytes()
        // Interface descriptor (USB_DT_INTERFACE_SIZE = 9).
        d.u8(UInt8(USB_DT_INTERFACE_SIZE)); d.u8(UInt8(USB_DT_INTERFACE)); d.u8(0); d.u8(0)
        d.u8(2); d.u8(UInt8(USB_CLASS_VENDOR_SPEC)); d.u8(0); d.u8(0); d.u8(1)
        // Bulk IN then bulk OUT (USB_DT_ENDPOINT_SIZE = 7): FunctionFS files ep1 and ep2.
        for address in [UInt8(1) | UInt8(USB_DIR_IN), UInt8(2) | UInt8(USB_DIR_OUT)] {
            d.u8(UInt8(USB_DT_ENDPOINT_SIZE)); d.u8(UInt8(USB_DT_ENDPOINT)); d.u8(address)
            d.u8(UInt8(USB_ENDPOINT_XFER_BULK)); d.u16(maxPacket); d.u8(0)
        }
        return d.bytes
    }
    let fs = speed(64)
    let hs = speed(512)
    var blob = LEBytes()
    blob.u32(UInt32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2))
    blob.u32(UInt32(12 + 8 + fs.count + hs.count))
    blob.u32(FUNCTIONFS_HAS_FS_DESC.rawValue | FUNCTIONFS_HAS_HS_DESC.rawValue)
    blob.u32(3) // fs_count
    blob.u32(3) // hs_count
    return blob.bytes + fs + hs
}

/// FunctionFS strings: one language (en-US), one string (the interface name).
func ffsStringsBlob(interfaceName: String) -> [UInt8] {
    let text = Array(interfaceName.utf8) + [0]
    var blob = LEBytes()
    blob.u32(UInt32(FUNCTIONFS_STRINGS_MAGIC))
    blob.u32(UInt32(16 + 2 + text.count))
    blob.u32(1) // str_count
    blob.u32(1) // lang_count
    blob.u16(0x0409)
    return blob.bytes + text
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8], _ what: String) throws(SysError) {
    let n = try systemCall(what) { bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
    guard n == bytes.count else { throw SysError(call: "\(what) (short write \(n)/\(bytes.count))", code: EIO) }
}

/// Bytes the echo answers with: prefix + the request with a-z upper-cased.
func echoResponse(prefix: [UInt8], request: some Collection<UInt8>) -> [UInt8] {
    prefix + request.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }
}

private final class EchoStats: Sendable {
    let echoes = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
}

private func eventName(_ type: UInt8) -> String {
    switch UInt32(type) {
    case FUNCTIONFS_BIND.rawValue: "BIND"
    case FUNCTIONFS_UNBIND.rawValue: "UNBIND"
    case FUNCTIONFS_ENABLE.rawValue: "ENABLE"
    case FUNCTIONFS_DISABLE.rawValue: "DISABLE"
    case FUNCTIONFS_SETUP.rawValue: "SETUP"
    case FUNCTIONFS_SUSPEND.rawValue: "SUSPEND"
    case FUNCTIONFS_RESUME.rawValue: "RESUME"
    default: "EVENT(\(type))"
    }
}

/// The bulk echo: blocking reads on ep2 (OUT), writes on ep1 (IN). Reads block until the host
/// enables the interface; a disable/unplug ends in-flight I/O with ESHUTDOWN and we wait again.
private func echoLoop(epIn: Int32, epOut: Int32, prefix: [UInt8], stats: EchoStats) {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        do throws(SysError) {
            let n = try systemCall("read bulk OUT") { buffer.withUnsafeMutableBytes { read(epOut, $0.baseAddress, $0.count) } }
            let response = echoResponse(prefix: prefix, request: buffer[0..<n])
            try writeAll(epIn, response, "write bulk IN")
            stats.echoes.add(1, ordering: .relaxed)
        } catch {
            if stats.errors.add(1, ordering: .relaxed).newValue <= 5 || error.code != ESHUTDOWN {
                say("usb-ffs-device: \(error)")
            }
            sleepMillis(20)
        }
    }
}

func runUSBFFSDevice(_ options: Options) throws -> Int32 {
    let dir = try options.string("ffs")
    let prefix = Array(try options.string("prefix", default: "ECHO:").utf8)
    let seconds = try options.int("seconds", default: 120)

    let ep0 = try systemCall("open \(dir)/ep0") { open(dir + "/ep0", O_RDWR) }
    try writeAll(ep0, ffsDescriptorBlob(), "write descriptors to \(dir)/ep0")
    try writeAll(ep0, ffsStringsBlob(interfaceName: "kiosk-agent echo"), "write strings to \(dir)/ep0")
    let epIn = try systemCall("open \(dir)/ep1") { open(dir + "/ep1", O_RDWR) }
    let epOut = try systemCall("open \(dir)/ep2") { open(dir + "/ep2", O_RDWR) }

    // SIGTERM/SIGINT are blocked (before any thread starts) and collected between polls.
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, SIGTERM)
    sigaddset(&mask, SIGINT)
    _ = pthread_sigmask(SIG_BLOCK, &mask, nil)

    let stats = EchoStats()
    _ = spawnThread { echoLoop(epIn: epIn, epOut: epOut, prefix: prefix, stats: stats) }
    say("READY usb-ffs-device \(dir): bulk IN ep1, bulk OUT ep2, prefix \(String(decoding: prefix, as: UTF8.self))")

    let deadline = monotonicNanos() + UInt64(seconds) * 1_000_000_000
    let eventSize = Int(KA_FFS_EVENT_SIZE)
    var events = [UInt8](repeating: 0, count: eventSize * 4)
    var stopReason = "time limit \(seconds) s"
    loop: while monotonicNanos() < deadline {
        var noWait = timespec(tv_sec: 0, tv_nsec: 0)
        let signal = sigtimedwait(&mask, nil, &noWait)
        if signal > 0 { stopReason = "signal \(signal)"; break loop }
        var fds = [pollfd(fd: ep0, events: Int16(POLLIN), revents: 0)]
        let ready = try systemCall("poll ep0") { poll(&fds, 1, 200) }
        if ready == 0 { continue }
        guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
        let n = try systemCall("read events from \(dir)/ep0") { events.withUnsafeMutableBytes { read(ep0, $0.baseAddress, $0.count) } }
        for offset in stride(from: 0, to: n - eventSize + 1, by: eventSize) {
            let type = events[offset + Int(KA_FFS_EVENT_TYPE_OFFSET)]
            guard UInt32(type) == FUNCTIONFS_SETUP.rawValue else {
                say("EVENT \(eventName(type))")
                continue
            }
            // A control request for our interface: none is defined, so stall it (FunctionFS: I/O
            // on ep0 in the direction opposite to the request's data stage).
            let requestType = events[offset]
            let request = events[offset + 1]
            say("EVENT SETUP bRequestType=0x\(String(requestType, radix: 16)) bRequest=0x\(String(request, radix: 16)): stalled")
            if requestType & UInt8(USB_DIR_IN) != 0 {
                _ = read(ep0, nil, 0)
            } else {
                _ = write(ep0, nil, 0)
            }
        }
    }
    say("STOP usb-ffs-device (\(stopReason)): \(stats.echoes.load(ordering: .relaxed)) echoes, \(stats.errors.load(ordering: .relaxed)) I/O errors")
    return 0
}
