// The terminal's USB side through Linux FunctionFS: descriptors and strings written to ep0, ep0
// events followed on a thread of their own, and a TerminalTransport over the bulk endpoints.
#if canImport(Glibc)
import KioskSys
import Glibc
#endif
import CKioskShims
import PaymentTerminal

/// Little-endian byte builder for the FunctionFS blobs.
struct LEBytes {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((v >> UInt32(s)) & 0xFF)) } }
}

/// FunctionFS v2 descriptors: one vendor-specific interface (iInterface = string 1) with an IN
/// endpoint (ep1: bulk, or interrupt every 1 ms) and a bulk OUT endpoint (ep2), for full and
/// high speed.
func terminalDescriptors(interruptIn: Bool) -> [UInt8] {
    func speed(high: Bool) -> [UInt8] {
        var d = LEBytes()
        d.u8(UInt8(USB_DT_INTERFACE_SIZE)); d.u8(UInt8(USB_DT_INTERFACE))
        d.u8(0)  // bInterfaceNumber (FunctionFS renumbers within the configuration)
        d.u8(0)  // bAlternateSetting
        d.u8(2)  // bNumEndpoints
        d.u8(UInt8(USB_CLASS_VENDOR_SPEC)); d.u8(0x4B); d.u8(0x01)  // class, subclass 'K', protocol 1
        d.u8(1)  // iInterface
        // IN: bulk (512 at high speed, 64 at full) or interrupt (64, every 1 ms).
        d.u8(UInt8(USB_DT_ENDPOINT_SIZE)); d.u8(UInt8(USB_DT_ENDPOINT)); d.u8(1 | UInt8(USB_DIR_IN))
        if interruptIn {
            d.u8(UInt8(USB_ENDPOINT_XFER_INT)); d.u16(64); d.u8(high ? 4 : 1)  // HS: 2^(4-1) x 125 us
        } else {
            d.u8(UInt8(USB_ENDPOINT_XFER_BULK)); d.u16(high ? 512 : 64); d.u8(0)
        }
        // OUT: bulk.
        d.u8(UInt8(USB_DT_ENDPOINT_SIZE)); d.u8(UInt8(USB_DT_ENDPOINT)); d.u8(2 | UInt8(USB_DIR_OUT))
        d.u8(UInt8(USB_ENDPOINT_XFER_BULK)); d.u16(high ? 512 : 64); d.u8(0)
        return d.bytes
    }
    let fs = speed(high: false)
    let hs = speed(high: true)
    var blob = LEBytes()
    blob.u32(UInt32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2))
    blob.u32(UInt32(Int(KA_FFS_DESCS_HEAD_V2_SIZE) + 8 + fs.count + hs.count))
    blob.u32(FUNCTIONFS_HAS_FS_DESC.rawValue | FUNCTIONFS_HAS_HS_DESC.rawValue)
    blob.u32(3)  // fs_count: interface + 2 endpoints
    blob.u32(3)  // hs_count
    return blob.bytes + fs + hs
}

/// FunctionFS strings: en-US, one string (the interface name).
func terminalStrings(interfaceName: String) -> [UInt8] {
    let text = Array(interfaceName.utf8) + [0]
    var blob = LEBytes()
    blob.u32(UInt32(FUNCTIONFS_STRINGS_MAGIC))
    blob.u32(UInt32(Int(KA_FFS_STRINGS_HEAD_SIZE) + 2 + text.count))
    blob.u32(1)  // str_count
    blob.u32(1)  // lang_count
    blob.u16(0x0409)
    return blob.bytes + text
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8], _ what: String) throws(SystemCallError) {
    let n = try systemCall(what) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    guard n == bytes.count else { throw SystemCallError(call: "\(what) (short write \(n)/\(bytes.count))", code: EIO) }
}

/// SIGUSR2 interrupts a thread's blocking FunctionFS read/write (the handler does nothing and is
/// installed without SA_RESTART, so the call returns EINTR).
let interruptSignal = SIGUSR2

func installInterruptHandler() {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    _ = sigaction(interruptSignal, &action, nil)
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

/// The FunctionFS function: ep0 (descriptors written, events read on the `ffs-ep0` thread), the
/// IN endpoint (ep1) and the OUT endpoint (ep2), each with a thread of its own.
///
/// A *session* runs from ENABLE (the host set the configuration) to DISABLE/UNBIND (unplug,
/// unbind, reset) or an ESHUTDOWN from endpoint I/O; each session has a new number, and a
/// ``FunctionFSTransport`` serves exactly one.
final class FunctionFSFunction: @unchecked Sendable {
    let path: String
    private let ep0: Int32
    private let epIn: Int32
    private let epOut: Int32
    private let state = USBConditionLock()
    private var s = SharedState()  // guarded by `state`
    private let note: @Sendable (String) -> Void

    struct SharedState {
        var enabled = false
        var session: UInt64 = 0
        var inbound: [UInt8] = []
        var stop = false
        // The writer's one job: bytes in, result out.
        var job: [UInt8]?
        var jobID: UInt64 = 0
        var jobResult: (id: UInt64, result: Result<Void, TransportError>)?
        var writerBusy = false
    }

    init(path: String, interruptIn: Bool, interfaceName: String, note: @escaping @Sendable (String) -> Void) throws {
        self.path = path
        self.note = note
        ep0 = try systemCall("open \(path)/ep0") { open(path + "/ep0", O_RDWR) }
        try writeAll(ep0, terminalDescriptors(interruptIn: interruptIn), "write descriptors to \(path)/ep0")
        try writeAll(ep0, terminalStrings(interfaceName: interfaceName), "write strings to \(path)/ep0")
        // ep1/ep2 exist once the descriptors are accepted.
        epIn = try systemCall("open \(path)/ep1") { open(path + "/ep1", O_RDWR) }
        epOut = try systemCall("open \(path)/ep2") { open(path + "/ep2", O_RDWR) }
        installInterruptHandler()
    }

    /// Starts the ep0, reader and writer threads.
    func start() throws -> FunctionFSThreads {
        FunctionFSThreads(
            ep0: try USBThread(name: "ffs-ep0", unblocking: [interruptSignal]) { [self] in ep0Loop() },
            reader: try USBThread(name: "ffs-out", unblocking: [interruptSignal]) { [self] in readerLoop() },
            writer: try USBThread(name: "ffs-in", unblocking: [interruptSignal]) { [self] in writerLoop() })
    }

    /// Stops the threads (interrupting blocked I/O) and waits for them.
    func stop(_ threads: FunctionFSThreads) {
        state.locked { s.stop = true }
        state.broadcast()
        for t in [threads.ep0, threads.reader, threads.writer] { t.interruptAndJoin(signal: interruptSignal) }
    }

    /// Waits until the host has configured the device; returns the session number.
    func waitForSession(timeout: Duration) -> UInt64? {
        let deadline = monotonicNanos() + timeout.clampedNanos
        return state.locked {
            while !s.enabled && !s.stop {
                if !state.wait(untilNanos: deadline) { break }
            }
            return s.enabled && !s.stop ? s.session : nil
        }
    }

    /// Ends the current session (called on ESHUTDOWN/ENODEV from endpoint I/O).
    private func endSession(_ why: String) {
        let ended = state.locked { () -> Bool in
            guard s.enabled else { return false }
            s.enabled = false
            s.inbound = []
            return true
        }
        state.broadcast()
        if ended { note("session \(state.locked { s.session }) ended: \(why)") }
    }

    // MARK: ep0

    private func ep0Loop() {
        let eventSize = Int(KA_FFS_EVENT_SIZE)
        var events = [UInt8](repeating: 0, count: eventSize * 4)
        while !state.locked({ s.stop }) {
            var fds = [pollfd(fd: ep0, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 1, 200)
            guard ready > 0, fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let n = events.withUnsafeMutableBytes { Glibc.read(ep0, $0.baseAddress, $0.count) }
            guard n > 0 else {
                if n < 0 && errno != EINTR && errno != EAGAIN { note("ep0 read failed: \(errnoName(errno))"); sleepNanos(50_000_000) }
                continue
            }
            for offset in stride(from: 0, to: n - eventSize + 1, by: eventSize) {
                let type = events[offset + Int(KA_FFS_EVENT_TYPE_OFFSET)]
                switch UInt32(type) {
                case FUNCTIONFS_ENABLE.rawValue:
                    let session = state.locked { () -> UInt64 in
                        s.enabled = true
                        s.session += 1
                        s.inbound = []
                        return s.session
                    }
                    state.broadcast()
                    note("EVENT ENABLE: session \(session)")
                case FUNCTIONFS_DISABLE.rawValue, FUNCTIONFS_UNBIND.rawValue:
                    note("EVENT \(eventName(type))")
                    endSession(eventName(type))
                case FUNCTIONFS_SETUP.rawValue:
                    // No control request is defined for this interface: stall it (FunctionFS: I/O
                    // on ep0 in the direction opposite to the request's data stage).
                    let requestType = events[offset]
                    note("EVENT SETUP bRequestType=0x\(String(requestType, radix: 16)) bRequest=0x\(String(events[offset + 1], radix: 16)): stalled")
                    if requestType & UInt8(USB_DIR_IN) != 0 { _ = Glibc.read(ep0, nil, 0) } else { _ = Glibc.write(ep0, nil, 0) }
                default:
                    note("EVENT \(eventName(type))")
                }
            }
        }
    }

    // MARK: OUT endpoint (host -> terminal)

    private func readerLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !state.locked({ s.stop }) {
            // Blocks until the host sends (and, while disabled, until the endpoint is enabled).
            let n = buffer.withUnsafeMutableBytes { Glibc.read(epOut, $0.baseAddress, $0.count) }
            if n > 0 {
                state.locked { if s.enabled { s.inbound.append(contentsOf: buffer[0..<n]) } }
                state.broadcast()
                continue
            }
            if n == 0 { continue }
            let code = errno
            if code == EINTR { continue }
            if code == ESHUTDOWN || code == ENODEV {
                endSession("read: \(errnoName(code))")
            } else {
                note("bulk OUT read failed: \(errnoName(code))")
            }
            sleepNanos(20_000_000)  // never spin on a failing endpoint
        }
    }

    // MARK: IN endpoint (terminal -> host)

    private func writerLoop() {
        while true {
            let next = state.locked { () -> (UInt64, [UInt8])? in
                while s.job == nil && !s.stop { state.wait() }
                guard !s.stop, let job = s.job else { return nil }
                s.job = nil
                s.writerBusy = true
                return (s.jobID, job)
            }
            guard let (id, bytes) = next else { return }
            // Completes when the host reads it (an IN transfer), or fails on unplug/interrupt.
            let n = bytes.withUnsafeBytes { Glibc.write(epIn, $0.baseAddress, $0.count) }
            let code = errno
            let result: Result<Void, TransportError>
            if n == bytes.count {
                result = .success(())
            } else if n >= 0 {
                result = .failure(.io("bulk IN write: \(n) of \(bytes.count) bytes"))
            } else if code == EINTR {
                result = .failure(.timeout)
            } else if code == ESHUTDOWN || code == ENODEV || code == EAGAIN {
                endSession("write: \(errnoName(code))")
                result = .failure(.disconnected)
            } else {
                result = .failure(SystemCallError(call: "write \(path)/ep1", code: code).transportError)
            }
            state.locked {
                s.writerBusy = false
                s.jobResult = (id, result)
            }
            state.broadcast()
        }
    }

    // MARK: Transport operations (per session)

    func read(session: UInt64, maxLength: Int, timeout: Duration) throws(TransportError) -> [UInt8] {
        let deadline = monotonicNanos() + timeout.clampedNanos
        return try state.locked { () throws(TransportError) -> [UInt8] in
            while true {
                guard s.enabled, s.session == session, !s.stop else { throw .disconnected }
                if !s.inbound.isEmpty {
                    let n = min(maxLength, s.inbound.count)
                    defer { s.inbound.removeFirst(n) }
                    return Array(s.inbound[0..<n])
                }
                if !state.wait(untilNanos: deadline) { return [] }
            }
        }
    }

    func write(session: UInt64, bytes: [UInt8], timeout: Duration, writer: USBThread) throws(TransportError) {
        let deadline = monotonicNanos() + timeout.clampedNanos
        let id = try state.locked { () throws(TransportError) -> UInt64 in
            // One write at a time (a frame never interleaves with an ACK).
            while s.job != nil || s.writerBusy {
                guard s.enabled, s.session == session, !s.stop else { throw .disconnected }
                if !state.wait(untilNanos: deadline) { throw .timeout }
            }
            guard s.enabled, s.session == session, !s.stop else { throw .disconnected }
            s.jobID += 1
            s.job = bytes
            s.jobResult = nil
            return s.jobID
        }
        state.broadcast()
        var interrupted = false
        while true {
            let outcome = state.locked { () -> Result<Void, TransportError>? in
                if let r = s.jobResult, r.id == id { return r.result }
                if !interrupted { _ = state.wait(untilNanos: deadline) }
                else { _ = state.wait(untilNanos: monotonicNanos() + 50_000_000) }
                if let r = s.jobResult, r.id == id { return r.result }
                return nil
            }
            if let outcome { try outcome.get(); return }
            if monotonicNanos() >= deadline {
                // Nobody read it in time: interrupt the writer (EINTR -> .timeout); the bytes
                // are not sent. Repeat until the writer reports back.
                interrupted = true
                state.locked { if s.job != nil && s.jobID == id { s.job = nil; s.jobResult = (id, .failure(.timeout)) } }
                writer.signal(interruptSignal)
            }
        }
    }
}

struct FunctionFSThreads: Sendable {
    let ep0: USBThread
    let reader: USBThread
    let writer: USBThread
}

/// One session of the FunctionFS function as a TerminalTransport: throws `.disconnected` once the
/// session has ended (a new session needs a new transport and a new link).
final class FunctionFSTransport: TerminalTransport {
    let function: FunctionFSFunction
    let session: UInt64
    let writer: USBThread

    init(function: FunctionFSFunction, session: UInt64, writer: USBThread) {
        self.function = function
        self.session = session
        self.writer = writer
    }

    func write(_ bytes: [UInt8], timeout: Duration) throws {
        guard !bytes.isEmpty else { return }
        try function.write(session: session, bytes: bytes, timeout: timeout, writer: writer)
    }

    func read(maxLength: Int, timeout: Duration) throws -> [UInt8] {
        try function.read(session: session, maxLength: maxLength, timeout: timeout)
    }
}
