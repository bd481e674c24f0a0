#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CV4L2
import Foundation
import Synchronization

/// What the driver (through libv4l2) agreed to deliver.
public struct NegotiatedFormat: Sendable, Equatable, Codable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// The pixel format frames arrive in.
    public var pixelFormat: PixelFormat
    /// Bytes per row.
    public var bytesPerLine: Int
    /// The frame rate the driver reports (`VIDIOC_G_PARM`), nil when it has no frame-rate control.
    public var fps: Double?
    /// The input selected (`VIDIOC_G_INPUT`), nil when the driver has none.
    public var input: Int?
    /// mmap buffers in the ring.
    public var buffers: Int
}

/// Counters of a capture, readable while it runs.
public struct CaptureStats: Sendable, Equatable {
    /// The format, once negotiated.
    public var format: NegotiatedFormat?
    /// Frames handed to the stream.
    public var delivered: Int = 0
    /// Frames the driver skipped (gaps in the V4L2 `sequence`).
    public var droppedByDriver: Int = 0
    /// Frames replaced in the stream's buffer because the consumer was slower (newest wins).
    public var droppedByConsumer: Int = 0
}

/// A V4L2 camera through libv4l2: format and size from a ``CameraProfile``, mmap streaming with a
/// small ring, `poll` + `VIDIOC_DQBUF` with a timeout, and a clean stop. Capture runs on a thread
/// of its own; frames reach async code through an `AsyncThrowingStream` that keeps the newest
/// two (older ones are dropped and counted).
public final class V4L2Source: FrameSource {
    /// The node and its identity at open time.
    public let device: CameraDevice
    /// What is asked of the driver.
    public let profile: CameraProfile
    private let statsBox = Locked(CaptureStats())

    /// A source for `device` with `profile` (nothing is opened until ``frames()``).
    public init(device: CameraDevice, profile: CameraProfile) {
        self.device = device
        self.profile = profile
    }

    /// Resolves `identity` now, picks the best of `profiles` for it.
    public convenience init(identity: CameraIdentity, profiles: [CameraProfile]) throws(CameraError) {
        let d = try CameraEnumerator.find(identity)
        self.init(device: d, profile: CameraProfile.best(for: d, in: profiles))
    }

    /// `/dev/video0 (vivid@platform:vivid-000)`.
    public var name: String { "\(device.path) (\(device.identity))" }

    /// Counters so far (format, delivered, dropped).
    public var stats: CaptureStats { statsBox.withLock { $0 } }

    /// Opens the device on a new capture thread and streams until the consumer stops iterating or
    /// the device fails (a ``CameraError``: timeout, or the ioctl and errno that failed, e.g.
    /// `VIDIOC_DQBUF` ENODEV on unplug). Call once per source.
    public func frames() -> AsyncThrowingStream<Frame, Error> {
        let (stream, continuation) = AsyncThrowingStream<Frame, Error>.makeStream(bufferingPolicy: .bufferingNewest(2))
        let stop = StopFlag()
        continuation.onTermination = { _ in stop.set() }
        let device = self.device, profile = self.profile, statsBox = self.statsBox
        let thread = Thread {
            do throws(CameraError) {
                try V4L2Source.capture(device: device, profile: profile, stats: statsBox, stop: stop) { frame in
                    if case .dropped = continuation.yield(frame) {
                        statsBox.withLock { $0.droppedByConsumer += 1 }
                    }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        thread.name = "camera-capture"
        thread.start()
        return stream
    }

    /// The capture loop (on the capture thread).
    static func capture(device: CameraDevice, profile: CameraProfile, stats: Locked<CaptureStats>, stop: StopFlag,
                        deliver: (Frame) -> Void) throws(CameraError) {
        let path = device.path
        let h = try V4L2Handle(path: path, type: V4L2_BUF_TYPE_VIDEO_CAPTURE)
        defer { h.close() }
        let caps = try h.capabilities()
        guard caps & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0, caps & UInt32(V4L2_CAP_STREAMING) != 0 else {
            throw .unsupported(device: path, reason: "not a streaming video capture node")
        }
        var input: Int?
        if let want = profile.input {
            var current: Int32 = -1
            try? h.ioctl(KA_VIDIOC_G_INPUT, "VIDIOC_G_INPUT", &current)
            if current != Int32(want) {  // re-selecting the same input would reset its timings on some drivers
                var i = Int32(want)
                try h.ioctl(KA_VIDIOC_S_INPUT, "VIDIOC_S_INPUT", &i)
            }
        }
        var cur: Int32 = -1
        if (try? h.ioctl(KA_VIDIOC_G_INPUT, "VIDIOC_G_INPUT", &cur)) != nil { input = Int(cur) }

        // Format: the profile's first; then what libv4l2 can always convert to.
        var chosen: (PixelFormat, v4l2_pix_format)?
        var tried: [String] = []
        for f in [profile.pixelFormat, .yuyv, .rgb24, .grey] {
            let got = try h.setFormat(width: profile.width, height: profile.height, fourcc: f.fourcc)
            tried.append("\(f.rawValue)→\(PixelFormat.fourccString(got.pixelformat))")
            if let pf = PixelFormat(fourcc: got.pixelformat) { chosen = (pf, got); break }
        }
        guard let (pixelFormat, pix) = chosen else {
            throw .unsupported(device: path, reason: "no readable pixel format (tried \(tried.joined(separator: ", ")))")
        }
        let width = Int(pix.width), height = Int(pix.height)
        let bpl = max(Int(pix.bytesperline), width * pixelFormat.bytesPerPixel)

        // Frame rate (drivers without VIDIOC_S_PARM support keep theirs).
        var parm = v4l2_streamparm()
        parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        parm.parm.capture.timeperframe = v4l2_fract(numerator: 1, denominator: UInt32(profile.fps))
        try? h.ioctl(KA_VIDIOC_S_PARM, "VIDIOC_S_PARM", &parm)
        var fps: Double?
        var g = v4l2_streamparm()
        g.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        if (try? h.ioctl(KA_VIDIOC_G_PARM, "VIDIOC_G_PARM", &g)) != nil, g.parm.capture.timeperframe.numerator > 0 {
            fps = Double(g.parm.capture.timeperframe.denominator) / Double(g.parm.capture.timeperframe.numerator)
        }

        try h.mapBuffers(count: profile.buffers)
        for i in h.buffers.indices { try h.queue(UInt32(i)) }
        try h.stream(true)
        let format = NegotiatedFormat(width: width, height: height, pixelFormat: pixelFormat, bytesPerLine: bpl, fps: fps,
                                      input: input, buffers: h.buffers.count)
        stats.withLock { $0.format = format }

        let frameBytes = bpl * (height - 1) + width * pixelFormat.bytesPerPixel
        let timeoutNanos = UInt64(profile.frameTimeoutMillis) * 1_000_000
        var lastFrameAt = monotonicNanos()
        var lastSequence: UInt32?
        while !stop.isSet {
            let revents = try h.poll(events: Int16(POLLIN), timeoutMillis: 100)
            if revents == 0 {
                if monotonicNanos() - lastFrameAt > timeoutNanos {
                    throw .timeout(device: path, seconds: Double(profile.frameTimeoutMillis) / 1000)
                }
                continue
            }
            guard let b = try h.dequeue() else {
                if revents & Int16(POLLERR | POLLHUP) != 0 {
                    // The device went away or streaming stopped under us: say which.
                    throw .system(call: "poll (POLLERR/POLLHUP) before VIDIOC_DQBUF", device: path, errno: ENODEV)
                }
                continue
            }
            lastFrameAt = monotonicNanos()
            if b.flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0 || Int(b.bytesused) < frameBytes {
                try h.queue(b.index)  // a corrupt or short frame: skip it
                continue
            }
            let src = h.buffers[Int(b.index)]
            let data = [UInt8](UnsafeRawBufferPointer(rebasing: src[0..<min(src.count, bpl * height)]))
            try h.queue(b.index)
            var dropped = 0
            if let last = lastSequence, b.sequence > last &+ 1 { dropped = Int(b.sequence &- last &- 1) }
            lastSequence = b.sequence
            stats.withLock {
                $0.delivered += 1
                $0.droppedByDriver += dropped
            }
            deliver(Frame(width: width, height: height, format: pixelFormat, bytesPerLine: bpl, data: data,
                          sequence: b.sequence, timestampNanos: lastFrameAt))
        }
    }
}

/// A value behind a mutex, shareable across threads (a class around ``Mutex``, which cannot be copied).
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    /// Wraps `value`.
    public init(_ value: Value) { mutex = Mutex(value) }
    /// Runs `body` with the lock held.
    public func withLock<R: Sendable>(_ body: (inout sending Value) throws -> sending R) rethrows -> R {
        try mutex.withLock(body)
    }
}

/// A flag set from any thread, polled by a device thread.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
