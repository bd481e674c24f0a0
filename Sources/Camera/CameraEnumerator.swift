#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import CV4L2
import Foundation
import KioskSys

/// Which camera: the driver's card name and bus info (plus the USB serial when the device has
/// one). Stable across boots, unlike `/dev/videoN`. String form `card@bus_info[#serial]`.
public struct CameraIdentity: Sendable, Hashable, CustomStringConvertible, Codable {
    /// `VIDIOC_QUERYCAP` card (`vivid`, `HD Webcam C270`).
    public var card: String
    /// `VIDIOC_QUERYCAP` bus_info (`platform:vivid-000`, `usb-0000:00:14.0-1`).
    public var busInfo: String
    /// The USB serial number from sysfs, when the device has one.
    public var serial: String?

    /// Creates an identity.
    public init(card: String, busInfo: String, serial: String? = nil) {
        self.card = card
        self.busInfo = busInfo
        self.serial = serial.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Parses `card@bus_info[#serial]` (the last `@` splits card from bus info, a `#` after it
    /// starts the serial); nil when there is no `@` or the card is empty.
    public init?(_ text: String) {
        guard let at = text.lastIndex(of: "@") else { return nil }
        let card = String(text[..<at])
        var bus = String(text[text.index(after: at)...])
        var serial: String?
        if let hash = bus.firstIndex(of: "#") {
            serial = String(bus[bus.index(after: hash)...])
            bus = String(bus[..<hash])
        }
        guard !card.isEmpty else { return nil }
        self.init(card: card, busInfo: bus, serial: serial)
    }

    /// `card@bus_info[#serial]`.
    public var description: String { "\(card)@\(busInfo)" + (serial.map { "#\($0)" } ?? "") }

    /// Whether a device with identity `other` is the camera this identity names: the same card
    /// and, when this identity has a serial, the same serial (a camera moved to another USB port
    /// keeps its serial); otherwise the same bus info. An empty bus info matches any.
    public func matches(_ other: CameraIdentity) -> Bool {
        guard card == other.card else { return false }
        if let serial { return serial == other.serial }
        return busInfo.isEmpty || busInfo == other.busInfo
    }
}

/// One V4L2 video node as `VIDIOC_QUERYCAP` describes it.
public struct CameraDevice: Sendable, Hashable, Codable {
    /// `/dev/videoN` (valid only until the next replug or boot: use ``identity``).
    public var path: String
    /// Card, bus info, serial.
    public var identity: CameraIdentity
    /// The kernel driver (`vivid`, `uvcvideo`).
    public var driver: String
    /// The node's capabilities (`device_caps`, or `capabilities` on old drivers).
    public var capabilities: UInt32
    /// The node captures video (`V4L2_CAP_VIDEO_CAPTURE`) and streams.
    public var isCapture: Bool { capabilities & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0 }
    /// The node is a video output (`V4L2_CAP_VIDEO_OUTPUT`), e.g. vivid's HDMI out.
    public var isOutput: Bool { capabilities & UInt32(V4L2_CAP_VIDEO_OUTPUT) != 0 }
    /// The node supports mmap streaming (`V4L2_CAP_STREAMING`).
    public var canStream: Bool { capabilities & UInt32(V4L2_CAP_STREAMING) != 0 }

    /// Creates a device description.
    public init(path: String, identity: CameraIdentity, driver: String, capabilities: UInt32) {
        self.path = path
        self.identity = identity
        self.driver = driver
        self.capabilities = capabilities
    }
}

/// Finds video nodes under `/dev` (default) by `VIDIOC_QUERYCAP`.
public enum CameraEnumerator {
    /// Every `/dev/video*` node that answers `VIDIOC_QUERYCAP`, sorted by node number; capture
    /// and output nodes both (filter with ``CameraDevice/isCapture``). Nodes that cannot be opened
    /// (permissions, vanished) are skipped.
    public static func listAll(devDirectory: String = "/dev") -> [CameraDevice] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: devDirectory)) ?? []
        let nodes = names.filter { $0.hasPrefix("video") && Int($0.dropFirst(5)) != nil }
            .sorted { Int($0.dropFirst(5))! < Int($1.dropFirst(5))! }
        return nodes.compactMap { try? query(path: devDirectory + "/" + $0) }
    }

    /// Capture nodes that stream (the cameras).
    public static func list(devDirectory: String = "/dev") -> [CameraDevice] {
        listAll(devDirectory: devDirectory).filter { $0.isCapture && $0.canStream }
    }

    /// The capture node for `identity`; ``CameraError/notFound(_:)`` when none matches.
    public static func find(_ identity: CameraIdentity, devDirectory: String = "/dev") throws(CameraError) -> CameraDevice {
        guard let d = list(devDirectory: devDirectory).first(where: { identity.matches($0.identity) }) else {
            throw .notFound(identity.description)
        }
        return d
    }

    /// Resolves what a technician typed: a path (`/dev/video0`), an identity (`card@bus[#serial]`)
    /// or a bare card name; `nil` picks the first camera. `output` looks for output nodes instead.
    public static func resolve(_ spec: String?, output: Bool = false) throws(CameraError) -> CameraDevice {
        let candidates = listAll().filter { (output ? $0.isOutput : $0.isCapture) && $0.canStream }
        guard let spec, !spec.isEmpty else {
            guard let first = candidates.first else { throw .notFound(output ? "any video output" : "any camera") }
            return first
        }
        if spec.hasPrefix("/") {
            let d = try query(path: spec)
            guard output ? d.isOutput : d.isCapture else {
                throw .unsupported(device: spec, reason: output ? "not a video output node" : "not a video capture node")
            }
            return d
        }
        let identity = CameraIdentity(spec) ?? CameraIdentity(card: spec, busInfo: "")
        guard let d = candidates.first(where: { identity.matches($0.identity) }) else { throw .notFound(spec) }
        return d
    }

    /// `VIDIOC_QUERYCAP` on one node (plain open/ioctl: no libv4l2 set-up), plus its sysfs serial.
    public static func query(path: String) throws(CameraError) -> CameraDevice {
        let fd = try cameraCall("open", device: path) { ka_open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0) }
        defer { close(fd) }
        var cap = v4l2_capability()
        try cameraCall("VIDIOC_QUERYCAP", device: path) { ka_v4l2_querycap_raw(fd, &cap) }
        let caps = cap.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities
        let card = cString(&cap.card), bus = cString(&cap.bus_info), driver = cString(&cap.driver)
        let node = (path as NSString).lastPathComponent
        return CameraDevice(path: path, identity: CameraIdentity(card: card, busInfo: bus, serial: sysfsSerial(node: node)),
                            driver: driver, capabilities: caps)
    }

    /// The USB serial of the device behind `videoN`: `serial` of the USB device (the interface's
    /// parent) or of the node's device itself. nil for devices without one (vivid).
    static func sysfsSerial(node: String) -> String? {
        let base = "/sys/class/video4linux/\(node)/device"
        for candidate in [base + "/serial", base + "/../serial"] {
            if let s = try? String(contentsOfFile: candidate, encoding: .utf8) {
                let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
                if !t.isEmpty { return t }
            }
        }
        return nil
    }
}

/// A fixed-size C char array (a tuple in Swift) as a String, up to the first NUL.
func cString<T>(_ tuple: inout T) -> String {
    withUnsafeBytes(of: &tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Monotonic clock in nanoseconds.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension CameraEnumerator {
    /// ``find(_:devDirectory:)`` on a thread of its own (it opens device nodes and issues
    /// `VIDIOC_QUERYCAP`): for async callers, which must not block Swift's cooperative pool.
    public static func findOffPool(_ identity: CameraIdentity) async throws -> CameraDevice {
        try await onOwnThread(name: "camera-find") { () throws(CameraError) -> CameraDevice in try find(identity) }
    }

    /// ``list(devDirectory:)`` on a thread of its own.
    public static func listOffPool() async -> [CameraDevice] {
        (try? await onOwnThread(name: "camera-list") { () throws(CameraError) -> [CameraDevice] in list() }) ?? []
    }
}

/// Runs `body` on a new thread and resumes the caller with its result.
func onOwnThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws(CameraError) -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
        let t = Thread {
            do throws(CameraError) {
                c.resume(returning: try body())
            } catch {
                c.resume(throwing: error)
            }
        }
        t.name = name
        t.start()
    }
}
