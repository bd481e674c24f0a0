import Testing
@testable import PaymentTerminal

/// A small deterministic generator so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Feeds bytes in random chunk sizes, collecting events.
func feedChunked(_ decoder: inout FrameDecoder, _ bytes: [UInt8], rng: inout SplitMix64, maxChunk: Int = 64) -> [FrameEvent] {
    var events: [FrameEvent] = []
    var i = 0
    while i < bytes.count {
        let n = min(bytes.count - i, Int.random(in: 1...maxChunk, using: &rng))
        events += decoder.feed(bytes[i..<(i + n)])
        #expect(decoder.bufferedByteCount <= FrameCodec.maxPayload)
        i += n
    }
    return events
}

@Suite struct CodecFrameTests {
    /// Text payloads: no control bytes inside, so the corruption tests are deterministic.
    static let p1 = Array("first frame payload".utf8)
    static let p2 = Array("second frame".utf8)
    static let p3 = Array("third".utf8)

    @Test func encodeLayout() throws {
        // LRC = 0x00 ^ 0x02 ^ 'A' ^ 'B' ^ ETX.
        #expect(try FrameCodec.encode(payload: [0x41, 0x42]) == [0x02, 0x00, 0x02, 0x41, 0x42, 0x03, 0x02])
        let big = try FrameCodec.encode(payload: Array(repeating: 0x00, count: 0x0FFF))
        #expect(Array(big.prefix(3)) == [0x02, 0x0F, 0xFF])
        #expect(big.count == 0x0FFF + 5)
        #expect(big[big.count - 2] == 0x03)
        #expect(big.last == 0xF3)  // 0x0F ^ 0xFF ^ ETX; the zero payload adds nothing
        #expect(try FrameCodec.encode(payload: Array(repeating: 7, count: 4096)).count == FrameCodec.maxFrame)
    }

    @Test func encodeRejectsBadLengths() {
        #expect(throws: FrameError.badLength(0)) { try FrameCodec.encode(payload: []) }
        #expect(throws: FrameError.badLength(4097)) { try FrameCodec.encode(payload: Array(repeating: 0, count: 4097)) }
    }

    @Test(arguments: [1, 2, 5, 255, 256, 257, 1000, 4095, 4096])
    func framesRoundTripInAnyChunking(_ size: Int) throws {
        var rng = SplitMix64(seed: UInt64(size))
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let frame = try FrameCodec.encode(payload: payload)
        var whole = FrameDecoder()
        #expect(whole.feed(frame) == [.frame(payload)])
        var byByte = FrameDecoder()
        var events: [FrameEvent] = []
        for b in frame { events += byByte.feed(CollectionOfOne(b)) }
        #expect(events == [.frame(payload)])
        var chunked = FrameDecoder()
        #expect(feedChunked(&chunked, frame + frame, rng: &rng) == [.frame(payload), .frame(payload)])
        #expect(chunked.timeout() == nil)
    }

    @Test func acksAndNaksOutsideFramesAreEvents() throws {
        var d = FrameDecoder()
        let stream = [FrameByte.ack] + (try FrameCodec.encode(payload: [FrameByte.ack, FrameByte.nak, FrameByte.stx, FrameByte.etx]))
            + [FrameByte.nak, FrameByte.ack]
        #expect(d.feed(stream) == [.ack, .frame([0x06, 0x15, 0x02, 0x03]), .nak, .ack])
    }

    @Test func garbageBeforeAndBetweenFramesIsSkipped() throws {
        var rng = SplitMix64(seed: 42)
        let controls: Set<UInt8> = [FrameByte.stx, FrameByte.ack, FrameByte.nak]
        func garbage(_ n: Int) -> [UInt8] {
            var g: [UInt8] = []
            while g.count < n {
                let b = UInt8.random(in: 0...255, using: &rng)
                if !controls.contains(b) { g.append(b) }
            }
            return g
        }
        let stream = garbage(100) + (try FrameCodec.encode(payload: Self.p1)) + garbage(7) + (try FrameCodec.encode(payload: Self.p2)) + garbage(3000)
        var d = FrameDecoder()
        #expect(feedChunked(&d, stream, rng: &rng) == [.frame(Self.p1), .frame(Self.p2)])
        #expect(d.timeout() == nil)
    }

    @Test func garbageHoldingSTXResyncsAfterTimeout() throws {
        // A stray STX with a plausible LEN swallows the next frame; the inter-byte timeout ends it.
        var d = FrameDecoder()
        let events = d.feed([0x55, FrameByte.stx, 0x02, 0x00, 0x41] + (try FrameCodec.encode(payload: Self.p1)))
        #expect(events.isEmpty)
        #expect(d.isInsideFrame)
        #expect(d.timeout() == .corrupt(.truncated))
        #expect(d.feed(try FrameCodec.encode(payload: Self.p2)) == [.frame(Self.p2)])
    }

    @Test func badLengthsAreCorrupt() throws {
        var d = FrameDecoder()
        let good = try FrameCodec.encode(payload: Self.p3)
        #expect(d.feed([FrameByte.stx, 0x10, 0x01] + good) == [.corrupt(.badLength(4097)), .frame(Self.p3)])
        #expect(d.feed([FrameByte.stx, 0x00, 0x00] + good) == [.corrupt(.badLength(0)), .frame(Self.p3)])
        #expect(d.feed([FrameByte.stx, 0xFF, 0xFF] + good) == [.corrupt(.badLength(65535)), .frame(Self.p3)])
    }

    @Test func missingETXAndBadLRCAreCorrupt() throws {
        var frame = try FrameCodec.encode(payload: Self.p1)
        let good = try FrameCodec.encode(payload: Self.p2)
        var d = FrameDecoder()
        frame[frame.count - 2] = 0x04
        #expect(d.feed(frame + good) == [.corrupt(.missingETX(found: 0x04)), .frame(Self.p2)])
        // A frame cut after its payload: where ETX should be comes the next frame's STX, which is kept.
        let short = [FrameByte.stx, 0x00, UInt8(Self.p1.count)] + Self.p1
        #expect(d.feed(short + good) == [.corrupt(.missingETX(found: FrameByte.stx)), .frame(Self.p2)])
        frame = try FrameCodec.encode(payload: Self.p1)
        let lrc = frame[frame.count - 1]
        frame[frame.count - 1] ^= 0x20
        #expect(d.feed(frame + good) == [.corrupt(.badLRC(expected: lrc, found: lrc ^ 0x20)), .frame(Self.p2)])
    }

    @Test func truncatedFrameIsCorruptOnTimeout() throws {
        let frame = try FrameCodec.encode(payload: Self.p1)
        for cut in 1..<frame.count {
            var d = FrameDecoder()
            #expect(d.feed(frame.prefix(cut)).isEmpty)
            #expect(d.timeout() == .corrupt(.truncated))
            #expect(d.timeout() == nil)
            #expect(d.bufferedByteCount == 0)
            #expect(d.feed(try FrameCodec.encode(payload: Self.p2)) == [.frame(Self.p2)])
        }
    }

    /// Every byte of a frame flipped (all bits, then each single bit): the frame is never
    /// delivered, nothing else is invented, and the link recovers by the next frame after a timeout.
    @Test func everyByteFlippedIsNeverDelivered() throws {
        let f1 = try FrameCodec.encode(payload: Self.p1)
        let f2 = try FrameCodec.encode(payload: Self.p2)
        let f3 = try FrameCodec.encode(payload: Self.p3)
        // Precondition for determinism: no control byte in the frame after STX.
        #expect(!f1.dropFirst().contains { [FrameByte.stx, FrameByte.ack, FrameByte.nak].contains($0) })
        var cases = 0
        for i in f1.indices {
            for mask: UInt8 in [0xFF, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
                var bad = f1
                bad[i] ^= mask
                var d = FrameDecoder()
                var events = d.feed(bad + f2)
                if let e = d.timeout() { events.append(e) }
                events += d.feed(f3)
                let frames = events.compactMap { e -> [UInt8]? in if case .frame(let p) = e { p } else { nil } }
                #expect(!frames.contains(Self.p1), "byte \(i) ^ \(mask)")
                #expect(frames.allSatisfy { $0 == Self.p2 || $0 == Self.p3 }, "byte \(i) ^ \(mask)")
                #expect(frames.last == Self.p3, "byte \(i) ^ \(mask)")
                if i > 0 {
                    // Anything but a damaged STX is detected and answered with NAK.
                    #expect(events.contains { if case .corrupt = $0 { true } else { false } }, "byte \(i) ^ \(mask)")
                }
                cases += 1
            }
        }
        #expect(cases == f1.count * 9)
    }

    @Test func boundedUnderOneMegabyteOfNoise() throws {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let noise = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var chunked = FrameDecoder()
        var maxBuffered = 0
        var chunkedEvents: [FrameEvent] = []
        var i = 0
        while i < noise.count {
            let n = min(noise.count - i, Int.random(in: 1...700, using: &rng))
            chunkedEvents += chunked.feed(noise[i..<(i + n)])
            maxBuffered = max(maxBuffered, chunked.bufferedByteCount)
            i += n
        }
        #expect(maxBuffered <= FrameCodec.maxPayload)
        var whole = FrameDecoder()
        #expect(whole.feed(noise) == chunkedEvents, "chunking must not change what is decoded")
        _ = chunked.timeout()
        #expect(chunked.feed(try FrameCodec.encode(payload: Self.p1)) == [.frame(Self.p1)])
    }
}
