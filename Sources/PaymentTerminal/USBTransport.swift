// TerminalTransport over libusb: the profile's interface claimed, bulk (or interrupt) OUT for
// writes and IN for reads, libusb's synchronous API with timeouts on the caller's thread.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CLibUSB
import Synchronization

/// A claimed terminal interface. Reads and writes may run at the same time on different threads
/// (libusb's synchronous API is thread-safe); reads are serialised among themselves, and so are
/// writes. Blocking: call it from a dedicated thread (``USBTerminalDriver`` does), not from
/// Swift's cooperative pool.
///
/// Errors: ``TransportError/disconnected`` once the device is gone (`LIBUSB_ERROR_NO_DEVICE`, or
/// `LIBUSB_ERROR_IO` when the device no longer answers), ``TransportError/timeout`` for a write
/// that did not complete in time, ``TransportError/io(_:)`` naming the libusb call, error name
/// and code for anything else (a stalled endpoint is cleared before `LIBUSB_ERROR_PIPE` is
/// reported). After ``close()`` every call throws ``TransportError/disconnected``.
public final class USBTransport: TerminalTransport, @unchecked Sendable {
    public let device: USBDeviceInfo
    public let profile: DeviceProfile
    /// wMaxPacketSize of the IN endpoint (reads ask for whole packets, so none overflows).
    public let inMaxPacketSize: Int

    private let context: USBContext  // keeps libusb_exit after libusb_close
    private let handle: OpaquePointer  // libusb_device_handle *
    private let inAddress: UInt8
    private let outAddress: UInt8
    private let inIsInterrupt: Bool
    private let outIsInterrupt: Bool

    private struct Life {
        var closed = false
        var gone = false  // the device reported NO_DEVICE
        var inFlight = 0
        var released = false
    }
    private let life = Mutex(Life())
    /// Bytes of an IN transfer beyond what the caller asked for; the read mutex serialises reads.
    private let readState = Mutex<[UInt8]>([])
    private let writeLock = Mutex(())

    /// Claims the interface of `profile` on an open handle (taking ownership of it: it is closed
    /// on failure and by ``close()``).
    init(context: USBContext, handle: OpaquePointer, device: USBDeviceInfo, profile: DeviceProfile) throws(USBTerminalError) {
        self.context = context
        self.handle = handle
        self.device = device
        self.profile = profile
        inAddress = profile.inEndpoint.address
        outAddress = profile.outEndpoint.address
        inIsInterrupt = profile.inEndpoint.type == .interrupt
        outIsInterrupt = profile.outEndpoint.type == .interrupt
        let interface = Int32(profile.interfaceNumber)
        do {
            inMaxPacketSize = try Self.checkDescriptors(handle: handle, profile: profile)
            // Kernel driver (if any) detached on claim, re-attached on release. Not every platform
            // can (NOT_SUPPORTED): then a bound kernel driver makes the claim fail with BUSY.
            let rc = libusb_set_auto_detach_kernel_driver(handle, 1)
            if rc != LIBUSB_ERROR_NOT_SUPPORTED.rawValue {
                try libusbCheck("libusb_set_auto_detach_kernel_driver", rc)
            }
            try libusbCheck("libusb_claim_interface(\(interface))", libusb_claim_interface(handle, interface))
            if profile.alternateSetting != 0 {
                let rc = libusb_set_interface_alt_setting(handle, interface, Int32(profile.alternateSetting))
                if rc < 0 { libusb_release_interface(handle, interface) }
                try libusbCheck("libusb_set_interface_alt_setting(\(interface), \(profile.alternateSetting))", rc)
            }
        } catch let error as LibUSBError {
            libusb_close(handle)
            throw .libusb(error)
        } catch let error as USBTerminalError {
            libusb_close(handle)
            throw error
        } catch {
            libusb_close(handle)
            throw .descriptorMismatch("\(error)")
        }
    }

    deinit {
        release()
    }

    /// Releases the interface (the kernel driver is re-attached) and closes the device. Calls in
    /// flight finish first (they end by their timeout or because the device is gone).
    public func close() {
        let releaseNow = life.withLock { life -> Bool in
            life.closed = true
            return life.inFlight == 0
        }
        if releaseNow { release() }
    }

    /// True once the device was seen gone or ``close()`` was called.
    public var isClosed: Bool { life.withLock { $0.closed || $0.gone } }

    private func release() {
        let doIt = life.withLock { life -> Bool in
            guard !life.released else { return false }
            life.released = true
            return true
        }
        guard doIt else { return }
        _ = libusb_release_interface(handle, Int32(profile.interfaceNumber))
        libusb_close(handle)
    }

    /// Marks one call in flight; throws `.disconnected` when closed or gone.
    private func enter() throws(TransportError) {
        try life.withLock { life throws(TransportError) in
            guard !life.closed, !life.gone else { throw .disconnected }
            life.inFlight += 1
        }
    }

    private func leave(gone: Bool = false) {
        let releaseNow = life.withLock { life -> Bool in
            life.inFlight -= 1
            if gone { life.gone = true }
            return life.closed && life.inFlight == 0
        }
        if releaseNow { release() }
    }

    // MARK: TerminalTransport

    public func write(_ bytes: [UInt8], timeout: Duration) throws {
        guard !bytes.isEmpty else { return }
        try enter()
        var gone = false
        defer { leave(gone: gone) }
        try writeLock.withLock { _ throws(TransportError) in
            var buffer = bytes
            var sent: Int32 = 0
            let rc = buffer.withUnsafeMutableBufferPointer { p in
                outIsInterrupt
                    ? libusb_interrupt_transfer(handle, outAddress, p.baseAddress, Int32(p.count), &sent, timeout.libusbMillis)
                    : libusb_bulk_transfer(handle, outAddress, p.baseAddress, Int32(p.count), &sent, timeout.libusbMillis)
            }
            if rc == 0 && Int(sent) == bytes.count { return }
            if rc == 0 {
                throw .io("libusb \(transferName(outIsInterrupt))(OUT \(hex2(outAddress))) sent \(sent) of \(bytes.count) bytes")
            }
            let error = classify(LibUSBError(call: "\(transferName(outIsInterrupt))(OUT \(hex2(outAddress)))", code: rc), endpoint: outAddress)
            gone = error == .disconnected
            throw error
        }
    }

    public func read(maxLength: Int, timeout: Duration) throws -> [UInt8] {
        guard maxLength > 0 else { return [] }
        try enter()
        var gone = false
        defer { leave(gone: gone) }
        let deadline = monotonicNanos() + timeout.clampedNanos
        return try readState.withLock { pending throws(TransportError) -> [UInt8] in
            if !pending.isEmpty { return Self.take(&pending, maxLength) }
            // Whole packets, so a full packet never overflows the buffer (LIBUSB_ERROR_OVERFLOW).
            let packets = max(1, min(32, (maxLength + inMaxPacketSize - 1) / inMaxPacketSize))
            var buffer = [UInt8](repeating: 0, count: packets * inMaxPacketSize)
            while true {
                let now = monotonicNanos()
                let remaining = Duration.nanoseconds(Int64(deadline > now ? deadline - now : 0))
                var got: Int32 = 0
                let rc = buffer.withUnsafeMutableBufferPointer { p in
                    inIsInterrupt
                        ? libusb_interrupt_transfer(handle, inAddress, p.baseAddress, Int32(p.count), &got, remaining.libusbMillis)
                        : libusb_bulk_transfer(handle, inAddress, p.baseAddress, Int32(p.count), &got, remaining.libusbMillis)
                }
                if got > 0 {
                    // Data counts even when the transfer then timed out or failed.
                    pending = Array(buffer[0..<Int(got)])
                    return Self.take(&pending, maxLength)
                }
                if rc == LIBUSB_ERROR_TIMEOUT.rawValue { return [] }
                if rc == 0 {
                    // A zero-length packet: nothing to hand out; wait on until the deadline.
                    if monotonicNanos() >= deadline { return [] }
                    continue
                }
                let error = classify(LibUSBError(call: "\(transferName(inIsInterrupt))(IN \(hex2(inAddress)))", code: rc), endpoint: inAddress)
                gone = error == .disconnected
                throw error
            }
        }
    }

    private static func take(_ pending: inout [UInt8], _ maxLength: Int) -> [UInt8] {
        if pending.count <= maxLength {
            defer { pending = [] }
            return pending
        }
        let out = Array(pending[0..<maxLength])
        pending.removeFirst(maxLength)
        return out
    }

    private func transferName(_ interrupt: Bool) -> String {
        interrupt ? "libusb_interrupt_transfer" : "libusb_bulk_transfer"
    }

    /// The transport error for a failed transfer. A stall is cleared (so the next transfer can
    /// work) and reported; an I/O error is a disconnect when the device no longer answers a
    /// GET_STATUS (during an unplug the in-flight transfer may end with IO rather than NO_DEVICE).
    private func classify(_ error: LibUSBError, endpoint: UInt8) -> TransportError {
        switch error.code {
        case LIBUSB_ERROR_PIPE.rawValue:
            let clear = libusb_clear_halt(handle, endpoint)
            if clear == LIBUSB_ERROR_NO_DEVICE.rawValue { return .disconnected }
            return .io(error.description + (clear == 0 ? "; halt cleared" : "; libusb_clear_halt: \(LibUSBError(call: "", code: clear).name)"))
        case LIBUSB_ERROR_IO.rawValue:
            return deviceAnswers() ? error.transportError : .disconnected
        default:
            return error.transportError
        }
    }

    /// A standard GET_STATUS to the device: false when it is gone.
    private func deviceAnswers() -> Bool {
        var status = [UInt8](repeating: 0, count: 2)
        let rc = libusb_control_transfer(handle, UInt8(LIBUSB_ENDPOINT_IN.rawValue), UInt8(LIBUSB_REQUEST_GET_STATUS.rawValue), 0, 0, &status, 2, 200)
        return rc != LIBUSB_ERROR_NO_DEVICE.rawValue && rc != LIBUSB_ERROR_IO.rawValue
    }

    // MARK: Descriptors

    /// Checks that the active configuration has the profile's interface, alternate setting and
    /// endpoints (with their transfer types); returns the IN endpoint's wMaxPacketSize.
    private static func checkDescriptors(handle: OpaquePointer, profile: DeviceProfile) throws -> Int {
        var config: UnsafeMutablePointer<libusb_config_descriptor>?
        try libusbCheck("libusb_get_active_config_descriptor", libusb_get_active_config_descriptor(libusb_get_device(handle), &config))
        defer { libusb_free_config_descriptor(config) }
        guard let config else { throw USBTerminalError.descriptorMismatch("no active configuration") }
        var seen: [String] = []
        for i in 0..<Int(config.pointee.bNumInterfaces) {
            let interface = config.pointee.interface[i]
            for a in 0..<Int(interface.num_altsetting) {
                let alt = interface.altsetting[a]
                var endpoints: [DeviceProfile.Endpoint: Int] = [:]
                for e in 0..<Int(alt.bNumEndpoints) {
                    let ep = alt.endpoint[e]
                    let kind = ep.bmAttributes & 0x03
                    let type: DeviceProfile.Endpoint.TransferType? =
                        kind == UInt8(LIBUSB_TRANSFER_TYPE_BULK.rawValue) ? .bulk
                        : kind == UInt8(LIBUSB_TRANSFER_TYPE_INTERRUPT.rawValue) ? .interrupt : nil
                    if let type { endpoints[DeviceProfile.Endpoint(address: ep.bEndpointAddress, type: type)] = Int(ep.wMaxPacketSize & 0x7FF) }
                }
                let list = endpoints.keys.map(\.description).sorted().joined(separator: ", ")
                seen.append("interface \(alt.bInterfaceNumber) alt \(alt.bAlternateSetting): [\(list)]")
                guard alt.bInterfaceNumber == profile.interfaceNumber, alt.bAlternateSetting == profile.alternateSetting else { continue }
                guard let inSize = endpoints[profile.inEndpoint], endpoints[profile.outEndpoint] != nil else {
                    throw USBTerminalError.descriptorMismatch(
                        "profile \(profile.name) wants \(profile.inEndpoint) and \(profile.outEndpoint) on interface \(profile.interfaceNumber) alt \(profile.alternateSetting); the device has \(list)")
                }
                return max(8, inSize)
            }
        }
        throw USBTerminalError.descriptorMismatch(
            "profile \(profile.name) wants interface \(profile.interfaceNumber) alt \(profile.alternateSetting); the device has \(seen.joined(separator: "; "))")
    }
}

