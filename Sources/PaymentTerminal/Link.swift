// The terminal link: stop-and-wait ARQ over a TerminalTransport, request/response matching by
// request id, and a queue of unsolicited messages. See Devices/terminal-protocol.md.

import Foundation
import Logging
import Synchronization

/// One side of the terminal protocol over a transport: thread-safe, blocking API.
///
/// A reader thread owned by the link reads the transport, ACKs every well-formed frame, NAKs
/// corrupt ones, drops retransmitted duplicates, hands responses to the waiting ``request(_:timeout:)``
/// by request id and queues everything else for ``receive(timeout:)``. Callers must run the
/// blocking calls off Swift's cooperative pool (a dedicated thread or a dispatch queue).
public final class TerminalLink: Sendable {
    private let core: LinkCore
    private let requestIDs: Mutex<UInt32>

    /// Starts the link's reader thread on `transport`.
    public init(transport: any TerminalTransport, configuration: LinkConfiguration = .init(), logger: Logger) {
        core = LinkCore(transport: transport, configuration: configuration, logger: logger)
        var rng = SystemRandomNumberGenerator()
        requestIDs = Mutex(configuration.firstRequestID ?? UInt32.random(in: 1...UInt32.max, using: &rng))
        let core = self.core
        let thread = Thread { core.runReader() }
        thread.name = "terminal-link-reader"
        thread.start()
    }

    deinit {
        core.close()
    }

    /// Sends a message and waits for its ACK, retransmitting on NAK or ACK timeout; throws
    /// ``LinkError/noAck(type:requestID:attempts:)`` after the last retransmission.
    public func send(_ envelope: TerminalEnvelope) throws(LinkError) {
        try core.send(envelope)
    }

    /// Sends a request under a new request id and waits up to `timeout` (counted once the request
    /// is ACKed) for the response with that id. Responses arriving later are discarded.
    public func request(_ message: TerminalMessage, timeout: Duration) throws(LinkError) -> TerminalEnvelope {
        guard let expected = message.type.responseType else { throw .notARequest(message.type) }
        return try core.request(TerminalEnvelope(requestID: nextRequestID(), message: message), expecting: expected, timeout: timeout)
    }

    /// ``request(_:timeout:)`` under a request id the caller took from ``nextRequestID()`` (and
    /// recorded, e.g. in a persisted checkout, before sending).
    public func request(_ message: TerminalMessage, requestID: UInt32, timeout: Duration) throws(LinkError) -> TerminalEnvelope {
        guard let expected = message.type.responseType else { throw .notARequest(message.type) }
        return try core.request(TerminalEnvelope(requestID: requestID, message: message), expecting: expected, timeout: timeout)
    }

    /// The next received request or notification (e.g. a payment result), or `nil` after `timeout`.
    /// Throws ``LinkError/refused(_:requestID:)`` for a message the codec refused, once per message.
    public func receive(timeout: Duration) throws(LinkError) -> TerminalEnvelope? {
        try core.receive(timeout: timeout)
    }

    /// A request id not used before on this link (wrapping after 2^32 ids).
    public func nextRequestID() -> UInt32 {
        requestIDs.withLock { id in
            defer { id &+= 1 }
            return id
        }
    }

    /// Stops the reader thread; pending and later calls throw ``LinkError/closed``. Idempotent.
    public func close() {
        core.close()
    }

    /// Whether the link is still usable (not closed, not disconnected).
    public var isOpen: Bool { core.failure == nil }
}

/// The link's shared state and its reader (the reader thread holds this, not the link).
final class LinkCore: @unchecked Sendable {
    private enum AckState { case idle, waiting, acked, naked }

    private struct Pending {
        let expected: MessageType
        var result: Result<TerminalEnvelope, LinkError>?
    }

    private struct Key: Hashable {
        let type: UInt8
        let requestID: UInt32
    }

    private struct State {
        var ack = AckState.idle
        var pending: [UInt32: Pending] = [:]
        var inbound: [Result<TerminalEnvelope, LinkError>] = []
        var inboundHead = 0
        var recent: [Key] = []
        var recentSet: Set<Key> = []
        var failure: LinkError?
        var stop = false
        var readerRunning = true

        var inboundCount: Int { inbound.count - inboundHead }

        mutating func remember(_ key: Key, window: Int) {
            guard recentSet.insert(key).inserted else { return }
            recent.append(key)
            if recent.count > window { recentSet.remove(recent.removeFirst()) }
        }
    }

    private let transport: any TerminalTransport
    private let configuration: LinkConfiguration
    private let logger: Logger
    private let condition = NSCondition()
    private let sendLock = NSLock()
    private let writeLock = NSLock()
    private var state = State()  // guarded by `condition`

    init(transport: any TerminalTransport, configuration: LinkConfiguration, logger: Logger) {
        self.transport = transport
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Locking

    private func locked<T, E: Error>(_ body: (inout State) throws(E) -> T) throws(E) -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&state)
    }

    /// Waits under the lock until `ready` returns non-nil or the deadline passes (`nil`).
    /// Waits in slices of at most 100 ms so a wall-clock step cannot stretch a timeout.
    private func wait<T, E: Error>(until deadline: ContinuousClock.Instant, _ ready: (inout State) throws(E) -> T?) throws(E) -> T? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let value = try ready(&state) { return value }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return nil }
            _ = condition.wait(until: Date(timeIntervalSinceNow: min(remaining, .milliseconds(100)).seconds))
        }
    }

    var failure: LinkError? { locked { $0.failure } }

    private func fail(_ error: LinkError) {
        locked { s in
            if s.failure == nil { s.failure = error }
        }
    }

    // MARK: Writing

    /// Writes bytes under the write lock (a frame never interleaves with an ACK).
    private func write(_ bytes: [UInt8]) throws(LinkError) {
        writeLock.lock()
        defer { writeLock.unlock() }
        do {
            try transport.write(bytes, timeout: configuration.writeTimeout)
        } catch let e as TransportError {
            switch e {
            case .disconnected:
                fail(.disconnected)
                throw .disconnected
            case .timeout:
                throw .transport(.timeout)
            case .io:
                throw .transport(e)
            }
        } catch {
            throw .transport(.io(String(describing: error)))
        }
    }

    private func writeControl(_ byte: UInt8) {
        do {
            try write([byte])
        } catch {
            logger.warning("terminal link: cannot write \(byte == FrameByte.ack ? "ACK" : "NAK"): \(error)")
        }
    }

    // MARK: Sending

    func send(_ envelope: TerminalEnvelope) throws(LinkError) {
        let payload: [UInt8]
        do {
            payload = try MessageCodec.encode(envelope)
        } catch {
            throw .encoding(error)
        }
        let frame: [UInt8]
        do {
            frame = try FrameCodec.encode(payload: payload)
        } catch {
            throw .encoding(.payloadTooLarge(payload.count))  // unreachable: the codec caps payloads at 4096
        }
        let type = envelope.message.type
        let id = envelope.requestID
        sendLock.lock()
        defer { sendLock.unlock() }
        let attempts = configuration.maxRetransmissions + 1
        for attempt in 1...attempts {
            try locked { s throws(LinkError) in
                if let f = s.failure { throw f }
                s.ack = .waiting  // a stale ACK/NAK from before this write is forgotten
            }
            do {
                try write(frame)
            } catch .transport(.timeout) {
                logger.debug("terminal link: \(type) request_id \(id) write timed out (attempt \(attempt))")
                continue
            }
            let deadline = ContinuousClock.now.advanced(by: configuration.ackTimeout)
            let outcome = try wait(until: deadline) { s throws(LinkError) -> AckState? in
                if let f = s.failure { throw f }
                return s.ack == .waiting ? nil : s.ack
            }
            locked { $0.ack = .idle }
            switch outcome {
            case .acked?:
                logger.trace("terminal link: sent \(type) request_id \(id) (attempt \(attempt))")
                return
            case .naked?:
                logger.debug("terminal link: \(type) request_id \(id) NAKed (attempt \(attempt))")
            default:
                logger.debug("terminal link: \(type) request_id \(id) not ACKed in time (attempt \(attempt))")
            }
        }
        logger.warning("terminal link: \(type) request_id \(id) not ACKed after \(attempts) transmissions")
        throw .noAck(type: type, requestID: id, attempts: attempts)
    }

    func request(_ envelope: TerminalEnvelope, expecting expected: MessageType, timeout: Duration) throws(LinkError) -> TerminalEnvelope {
        let id = envelope.requestID
        try locked { s throws(LinkError) in
            if let f = s.failure { throw f }
            s.pending[id] = Pending(expected: expected, result: nil)
        }
        do {
            try send(envelope)
        } catch {
            locked { _ = $0.pending.removeValue(forKey: id) }
            throw error
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let result = wait(until: deadline) { s -> Result<TerminalEnvelope, LinkError>? in
            if let r = s.pending[id]?.result { return r }
            if let f = s.failure { return .failure(f) }
            return nil
        }
        locked { _ = $0.pending.removeValue(forKey: id) }
        guard let result else {
            logger.notice("terminal link: \(envelope.message.type) request_id \(id): no response within \(timeout)")
            throw .responseTimeout(type: envelope.message.type, requestID: id)
        }
        return try result.get()
    }

    func receive(timeout: Duration) throws(LinkError) -> TerminalEnvelope? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let next = wait(until: deadline) { s -> Result<TerminalEnvelope, LinkError>? in
            if s.inboundCount > 0 {
                let r = s.inbound[s.inboundHead]
                s.inboundHead += 1
                if s.inboundHead == s.inbound.count {
                    s.inbound.removeAll(keepingCapacity: true)
                    s.inboundHead = 0
                }
                return r
            }
            if let f = s.failure { return .failure(f) }
            return nil
        }
        guard let next else { return nil }
        return try next.get()
    }

    func close() {
        locked { s in
            s.stop = true
            if s.failure == nil { s.failure = .closed }
        }
        // The reader notices within one read timeout; bounded so close never hangs on a stuck transport.
        let deadline = ContinuousClock.now.advanced(by: configuration.interByteTimeout * 2 + .seconds(1))
        _ = wait(until: deadline) { s in s.readerRunning ? nil : true }
    }

    // MARK: Reading

    func runReader() {
        var decoder = FrameDecoder()
        var ioErrors = 0
        defer { locked { $0.readerRunning = false } }
        while !locked({ $0.stop }) {
            let bytes: [UInt8]
            do {
                bytes = try transport.read(maxLength: FrameCodec.maxFrame, timeout: configuration.interByteTimeout)
                ioErrors = 0
            } catch TransportError.disconnected {
                logger.notice("terminal link: transport disconnected")
                fail(.disconnected)
                return
            } catch TransportError.timeout {
                bytes = []
            } catch {
                ioErrors += 1
                let e = (error as? TransportError) ?? .io(String(describing: error))
                logger.warning("terminal link: read failed (\(ioErrors) in a row): \(e)")
                if ioErrors >= 3 {
                    fail(.transport(e))
                    return
                }
                continue
            }
            if bytes.isEmpty {
                if let event = decoder.timeout() { handle(event) }
                continue
            }
            for event in decoder.feed(bytes) { handle(event) }
        }
    }

    private func handle(_ event: FrameEvent) {
        switch event {
        case .ack, .nak:
            let isAck = event == .ack
            let awaited = locked { s -> Bool in
                guard s.ack == .waiting else { return false }
                s.ack = isAck ? .acked : .naked
                return true
            }
            if !awaited { logger.trace("terminal link: stray \(isAck ? "ACK" : "NAK") ignored") }
        case .corrupt(let error):
            logger.debug("terminal link: corrupt frame (\(error)), NAK")
            writeControl(FrameByte.nak)
        case .frame(let payload):
            handleFrame(payload)
        }
    }

    private enum Disposition { case duplicate, full, accept }

    private func handleFrame(_ payload: [UInt8]) {
        let header = MessageCodec.header(of: payload)
        let key = header.map { Key(type: $0.type, requestID: $0.requestID) }
        let isResponse = (header?.type ?? 0) & 0x80 != 0
        let disposition = locked { s -> Disposition in
            if let key, s.recentSet.contains(key) { return .duplicate }
            if !isResponse, s.inboundCount >= configuration.maxPendingInbound { return .full }
            if let key { s.remember(key, window: configuration.duplicateWindow) }
            return .accept
        }
        switch disposition {
        case .duplicate:
            writeControl(FrameByte.ack)
            logger.debug("terminal link: duplicate frame type 0x\(hex(key?.type ?? 0)) request_id \(key?.requestID ?? 0) ACKed again, dropped")
            return
        case .full:
            writeControl(FrameByte.nak)
            logger.warning("terminal link: \(configuration.maxPendingInbound) received messages unread, frame NAKed")
            return
        case .accept:
            writeControl(FrameByte.ack)
        }
        let decoded: Result<TerminalEnvelope, MessageError>
        do {
            decoded = .success(try MessageCodec.decode(payload))
        } catch {
            decoded = .failure(error)
        }
        let requestID = header?.requestID
        if case .failure(let e) = decoded {
            // The description masks card data; the payload itself is never logged.
            logger.warning("terminal link: refused received message type 0x\(hex(header?.type ?? 0)) request_id \(requestID.map(String.init) ?? "-"): \(e)")
        }
        let result = decoded.mapError { LinkError.refused($0, requestID: requestID) }
        locked { s in
            if isResponse, let id = requestID {
                guard var p = s.pending[id], p.result == nil else {
                    logger.notice("terminal link: late or unknown response type 0x\(hex(header?.type ?? 0)) request_id \(id) discarded")
                    return
                }
                p.result = result.flatMap { env in
                    env.message.type == p.expected
                        ? .success(env)
                        : .failure(.unexpectedResponse(requestID: id, expected: p.expected, received: env.message.type))
                }
                s.pending[id] = p
            } else {
                s.inbound.append(result)
            }
        }
    }
}
