// v4l2-loop: write a known frame to vivid's HDMI output and capture it back, byte for byte,
// from the HDMI input of vivid's capture node, through libv4l2 and mmap streaming on both ends.
#if canImport(Glibc)
import KioskSys
import Glibc
#endif
import CKioskShims
import CV4L2

/// A libv4l2 file descriptor with typed ioctls.
final class V4L2Device {
    let path: String
    let fd: Int32

    init(path: String) throws(SysError) {
        self.path = path
        fd = try systemCall("v4l2_open \(path)") { ka_v4l2_open(path, O_RDWR | O_NONBLOCK) }
    }

    deinit { _ = ka_v4l2_close(fd) }

    /// v4l2_ioctl(fd, request, &arg): EINTR retried, any other failure a SysError naming the request.
    func ioctl<T>(_ request: UInt, _ name: String, _ arg: inout T) throws(SysError) {
        let fd = self.fd
        let path = self.path
        let result: Result<Void, SysError> = withUnsafeMutablePointer(to: &arg) { ptr in
            do throws(SysError) {
                try systemCall("\(name) on \(path)") { ka_v4l2_ioctl(fd, request, ptr) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    func capabilities() throws(SysError) -> UInt32 {
        var cap = v4l2_capability()
        try ioctl(KA_VIDIOC_QUERYCAP, "VIDIOC_QUERYCAP", &cap)
        return cap.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities
    }

    /// Sets width x height in `fourcc`, progressive; returns what the driver chose.
    func setFormat(type: v4l2_buf_type, width: UInt32, height: UInt32, fourcc: UInt32) throws(SysError) -> v4l2_pix_format {
        var fmt = v4l2_format()
        fmt.type = type.rawValue
        fmt.fmt.pix.width = width
        fmt.fmt.pix.height = height
        fmt.fmt.pix.pixelformat = fourcc
        fmt.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        try ioctl(KA_VIDIOC_S_FMT, "VIDIOC_S_FMT", &fmt)
        return fmt.fmt.pix
    }
}

/// Driver buffers mapped into this process.
final class MappedBuffers {
    let device: V4L2Device
    let type: v4l2_buf_type
    private(set) var buffers: [UnsafeMutableRawBufferPointer] = []

    init(device: V4L2Device, type: v4l2_buf_type, count: UInt32) throws(SysError) {
        self.device = device
        self.type = type
        var req = v4l2_requestbuffers()
        req.count = count
        req.type = type.rawValue
        req.memory = V4L2_MEMORY_MMAP.rawValue
        try device.ioctl(KA_VIDIOC_REQBUFS, "VIDIOC_REQBUFS", &req)
        guard req.count > 0 else { throw SysError(call: "VIDIOC_REQBUFS on \(device.path) (0 buffers)", code: ENOMEM) }
        for index in 0..<req.count {
            var buf = blank(index: index)
            try device.ioctl(KA_VIDIOC_QUERYBUF, "VIDIOC_QUERYBUF", &buf)
            let length = Int(buf.length)
            let offset = Int64(buf.m.offset)
            let fd = device.fd
            guard let base = ka_v4l2_mmap(fd, length, offset) else {
                throw SysError(call: "v4l2_mmap buffer \(index) of \(device.path)", code: errno)
            }
            buffers.append(UnsafeMutableRawBufferPointer(start: base, count: length))
        }
    }

    deinit {
        for b in buffers { _ = ka_v4l2_munmap(b.baseAddress, b.count) }
        var req = v4l2_requestbuffers()
        req.type = type.rawValue
        req.memory = V4L2_MEMORY_MMAP.rawValue
        try? device.ioctl(KA_VIDIOC_REQBUFS, "VIDIOC_REQBUFS", &req)
    }

    func blank(index: UInt32 = 0) -> v4l2_buffer {
        var buf = v4l2_buffer()
        buf.index = index
        buf.type = type.rawValue
        buf.memory = V4L2_MEMORY_MMAP.rawValue
        return buf
    }

    func queue(_ index: UInt32, bytesUsed: UInt32 = 0) throws(SysError) {
        var buf = blank(index: index)
        buf.bytesused = bytesUsed
        buf.field = V4L2_FIELD_NONE.rawValue
        try device.ioctl(KA_VIDIOC_QBUF, "VIDIOC_QBUF", &buf)
    }

    /// The next filled (capture) or consumed (output) buffer, or nil if none is ready (EAGAIN).
    func dequeue() throws(SysError) -> v4l2_buffer? {
        var buf = blank()
        do {
            try device.ioctl(KA_VIDIOC_DQBUF, "VIDIOC_DQBUF", &buf)
        } catch where error.code == EAGAIN {
            return nil
        }
        return buf
    }

    func stream(_ on: Bool) throws(SysError) {
        var t = Int32(bitPattern: type.rawValue)
        if on {
            try device.ioctl(KA_VIDIOC_STREAMON, "VIDIOC_STREAMON", &t)
        } else {
            try device.ioctl(KA_VIDIOC_STREAMOFF, "VIDIOC_STREAMOFF", &t)
        }
    }
}

/// A 640x480 RGB24 test frame no generator draws: per-pixel bit mixing plus a text row.
/// (Raw-pointer loops: a debug build's checked array indexing is slow under TCG.)
func patternFrame(width: Int, height: Int, bytesPerLine: Int) -> [UInt8] {
    var frame = [UInt8](repeating: 0, count: bytesPerLine * height)
    frame.withUnsafeMutableBufferPointer { buf in
        let p = buf.baseAddress!
        for y in 0..<height {
            var o = y * bytesPerLine
            for x in 0..<width {
                p[o] = UInt8(truncatingIfNeeded: x ^ (y &* 3))
                p[o + 1] = UInt8(truncatingIfNeeded: (x &* 7) &+ (y >> 1))
                p[o + 2] = UInt8(truncatingIfNeeded: ((x &* y) >> 5) ^ 0xA5)
                o += 3
            }
        }
    }
    let tag = Array("kiosk-agent vm-selfcheck v4l2-loop".utf8)
    for (i, c) in tag.enumerated() where i < bytesPerLine { frame[i] = c }
    return frame
}

/// Number of differing bytes in the first `count` bytes.
func differingBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Int {
    let pa = a.assumingMemoryBound(to: UInt8.self)
    let pb = b.assumingMemoryBound(to: UInt8.self)
    var diff = 0
    for i in 0..<count where pa[i] != pb[i] { diff += 1 }
    return diff
}

struct V4L2LoopFailure: Error, CustomStringConvertible {
    let description: String
}

func runV4L2Loop(_ options: Options) throws -> Int32 {
    let outPath = try options.string("output", default: "/dev/video1")
    let capPath = try options.string("capture", default: "/dev/video0")
    let input = try options.int("input", default: 1)
    let timeoutSeconds = try options.int("timeout", default: 20)
    let wantMatches = try options.int("matches", default: 3)
    let width: UInt32 = 640
    let height: UInt32 = 480

    let out = try V4L2Device(path: outPath)
    let cap = try V4L2Device(path: capPath)
    let outCaps = try out.capabilities()
    let capCaps = try cap.capabilities()
    guard outCaps & UInt32(V4L2_CAP_VIDEO_OUTPUT) != 0, outCaps & UInt32(V4L2_CAP_STREAMING) != 0 else {
        throw V4L2LoopFailure(description: "\(outPath) is not a streaming video output")
    }
    guard capCaps & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0, capCaps & UInt32(V4L2_CAP_STREAMING) != 0 else {
        throw V4L2LoopFailure(description: "\(capPath) is not a streaming video capture")
    }

    // The agent selects the camera's input itself.
    var inputIndex = Int32(input)
    try cap.ioctl(KA_VIDIOC_S_INPUT, "VIDIOC_S_INPUT", &inputIndex)
    var current: Int32 = -1
    try cap.ioctl(KA_VIDIOC_G_INPUT, "VIDIOC_G_INPUT", &current)
    guard current == Int32(input) else { throw V4L2LoopFailure(description: "input is \(current), not \(input)") }

    let outFmt = try out.setFormat(type: V4L2_BUF_TYPE_VIDEO_OUTPUT, width: width, height: height, fourcc: KA_V4L2_PIX_FMT_RGB24)
    let capFmt = try cap.setFormat(type: V4L2_BUF_TYPE_VIDEO_CAPTURE, width: width, height: height, fourcc: KA_V4L2_PIX_FMT_RGB24)
    for (name, f) in [("output", outFmt), ("capture", capFmt)] {
        guard f.width == width, f.height == height, f.pixelformat == KA_V4L2_PIX_FMT_RGB24, f.bytesperline >= width * 3 else {
            throw V4L2LoopFailure(description: "\(name) format is \(f.width)x\(f.height) fourcc 0x\(String(f.pixelformat, radix: 16)) bpl \(f.bytesperline), wanted 640x480 RGB24")
        }
    }
    guard outFmt.bytesperline == capFmt.bytesperline, outFmt.sizeimage == capFmt.sizeimage else {
        throw V4L2LoopFailure(description: "output and capture layouts differ (\(outFmt.bytesperline)/\(outFmt.sizeimage) vs \(capFmt.bytesperline)/\(capFmt.sizeimage))")
    }
    let frameSize = Int(outFmt.sizeimage)
    let frame = patternFrame(width: Int(width), height: Int(height), bytesPerLine: Int(outFmt.bytesperline))
    precondition(frame.count == frameSize)

    // Output: every buffer holds the pattern; consumed buffers are queued again at once, so the
    // loop always has a frame to copy.
    let outBufs = try MappedBuffers(device: out, type: V4L2_BUF_TYPE_VIDEO_OUTPUT, count: 4)
    for (i, b) in outBufs.buffers.enumerated() {
        guard b.count >= frameSize else { throw V4L2LoopFailure(description: "output buffer \(i) is \(b.count) bytes") }
        frame.withUnsafeBytes { b.copyMemory(from: $0) }
        try outBufs.queue(UInt32(i), bytesUsed: UInt32(frameSize))
    }
    let capBufs = try MappedBuffers(device: cap, type: V4L2_BUF_TYPE_VIDEO_CAPTURE, count: 4)
    for i in capBufs.buffers.indices { try capBufs.queue(UInt32(i)) }
    try outBufs.stream(true)
    try capBufs.stream(true)
    defer {
        try? capBufs.stream(false)
        try? outBufs.stream(false)
    }
    say("v4l2-loop: streaming \(outPath) -> \(capPath) input \(input), 640x480 RGB24, \(frameSize) bytes/frame")

    let start = monotonicNanos()
    let deadline = start + UInt64(timeoutSeconds) * 1_000_000_000
    var captured = 0
    var identical = 0
    var firstIdentical = -1
    var requeuedOutput = 0
    var firstMismatchAt = -1
    while identical < wantMatches, monotonicNanos() < deadline {
        var fds = [pollfd(fd: cap.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: out.fd, events: Int16(POLLOUT), revents: 0)]
        let ready = try systemCall("poll") { poll(&fds, nfds_t(fds.count), 1000) }
        if ready == 0 { continue }
        if fds[0].revents & Int16(POLLERR) != 0 || fds[1].revents & Int16(POLLERR) != 0 {
            throw V4L2LoopFailure(description: "poll reported POLLERR (streaming stopped?)")
        }
        if fds[1].revents & Int16(POLLOUT) != 0, let b = try outBufs.dequeue() {
            try outBufs.queue(b.index, bytesUsed: UInt32(frameSize))
            requeuedOutput += 1
        }
        if fds[0].revents & Int16(POLLIN) != 0, let b = try capBufs.dequeue() {
            let data = capBufs.buffers[Int(b.index)]
            let same = Int(b.bytesused) == frameSize && frame.withUnsafeBytes { memcmp($0.baseAddress!, data.baseAddress!, frameSize) == 0 }
            if same {
                identical += 1
                if firstIdentical < 0 { firstIdentical = captured }
            } else if firstMismatchAt < 0 {
                firstMismatchAt = captured
                let n = min(frameSize, Int(b.bytesused))
                let diff = frame.withUnsafeBytes { differingBytes($0.baseAddress!, UnsafeRawPointer(data.baseAddress!), count: n) }
                say("v4l2-loop: frame \(captured) differs (bytesused \(b.bytesused), \(diff + frameSize - n) bytes differ)")
            }
            captured += 1
            try capBufs.queue(b.index)
        }
    }
    let elapsed = monotonicNanos() - start
    let summary = "\(captured) frames captured in \(formatMillis(elapsed)) ms, \(identical) byte-identical to the written frame (first at #\(firstIdentical)), \(requeuedOutput) output buffers recycled"
    if identical >= 1 {
        say("OK v4l2-loop: \(summary)")
        return 0
    }
    say("FAIL v4l2-loop: \(summary)")
    return 1
}
