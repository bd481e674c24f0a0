// Timing and capacity knobs of the terminal link, and its errors.

/// Timing and capacity of a ``TerminalLink``.
public struct LinkConfiguration: Sendable {
    /// How long a sender waits for ACK/NAK after writing a frame before retransmitting.
    public var ackTimeout: Duration
    /// Retransmissions after the first transmission (so at most 1 + this many writes per frame).
    public var maxRetransmissions: Int
    /// Silence inside a partial frame after which it is dropped as truncated (and NAKed).
    public var interByteTimeout: Duration
    /// Timeout for one transport write.
    public var writeTimeout: Duration
    /// Received requests and notifications held until ``TerminalLink/receive(timeout:)``; frames
    /// beyond this are NAKed so the sender learns they were not taken.
    public var maxPendingInbound: Int
    /// How many recent (type, request id) pairs are remembered to drop retransmitted duplicates.
    public var duplicateWindow: Int
    /// The first request id this link hands out; `nil` picks a random one (so ids of a previous
    /// connection are unlikely to be reused after a reconnect).
    public var firstRequestID: UInt32?

    /// Creates a configuration; the defaults are the protocol's (300 ms ACK timeout, 3 retransmissions).
    public init(
        ackTimeout: Duration = .milliseconds(300),
        maxRetransmissions: Int = 3,
        interByteTimeout: Duration = .milliseconds(100),
        writeTimeout: Duration = .seconds(1),
        maxPendingInbound: Int = 64,
        duplicateWindow: Int = 64,
        firstRequestID: UInt32? = nil
    ) {
        self.ackTimeout = ackTimeout
        self.maxRetransmissions = max(0, maxRetransmissions)
        self.interByteTimeout = interByteTimeout
        self.writeTimeout = writeTimeout
        self.maxPendingInbound = max(1, maxPendingInbound)
        self.duplicateWindow = max(1, duplicateWindow)
        self.firstRequestID = firstRequestID
    }
}

/// Why a link operation failed.
public enum LinkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A frame was not acknowledged after the first transmission and every retransmission.
    case noAck(type: MessageType, requestID: UInt32, attempts: Int)
    /// The response to a request did not arrive within the request's timeout.
    case responseTimeout(type: MessageType, requestID: UInt32)
    /// The response with the request's id has another type than the request expects.
    case unexpectedResponse(requestID: UInt32, expected: MessageType, received: MessageType)
    /// `request` was called with a message that has no response (a response or a notification).
    case notARequest(MessageType)
    /// A received message was refused by the codec (PCI or malformed); the frame was ACKed.
    case refused(MessageError, requestID: UInt32?)
    /// An outgoing message could not be encoded (nothing was sent).
    case encoding(MessageError)
    /// The transport reported the device gone; the link is dead (make a new one after reconnecting).
    case disconnected
    /// The transport failed otherwise; the link is dead.
    case transport(TransportError)
    /// The link was closed.
    case closed

    /// A message naming what failed (card data masked).
    public var description: String {
        switch self {
        case .noAck(let t, let id, let n): "\(t) request_id \(id): no ACK after \(n) transmissions"
        case .responseTimeout(let t, let id): "\(t) request_id \(id): no response in time"
        case .unexpectedResponse(let id, let e, let r): "request_id \(id): expected \(e), received \(r)"
        case .notARequest(let t): "\(t) is not a request (it has no response)"
        case .refused(let e, let id): "received message\(id.map { " request_id \($0)" } ?? "") refused: \(e)"
        case .encoding(let e): "cannot encode message: \(e)"
        case .disconnected: "terminal disconnected"
        case .transport(let e): "terminal link failed: \(e)"
        case .closed: "terminal link closed"
        }
    }
}
