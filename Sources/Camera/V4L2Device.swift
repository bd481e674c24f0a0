#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CV4L2
import KioskSys

/// A libv4l2 file descriptor with typed ioctls (EINTR retried by the errno helper) and its mmap
/// buffer ring. Used from one thread at a time (the capture or feed thread).
final class V4L2Handle {
    let path: String
    let fd: Int32
    let type: v4l2_buf_type
    private(set) var buffers: [UnsafeMutableRawBufferPointer] = []
    private var streaming = false
    private var closed = false

    /// `v4l2_open(path, O_RDWR | O_NONBLOCK)`: libv4l2 then converts formats the device lacks.
    init(path: String, type: v4l2_buf_type) throws(CameraError) {
        self.path = path
        self.type = type
        fd = try cameraCall("v4l2_open", device: path) { ka_v4l2_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC) }
    }

    deinit { close() }

    /// `v4l2_ioctl(fd, request, &arg)`; failures are ``CameraError/system(call:device:errno:)`` naming `name`.
    func ioctl<T>(_ request: UInt, _ name: String, _ arg: inout T) throws(CameraError) {
        let fd = self.fd, path = self.path
        let r: Result<Void, CameraError> = withUnsafeMutablePointer(to: &arg) { ptr in
            do throws(CameraError) {
                try cameraCall(name, device: path) { ka_v4l2_ioctl(fd, request, ptr) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try r.get()
    }

    /// `VIDIOC_QUERYCAP`: the node's capabilities (device_caps when present).
    func capabilities() throws(CameraError) -> UInt32 {
        var cap = v4l2_capability()
        try ioctl(KA_VIDIOC_QUERYCAP, "VIDIOC_QUERYCAP", &cap)
        return cap.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities
    }

    /// `VIDIOC_S_FMT` (progressive); returns what the driver (or libv4l2) chose.
    func setFormat(width: Int, height: Int, fourcc: UInt32) throws(CameraError) -> v4l2_pix_format {
        var fmt = v4l2_format()
        fmt.type = type.rawValue
        fmt.fmt.pix.width = UInt32(width)
        fmt.fmt.pix.height = UInt32(height)
        fmt.fmt.pix.pixelformat = fourcc
        fmt.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        try ioctl(KA_VIDIOC_S_FMT, "VIDIOC_S_FMT", &fmt)
        return fmt.fmt.pix
    }

    /// `VIDIOC_REQBUFS` + `VIDIOC_QUERYBUF` + `v4l2_mmap` for `count` buffers.
    func mapBuffers(count: Int) throws(CameraError) {
        var req = v4l2_requestbuffers()
        req.count = UInt32(count)
        req.type = type.rawValue
        req.memory = V4L2_MEMORY_MMAP.rawValue
        try ioctl(KA_VIDIOC_REQBUFS, "VIDIOC_REQBUFS", &req)
        guard req.count > 0 else { throw .system(call: "VIDIOC_REQBUFS (0 buffers granted)", device: path, errno: ENOMEM) }
        for index in 0..<req.count {
            var buf = blank(index: index)
            try ioctl(KA_VIDIOC_QUERYBUF, "VIDIOC_QUERYBUF", &buf)
            let length = Int(buf.length)
            guard let base = ka_v4l2_mmap(fd, length, Int64(buf.m.offset)) else {
                throw .system(call: "v4l2_mmap buffer \(index)", device: path, errno: errno)
            }
            buffers.append(UnsafeMutableRawBufferPointer(start: base, count: length))
        }
    }

    func blank(index: UInt32 = 0) -> v4l2_buffer {
        var buf = v4l2_buffer()
        buf.index = index
        buf.type = type.rawValue
        buf.memory = V4L2_MEMORY_MMAP.rawValue
        return buf
    }

    /// `VIDIOC_QBUF`.
    func queue(_ index: UInt32, bytesUsed: UInt32 = 0) throws(CameraError) {
        var buf = blank(index: index)
        buf.bytesused = bytesUsed
        buf.field = V4L2_FIELD_NONE.rawValue
        try ioctl(KA_VIDIOC_QBUF, "VIDIOC_QBUF", &buf)
    }

    /// `VIDIOC_DQBUF`; nil when no buffer is ready (EAGAIN).
    func dequeue() throws(CameraError) -> v4l2_buffer? {
        var buf = blank()
        do {
            try ioctl(KA_VIDIOC_DQBUF, "VIDIOC_DQBUF", &buf)
        } catch {
            if case .system(_, _, let code) = error, code == EAGAIN { return nil }
            throw error
        }
        return buf
    }

    /// `VIDIOC_STREAMON` / `VIDIOC_STREAMOFF`.
    func stream(_ on: Bool) throws(CameraError) {
        var t = Int32(bitPattern: type.rawValue)
        if on {
            try ioctl(KA_VIDIOC_STREAMON, "VIDIOC_STREAMON", &t)
        } else {
            try ioctl(KA_VIDIOC_STREAMOFF, "VIDIOC_STREAMOFF", &t)
        }
        streaming = on
    }

    /// `poll(fd, events, timeout)`: the returned revents (0 on timeout).
    func poll(events: Int16, timeoutMillis: Int32) throws(CameraError) -> Int16 {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let n = try cameraCall("poll", device: path) { Glibc.poll(&p, 1, timeoutMillis) }
        return n == 0 ? 0 : p.revents
    }

    /// Clean stop, each step tolerant of a device that is already gone: STREAMOFF, munmap,
    /// REQBUFS 0, v4l2_close. Idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        if streaming { try? stream(false) }
        for b in buffers { _ = ka_v4l2_munmap(b.baseAddress, b.count) }
        if !buffers.isEmpty {
            var req = v4l2_requestbuffers()
            req.type = type.rawValue
            req.memory = V4L2_MEMORY_MMAP.rawValue
            try? ioctl(KA_VIDIOC_REQBUFS, "VIDIOC_REQBUFS", &req)
        }
        buffers = []
        _ = ka_v4l2_close(fd)
    }
}
