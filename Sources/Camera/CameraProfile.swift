import Foundation

/// How a camera model is captured: which devices it applies to, the input, pixel format, size and
/// frame rate to ask for. Loaded from `Devices/cameras/*.json` (see `Devices/cameras/README.md`).
public struct CameraProfile: Sendable, Equatable, Codable {
    /// The profile's name; equals the file name without `.json`.
    public var name: String
    /// Free text for people.
    public var description: String
    /// Applies to devices of this kernel driver (`vivid`, `uvcvideo`); nil: any driver.
    public var matchDriver: String?
    /// Applies to devices whose card name contains this text; nil: any card.
    public var matchCard: String?
    /// The input to select (`VIDIOC_S_INPUT`); nil leaves the driver's choice.
    public var input: Int?
    /// Preferred pixel format; libv4l2 converts to it when the device lacks it.
    public var pixelFormat: PixelFormat
    /// Requested width (the driver may pick the nearest size it has).
    public var width: Int
    /// Requested height.
    public var height: Int
    /// Requested frames per second (`VIDIOC_S_PARM`); drivers without frame-rate control ignore it.
    public var fps: Int
    /// mmap buffers in the ring.
    public var buffers: Int
    /// No frame for this long is an error (``CameraError/timeout(device:seconds:)``).
    public var frameTimeoutMillis: Int

    /// Creates a profile.
    public init(name: String, description: String = "", matchDriver: String? = nil, matchCard: String? = nil, input: Int? = nil,
                pixelFormat: PixelFormat = .yuyv, width: Int = 640, height: Int = 480, fps: Int = 30, buffers: Int = 4,
                frameTimeoutMillis: Int = 2000) {
        self.name = name
        self.description = description
        self.matchDriver = matchDriver
        self.matchCard = matchCard
        self.input = input
        self.pixelFormat = pixelFormat
        self.width = width
        self.height = height
        self.fps = fps
        self.buffers = buffers
        self.frameTimeoutMillis = frameTimeoutMillis
    }

    /// The profile used when none matches: YUYV 640x480 at 30 fps, 4 buffers.
    public static let fallback = CameraProfile(name: "fallback", description: "built-in default")

    /// Where installed camera profiles live.
    public static let installedDirectory = "/usr/share/kiosk-agent/cameras"

    /// Whether the profile applies to `device`.
    public func applies(to device: CameraDevice) -> Bool {
        if let d = matchDriver, d != device.driver { return false }
        if let c = matchCard, !device.identity.card.contains(c) { return false }
        return true
    }

    /// How specific the match is (driver and card > card > driver > none).
    var specificity: Int { (matchCard == nil ? 0 : 2) + (matchDriver == nil ? 0 : 1) }

    /// The most specific profile of `profiles` applying to `device` (ties: the first by name),
    /// or ``fallback``.
    public static func best(for device: CameraDevice, in profiles: [CameraProfile]) -> CameraProfile {
        profiles.filter { $0.applies(to: device) }.max { a, b in
            a.specificity != b.specificity ? a.specificity < b.specificity : a.name > b.name
        } ?? fallback
    }

    // MARK: Loading

    static let topFields = ["name", "description", "match", "input", "pixel_format", "width", "height", "fps", "buffers", "frame_timeout_ms"]
    static let matchFields = ["driver", "card"]

    /// Reads one profile file; the `name` must equal the file name without `.json`.
    public static func load(path: String) throws(CameraError) -> CameraProfile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .profile(file: path, field: "", message: "cannot be read")
        }
        let p = try parse(data, source: path)
        let base = (path as NSString).lastPathComponent
        guard base == p.name + ".json" else {
            throw .profile(file: path, field: "name", message: "is \"\(p.name)\" but the file is named \(base); name the file \(p.name).json")
        }
        return p
    }

    /// Reads every `*.json` of a directory, sorted by name.
    public static func loadAll(directory: String) throws(CameraError) -> [CameraProfile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        } catch {
            throw .profile(file: directory, field: "", message: "cannot list the camera profile directory: \(error.localizedDescription)")
        }
        var out: [CameraProfile] = []
        for n in names { out.append(try load(path: (directory as NSString).appendingPathComponent(n))) }
        return out
    }

    /// Parses a profile document; `source` names it in errors. Unknown fields are errors naming the field.
    public static func parse(_ data: Data, source: String) throws(CameraError) -> CameraProfile {
        let any: Any
        do {
            any = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw .profile(file: source, field: "", message: "is not valid JSON")
        }
        guard let obj = any as? [String: Any] else { throw .profile(file: source, field: "", message: "is not a JSON object") }
        func err(_ f: String, _ m: String) -> CameraError { .profile(file: source, field: f, message: m) }
        for k in obj.keys.sorted() where !topFields.contains(k) {
            throw err(k, "unknown field (allowed: \(topFields.joined(separator: ", ")))")
        }
        func string(_ k: String, in o: [String: Any], path: String, required: Bool) throws(CameraError) -> String? {
            guard let v = o[k] else {
                if required { throw err(path, "missing") }
                return nil
            }
            guard let s = v as? String else { throw err(path, "expected a string") }
            return s
        }
        func int(_ k: String, default d: Int?, range: ClosedRange<Int>) throws(CameraError) -> Int? {
            guard let v = obj[k] else { return d }
            guard !(v is String), let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded() else {
                throw err(k, "expected an integer")
            }
            guard range.contains(n.intValue) else { throw err(k, "\(n.intValue) is outside \(range.lowerBound)...\(range.upperBound)") }
            return n.intValue
        }
        let name = try string("name", in: obj, path: "name", required: true)!
        guard !name.isEmpty else { throw err("name", "is empty") }
        var p = CameraProfile(name: name, description: try string("description", in: obj, path: "description", required: false) ?? "")
        if let m = obj["match"] {
            guard let mo = m as? [String: Any] else { throw err("match", "expected an object") }
            for k in mo.keys.sorted() where !matchFields.contains(k) {
                throw err("match.\(k)", "unknown field (allowed: \(matchFields.joined(separator: ", ")))")
            }
            p.matchDriver = try string("driver", in: mo, path: "match.driver", required: false)
            p.matchCard = try string("card", in: mo, path: "match.card", required: false)
        }
        p.input = try int("input", default: nil, range: 0...255)
        if let f = try string("pixel_format", in: obj, path: "pixel_format", required: false) {
            guard let pf = PixelFormat(name: f) else {
                throw err("pixel_format", "\"\(f)\" is not one of \(PixelFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            p.pixelFormat = pf
        }
        p.width = try int("width", default: 640, range: 16...8192)!
        p.height = try int("height", default: 480, range: 16...8192)!
        p.fps = try int("fps", default: 30, range: 1...240)!
        p.buffers = try int("buffers", default: 4, range: 2...32)!
        p.frameTimeoutMillis = try int("frame_timeout_ms", default: 2000, range: 10...600_000)!
        return p
    }
}
