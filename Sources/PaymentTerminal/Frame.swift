// The terminal link's framing layer: STX | LEN (u16 BE) | payload | ETX | LRC, plus the
// single-byte link controls ACK and NAK. See Devices/terminal-protocol.md.

/// Link control bytes of the terminal protocol.
public enum FrameByte {
    /// Start of a frame.
    public static let stx: UInt8 = 0x02
    /// End of a frame's payload (followed by the LRC byte).
    public static let etx: UInt8 = 0x03
    /// Positive acknowledgement of a well-formed frame (sent outside frames).
    public static let ack: UInt8 = 0x06
    /// Negative acknowledgement of a corrupt frame (sent outside frames).
    public static let nak: UInt8 = 0x15
}

/// Why a frame could not be encoded or was rejected by the decoder.
public enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The payload length (LEN, or the payload given to the encoder) is outside 1…4096.
    case badLength(Int)
    /// The byte after the payload was not ETX.
    case missingETX(found: UInt8)
    /// The LRC byte did not match the XOR of LEN, payload and ETX.
    case badLRC(expected: UInt8, found: UInt8)
    /// The frame stopped before it was complete (the link's inter-byte timeout expired).
    case truncated

    /// A message naming what failed (never the payload bytes).
    public var description: String {
        switch self {
        case .badLength(let n): "frame length \(n) outside 1...\(FrameCodec.maxPayload)"
        case .missingETX(let b): "frame not terminated by ETX (found 0x\(hex(b)))"
        case .badLRC(let e, let f): "frame LRC mismatch (computed 0x\(hex(e)), received 0x\(hex(f)))"
        case .truncated: "frame truncated (inter-byte timeout)"
        }
    }
}

/// Two uppercase hex digits for a byte.
func hex(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(b >> 4)], digits[Int(b & 0x0F)]])
}

/// Encodes payloads into frames.
public enum FrameCodec {
    /// The largest payload a frame carries, in bytes.
    public static let maxPayload = 4096
    /// Bytes a frame adds around its payload: STX, LEN (2), ETX, LRC.
    public static let overhead = 5
    /// The largest frame on the wire, in bytes.
    public static let maxFrame = maxPayload + overhead

    /// Frames a payload of 1…4096 bytes: `STX | LEN (u16 BE) | payload | ETX | LRC`.
    public static func encode(payload: [UInt8]) throws(FrameError) -> [UInt8] {
        guard (1...maxPayload).contains(payload.count) else { throw .badLength(payload.count) }
        let hi = UInt8(truncatingIfNeeded: payload.count >> 8)
        let lo = UInt8(truncatingIfNeeded: payload.count)
        var frame: [UInt8] = []
        frame.reserveCapacity(payload.count + overhead)
        frame.append(FrameByte.stx)
        frame.append(hi)
        frame.append(lo)
        frame.append(contentsOf: payload)
        frame.append(FrameByte.etx)
        frame.append(lrc(lengthHigh: hi, lengthLow: lo, payload: payload))
        return frame
    }

    /// The LRC: XOR of both LEN bytes, every payload byte and ETX.
    public static func lrc(lengthHigh: UInt8, lengthLow: UInt8, payload: [UInt8]) -> UInt8 {
        var x = lengthHigh ^ lengthLow ^ FrameByte.etx
        for b in payload { x ^= b }
        return x
    }
}

/// What the decoder recognised in the byte stream.
public enum FrameEvent: Sendable, Equatable {
    /// A well-formed frame's payload (the receiver answers ACK).
    case frame([UInt8])
    /// An ACK byte outside a frame.
    case ack
    /// A NAK byte outside a frame.
    case nak
    /// A corrupt frame was dropped (the receiver answers NAK).
    case corrupt(FrameError)
}

/// Incremental frame decoder: feed it bytes in any chunking, get frames, ACKs, NAKs and corruption.
///
/// Memory is bounded: at most one maximum payload (4096 bytes) is buffered. Bytes outside a frame
/// other than STX, ACK and NAK are ignored; after a corrupt frame the decoder resynchronises on the
/// next STX. A byte found where ETX should be that is itself STX starts the next frame.
public struct FrameDecoder: Sendable {
    private enum State: Sendable {
        case idle
        case lengthHigh
        case lengthLow(UInt8)
        case payload(hi: UInt8, lo: UInt8, length: Int)
        case etx(hi: UInt8, lo: UInt8)
        case lrc(hi: UInt8, lo: UInt8)
    }

    private var state: State = .idle
    private var payload: [UInt8] = []

    /// Creates a decoder waiting for STX.
    public init() {
        payload.reserveCapacity(FrameCodec.maxPayload)
    }

    /// Bytes of a partial frame held (never more than ``FrameCodec/maxPayload``).
    public var bufferedByteCount: Int { payload.count }

    /// Whether a frame has started and is not complete yet.
    public var isInsideFrame: Bool {
        if case .idle = state { return false }
        return true
    }

    /// Consumes bytes and returns what they completed, in stream order.
    public mutating func feed<S: Sequence>(_ bytes: S) -> [FrameEvent] where S.Element == UInt8 {
        var events: [FrameEvent] = []
        for b in bytes { step(b, into: &events) }
        return events
    }

    /// The link's inter-byte timeout expired: a partial frame pending is dropped as truncated.
    public mutating func timeout() -> FrameEvent? {
        guard isInsideFrame else { return nil }
        reset()
        return .corrupt(.truncated)
    }

    private mutating func reset() {
        state = .idle
        payload.removeAll(keepingCapacity: true)
    }

    private mutating func step(_ b: UInt8, into events: inout [FrameEvent]) {
        switch state {
        case .idle:
            switch b {
            case FrameByte.stx: state = .lengthHigh
            case FrameByte.ack: events.append(.ack)
            case FrameByte.nak: events.append(.nak)
            default: break  // noise between frames
            }
        case .lengthHigh:
            state = .lengthLow(b)
        case .lengthLow(let hi):
            let length = Int(hi) << 8 | Int(b)
            if (1...FrameCodec.maxPayload).contains(length) {
                state = .payload(hi: hi, lo: b, length: length)
            } else {
                reset()
                events.append(.corrupt(.badLength(length)))
            }
        case .payload(let hi, let lo, let length):
            payload.append(b)
            if payload.count == length { state = .etx(hi: hi, lo: lo) }
        case .etx(let hi, let lo):
            if b == FrameByte.etx {
                state = .lrc(hi: hi, lo: lo)
            } else {
                reset()
                events.append(.corrupt(.missingETX(found: b)))
                if b == FrameByte.stx { state = .lengthHigh }
            }
        case .lrc(let hi, let lo):
            let expected = FrameCodec.lrc(lengthHigh: hi, lengthLow: lo, payload: payload)
            if b == expected {
                events.append(.frame(payload))
            } else {
                events.append(.corrupt(.badLRC(expected: expected, found: b)))
            }
            reset()
        }
    }
}
