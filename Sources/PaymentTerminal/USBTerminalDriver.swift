// The terminal on USB as the agent uses it: opened when it is (or comes) plugged in, closed
// when it leaves, reopened when it returns; link calls run on a dedicated I/O queue.
import Dispatch
import Logging
import Synchronization

/// Keeps a ``TerminalLink`` to the terminal of a ``DeviceProfile`` over ``USBTransport``.
///
/// A ``USBDeviceWatcher`` (libusb hotplug on its own thread, or polling) reports arrivals and
/// departures. On arrival the driver opens the device (retrying briefly while udev applies the
/// permissions) and makes a new link; on departure, or when a link call ends with
/// ``LinkError/disconnected``, it closes the link and the transport and waits for the next
/// arrival. Link calls made while no terminal is connected throw ``LinkError/disconnected``.
///
/// Blocking link calls run on the driver's serial dispatch queue (``withLink(_:)``), never on
/// Swift's cooperative pool; connection changes arrive as ``events``.
public final class USBTerminalDriver: Sendable {
    public enum Event: Sendable, Equatable, CustomStringConvertible {
        /// The terminal was opened and a link is ready.
        case connected(USBDeviceInfo)
        /// The terminal went away (or its link failed); the reason is for the log.
        case disconnected(USBDeviceInfo, reason: String)
        /// A matching device arrived but could not be opened.
        case openFailed(USBDeviceInfo, reason: String)

        public var description: String {
            switch self {
            case .connected(let d): "connected \(d)"
            case .disconnected(let d, let r): "disconnected \(d): \(r)"
            case .openFailed(let d, let r): "cannot open \(d): \(r)"
            }
        }
    }

    public let profile: DeviceProfile
    /// Connection changes, in order. One consumer; ends after ``stop()``.
    public let events: AsyncStream<Event>

    private let serial: String?
    private let context: USBContext
    private let watcher: USBDeviceWatcher
    private let linkConfiguration: LinkConfiguration
    private let logger: Logger
    private let continuation: AsyncStream<Event>.Continuation
    private let ioQueue = DispatchQueue(label: "kiosk.usb-terminal.io")
    private let timerQueue = DispatchQueue(label: "kiosk.usb-terminal.timer")

    private struct Connection: Sendable {
        let device: USBDeviceInfo
        let transport: USBTransport
        let link: TerminalLink
        let since: UInt64
        let departed = DepartedFlag()
    }

    /// Set when the device left (as opposed to the driver stopping): calls that were in flight
    /// then end with ``LinkError/disconnected`` even if the link was closed under them.
    private final class DepartedFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private struct State {
        var connection: Connection?
        var waiters: [UInt64: CheckedContinuation<USBDeviceInfo?, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var stopped = false
        var connects = 0
    }
    private let state = Mutex(State())
    /// Serialises open/close (watcher thread and I/O queue both close).
    private let connectLock = Mutex(())

    /// - Parameters:
    ///   - serial: the iSerialNumber to use when several terminals of the profile are plugged in.
    ///   - watchMode: ``USBDeviceWatcher/Mode/automatic`` uses hotplug where libusb has it.
    ///   - linkConfiguration: defaults to the protocol's, with the profile's ACK and write timeouts.
    public init(
        profile: DeviceProfile, serial: String? = nil, context: USBContext? = nil,
        watchMode: USBDeviceWatcher.Mode = .automatic, linkConfiguration: LinkConfiguration? = nil, logger: Logger
    ) throws(LibUSBError) {
        self.profile = profile
        self.serial = serial
        if let context { self.context = context } else { self.context = try USBContext() }
        self.logger = logger
        self.linkConfiguration = linkConfiguration
            ?? LinkConfiguration(ackTimeout: profile.timeouts.ack, writeTimeout: profile.timeouts.write)
        watcher = USBDeviceWatcher(context: self.context, vendorID: profile.vendorID, productID: profile.productID, mode: watchMode, logger: logger)
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
    }

    deinit {
        stop()
    }

    /// Whether hotplug callbacks (rather than polling) report plug and unplug.
    public var usesHotplug: Bool { watcher.usesHotplug }

    /// How many times a terminal was opened since the driver was created (reconnects are this minus one).
    public var connectCount: Int { state.withLock { $0.connects } }

    /// The connected terminal, if any.
    public var connectedDevice: USBDeviceInfo? { state.withLock { $0.connection?.device } }

    /// Starts watching; a terminal already plugged in is opened right away (on the watcher thread).
    public func start() throws {
        try watcher.start { [weak self] event in self?.handle(event) }
    }

    /// Stops watching, closes the terminal, ends ``events``, wakes waiters. Idempotent.
    public func stop() {
        let waiters = state.withLock { s -> [CheckedContinuation<USBDeviceInfo?, Never>] in
            s.stopped = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume(returning: nil) }
        watcher.stop()
        disconnect(reason: "driver stopped", onlyIf: nil, departed: false)
        continuation.finish()
    }

    /// Waits until a terminal is connected (returns it) or `timeout` passes (nil).
    public func waitUntilConnected(timeout: Duration) async -> USBDeviceInfo? {
        await withCheckedContinuation { (c: CheckedContinuation<USBDeviceInfo?, Never>) in
            let id = state.withLock { s -> UInt64? in
                if let device = s.connection?.device {
                    c.resume(returning: device)
                    return nil
                }
                if s.stopped {
                    c.resume(returning: nil)
                    return nil
                }
                s.nextWaiter += 1
                s.waiters[s.nextWaiter] = c
                return s.nextWaiter
            }
            guard let id else { return }
            timerQueue.asyncAfter(deadline: .now() + .nanoseconds(Int(min(timeout.clampedNanos, UInt64(Int.max))))) { [weak self] in
                self?.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
            }
        }
    }

    /// Runs `body` with the current link on the driver's I/O queue (one call at a time) and
    /// returns its result. Throws ``LinkError/disconnected`` when no terminal is connected; a
    /// call that ends with ``LinkError/disconnected`` also closes the connection.
    public func withLink<R: Sendable>(_ body: @escaping @Sendable (TerminalLink) throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
            ioQueue.async { [self] in
                c.resume(with: Result { try withLinkBlocking(body) })
            }
        }
    }

    /// ``withLink(_:)`` on the caller's thread: for threads of their own, never the cooperative pool.
    public func withLinkBlocking<R>(_ body: (TerminalLink) throws -> R) throws -> R {
        guard let connection = state.withLock({ $0.connection }) else { throw LinkError.disconnected }
        do {
            return try body(connection.link)
        } catch let error as LinkError {
            if error == .closed && connection.departed.value.load(ordering: .acquiring) {
                throw LinkError.disconnected
            }
            if error == .disconnected || !connection.link.isOpen {
                disconnect(reason: "link: \(error)", onlyIf: connection.device, departed: error == .disconnected)
            }
            throw error
        }
    }

    // MARK: Connection changes (watcher thread)

    private func handle(_ event: USBHotplugEvent) {
        switch event {
        case .arrived(let device):
            connect(device)
        case .left(let device):
            disconnect(reason: "unplugged", onlyIf: device, departed: true)
        }
    }

    private func connect(_ arrived: USBDeviceInfo) {
        connectLock.withLock { _ in
            if let current = state.withLock({ $0.connection }) {
                // A stale connection whose device is gone (its departure was missed): replace it.
                guard current.transport.isClosed || !current.link.isOpen else { return }
                closeLocked(reason: "replaced by a new arrival", departed: true)
            }
            guard !state.withLock({ $0.stopped }) else { return }
            // Freshly enumerated devices may not be openable yet (udev applies permissions after
            // the kernel's uevent): a few retries over about a second.
            var lastError: USBTerminalError?
            for attempt in 0..<6 {
                if attempt > 0 { sleepNanos(UInt64(50_000_000) << UInt64(min(attempt, 3))) }
                do throws(USBTerminalError) {
                    let transport = try context.openTerminal(profile: profile, serial: serial)
                    let link = TerminalLink(transport: transport, configuration: linkConfiguration, logger: logger)
                    let connection = Connection(device: transport.device, transport: transport, link: link, since: monotonicNanos())
                    let waiters = state.withLock { s -> [CheckedContinuation<USBDeviceInfo?, Never>] in
                        s.connection = connection
                        s.connects += 1
                        defer { s.waiters = [:] }
                        return Array(s.waiters.values)
                    }
                    logger.info("payment terminal connected", metadata: ["device": "\(transport.device)", "profile": "\(profile.name)"])
                    continuation.yield(.connected(transport.device))
                    waiters.forEach { $0.resume(returning: transport.device) }
                    return
                } catch {
                    lastError = error
                    if case .notFound = error { break }  // it left again, or is another serial
                    if case .ambiguous = error { break }
                }
            }
            if let lastError, case .notFound = lastError, serial != nil {
                logger.debug("USB device arrived but is not the configured terminal", metadata: ["device": "\(arrived)"])
                return
            }
            let reason = lastError.map { "\($0)" } ?? "unknown"
            logger.warning("payment terminal arrived but cannot be opened", metadata: ["device": "\(arrived)", "error": "\(reason)"])
            continuation.yield(.openFailed(arrived, reason: reason))
        }
    }

    /// Closes the connection (if it is `device`'s, when given). `departed`: the device is gone.
    private func disconnect(reason: String, onlyIf device: USBDeviceInfo?, departed: Bool) {
        connectLock.withLock { _ in
            guard let current = state.withLock({ $0.connection }) else { return }
            if let device, !current.device.isSamePlugIn(as: device) { return }
            closeLocked(reason: reason, departed: departed)
        }
    }

    private func closeLocked(reason: String, departed: Bool) {
        guard let current = state.withLock({ s -> Connection? in
            defer { s.connection = nil }
            return s.connection
        }) else { return }
        if departed { current.departed.value.store(true, ordering: .releasing) }
        // Transport first: the link's reader then ends at once instead of after a read timeout.
        current.transport.close()
        if departed {
            // Let the link see the disconnect itself (its reader's read fails at once now), so
            // calls in flight end with LinkError.disconnected rather than .closed. Bounded: the
            // reader's read returns within the link's inter-byte timeout.
            let deadline = monotonicNanos() + linkConfiguration.interByteTimeout.clampedNanos + 200_000_000
            while current.link.isOpen && monotonicNanos() < deadline { sleepNanos(1_000_000) }
        }
        current.link.close()
        let seconds = Double(monotonicNanos() - current.since) / 1e9
        logger.info("payment terminal disconnected", metadata: ["device": "\(current.device)", "reason": "\(reason)", "connected_s": "\(seconds)"])
        continuation.yield(.disconnected(current.device, reason: reason))
    }
}
