#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CV4L2

/// What a feed did.
public struct FeedStats: Sendable, Equatable {
    /// Buffers queued to the output.
    public var queued: Int
    /// Distinct source frames shown.
    public var framesShown: Int
    /// Seconds fed.
    public var seconds: Double
}

/// A V4L2 video output (vivid's HDMI out) fed with frames: RGB24 at the output's size, mmap
/// streaming, every buffer the driver hands back refilled at once with the frame due at that time.
/// Lets tests put known images (faces) into vivid's output→capture loop. Blocking: call it from a
/// thread of its own (kioskctl's main thread), never from Swift's cooperative pool.
public final class V4L2Output {
    /// The output node.
    public let path: String
    /// Output width in pixels.
    public let width: Int
    /// Output height in pixels.
    public let height: Int
    /// Bytes per row of the output buffers.
    public let bytesPerLine: Int
    private let handle: V4L2Handle

    /// Opens `path` through libv4l2, sets RGB24 `width`x`height` progressive and maps `buffers` buffers.
    public init(path: String, width: Int = 640, height: Int = 480, buffers: Int = 4) throws(CameraError) {
        let h = try V4L2Handle(path: path, type: V4L2_BUF_TYPE_VIDEO_OUTPUT)
        let caps = try h.capabilities()
        guard caps & UInt32(V4L2_CAP_VIDEO_OUTPUT) != 0, caps & UInt32(V4L2_CAP_STREAMING) != 0 else {
            throw .unsupported(device: path, reason: "not a streaming video output node")
        }
        let f = try h.setFormat(width: width, height: height, fourcc: KA_V4L2_PIX_FMT_RGB24)
        guard f.pixelformat == KA_V4L2_PIX_FMT_RGB24 else {
            throw .unsupported(device: path, reason: "output refuses RGB24 (got \(PixelFormat.fourccString(f.pixelformat)))")
        }
        self.path = path
        self.width = Int(f.width)
        self.height = Int(f.height)
        self.bytesPerLine = max(Int(f.bytesperline), Int(f.width) * 3)
        try h.mapBuffers(count: buffers)
        self.handle = h
    }

    deinit { handle.close() }

    /// A frame as the output's RGB24 buffer: converted, and scaled (nearest neighbour) when its size differs.
    public func buffer(for frame: Frame) -> [UInt8] {
        let rgb = frame.rgb()
        var out = [UInt8](repeating: 0, count: bytesPerLine * height)
        let sw = frame.width, sh = frame.height, w = width, h = height, bpl = bytesPerLine
        out.withUnsafeMutableBufferPointer { d in
            rgb.withUnsafeBufferPointer { s in
                for y in 0..<h {
                    let sy = y * sh / h
                    for x in 0..<w {
                        let sx = x * sw / w
                        let si = (sy * sw + sx) * 3, di = y * bpl + x * 3
                        d[di] = s[si]; d[di + 1] = s[si + 1]; d[di + 2] = s[si + 2]
                    }
                }
            }
        }
        return out
    }

    /// Feeds `frames` in a cycle at `fps` for `seconds` (or until `shouldStop` says so): each buffer
    /// the output returns is refilled with the frame due now, so the output never runs dry.
    /// `onStreaming` runs once every buffer holds a frame and `VIDIOC_STREAMON` succeeded.
    ///
    /// `select`, when given, picks the frame to show next (an index into `frames`) instead of
    /// cycling by time: a feeder that reacts to what the camera's consumer asks for.
    public func feed(_ frames: [Frame], fps: Double, seconds: Double, onStreaming: () -> Void = {},
                     shouldStop: () -> Bool = { false }, select: (() -> Int)? = nil) throws(CameraError) -> FeedStats {
        precondition(!frames.isEmpty, "feed needs at least one frame")
        let images = frames.map { buffer(for: $0) }
        let size = bytesPerLine * height
        let start = monotonicNanos()
        let end = start + UInt64(seconds * 1e9)
        var queued = 0
        var shown = Set<Int>()
        func due() -> Int {
            if let select { return min(max(0, select()), images.count - 1) }
            return Int(Double(monotonicNanos() - start) / 1e9 * fps) % images.count
        }
        func fill(_ index: Int) throws(CameraError) {
            let i = due()
            shown.insert(i)
            let b = handle.buffers[index]
            guard b.count >= size else { throw .unsupported(device: path, reason: "buffer \(index) is \(b.count) bytes, \(size) needed") }
            images[i].withUnsafeBytes { b.copyMemory(from: $0) }
            try handle.queue(UInt32(index), bytesUsed: UInt32(size))
            queued += 1
        }
        for i in handle.buffers.indices { try fill(i) }
        try handle.stream(true)
        defer { try? handle.stream(false) }
        onStreaming()
        while monotonicNanos() < end, !shouldStop() {
            let revents = try handle.poll(events: Int16(POLLOUT), timeoutMillis: 200)
            if revents == 0 { continue }
            if let b = try handle.dequeue() {
                try fill(Int(b.index))
            } else if revents & Int16(POLLERR | POLLHUP) != 0 {
                throw .system(call: "poll (POLLERR/POLLHUP) before VIDIOC_DQBUF", device: path, errno: ENODEV)
            }
        }
        return FeedStats(queued: queued, framesShown: shown.count, seconds: Double(monotonicNanos() - start) / 1e9)
    }
}
