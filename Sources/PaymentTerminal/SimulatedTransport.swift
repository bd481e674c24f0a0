// An in-memory cable between two TerminalTransport ends, with fault injection for tests.

import Foundation

/// One end of an in-memory cable (see ``pair()``): what one end writes, the other reads.
///
/// Faults are injected on an end's *outgoing* traffic: drop or corrupt the next frames (writes
/// starting with STX), drop the next ACK/NAK bytes, inject garbage, or cut the cable.
public final class SimulatedTransport: TerminalTransport {
    // All mutable state lives in `cable`, guarded by its condition lock.
    private let cable: Cable
    private let side: Int

    private init(cable: Cable, side: Int) {
        self.cable = cable
        self.side = side
    }

    /// Two connected ends: bytes written to one are read from the other.
    public static func pair() -> (SimulatedTransport, SimulatedTransport) {
        let cable = Cable()
        return (SimulatedTransport(cable: cable, side: 0), SimulatedTransport(cable: cable, side: 1))
    }

    /// Writes bytes to the peer (subject to injected faults); throws `.disconnected` once unplugged.
    public func write(_ bytes: [UInt8], timeout: Duration) throws {
        try cable.locked { c throws(TransportError) in
            guard !c.unplugged else { throw .disconnected }
            var out = bytes
            let isFrame = out.first == FrameByte.stx
            let isControl = !isFrame && out.allSatisfy { $0 == FrameByte.ack || $0 == FrameByte.nak }
            if isFrame {
                c.ends[side].framesWritten += 1
                if c.ends[side].dropFrames > 0 {
                    c.ends[side].dropFrames -= 1
                    c.ends[side].framesDropped += 1
                    return
                }
                if c.ends[side].corruptFrames > 0, out.count > 3 {
                    c.ends[side].corruptFrames -= 1
                    out[3] ^= 0x01  // first payload byte: the LRC no longer matches
                }
            } else if isControl {
                c.ends[side].acksWritten += out.count { $0 == FrameByte.ack }
                c.ends[side].naksWritten += out.count { $0 == FrameByte.nak }
                if c.ends[side].dropControls > 0 {
                    c.ends[side].dropControls -= 1
                    return
                }
            }
            c.ends[1 - side].inbound.append(contentsOf: out)
        }
    }

    /// Reads up to `maxLength` bytes (and at most the read chunk limit), waiting up to `timeout`.
    public func read(maxLength: Int, timeout: Duration) throws -> [UInt8] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        return try cable.wait(until: deadline) { c throws(TransportError) -> [UInt8]? in
            guard !c.unplugged else { throw .disconnected }
            let available = c.ends[side].inbound.count - c.ends[side].head
            guard available > 0 else { return nil }
            let n = min(available, maxLength, c.ends[side].readChunkLimit)
            let head = c.ends[side].head
            let out = Array(c.ends[side].inbound[head..<(head + n)])
            c.ends[side].head += n
            if c.ends[side].head > 65_536 {
                c.ends[side].inbound.removeFirst(c.ends[side].head)
                c.ends[side].head = 0
            }
            return out
        } ?? []
    }

    /// The next `count` frames this end writes vanish on the cable.
    public func dropNextFrames(_ count: Int) {
        cable.locked { c in c.ends[side].dropFrames += count }
    }

    /// The next `count` frames this end writes arrive with one payload bit flipped (bad LRC).
    public func corruptNextFrames(_ count: Int) {
        cable.locked { c in c.ends[side].corruptFrames += count }
    }

    /// The next `count` ACK/NAK writes of this end vanish.
    public func dropNextControls(_ count: Int) {
        cable.locked { c in c.ends[side].dropControls += count }
    }

    /// Bytes arrive at the peer now, as if written by this end (line noise, a half frame).
    public func injectToPeer(_ bytes: [UInt8]) {
        cable.locked { c in c.ends[1 - side].inbound.append(contentsOf: bytes) }
    }

    /// Reads on *this* end return at most `limit` bytes each (1 = byte-by-byte delivery).
    public func setReadChunkLimit(_ limit: Int) {
        cable.locked { c in c.ends[side].readChunkLimit = max(1, limit) }
    }

    /// Cuts the cable: reads and writes on both ends throw ``TransportError/disconnected``.
    public func unplug() {
        cable.locked { c in c.unplugged = true }
    }

    /// Frames (writes starting with STX) this end has written, dropped ones included.
    public var framesWritten: Int { cable.locked { c in c.ends[side].framesWritten } }

    /// Frames of this end dropped by ``dropNextFrames(_:)``.
    public var framesDropped: Int { cable.locked { c in c.ends[side].framesDropped } }

    /// ACK bytes this end has written, dropped ones included.
    public var acksWritten: Int { cable.locked { c in c.ends[side].acksWritten } }

    /// NAK bytes this end has written, dropped ones included.
    public var naksWritten: Int { cable.locked { c in c.ends[side].naksWritten } }
}

/// The shared state of both ends, under one condition lock.
private final class Cable: @unchecked Sendable {
    struct End {
        var inbound: [UInt8] = []
        var head = 0
        var readChunkLimit = Int.max
        var dropFrames = 0
        var corruptFrames = 0
        var dropControls = 0
        var framesWritten = 0
        var framesDropped = 0
        var acksWritten = 0
        var naksWritten = 0
    }

    struct State {
        var ends = [End(), End()]
        var unplugged = false
    }

    private let condition = NSCondition()
    private var state = State()

    /// Runs `body` under the lock and wakes every waiter.
    func locked<T, E: Error>(_ body: (inout State) throws(E) -> T) throws(E) -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&state)
    }

    /// Runs `body` under the lock until it returns non-nil or the deadline passes (then `nil`).
    func wait<T, E: Error>(until deadline: ContinuousClock.Instant, _ body: (inout State) throws(E) -> T?) throws(E) -> T? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let value = try body(&state) { return value }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return nil }
            _ = condition.wait(until: Date(timeIntervalSinceNow: remaining.seconds))
        }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
