import CKioskShims

/// The pixel layouts the camera module reads (what libv4l2 converts to when the device has none).
public enum PixelFormat: String, Sendable, Hashable, CaseIterable, Codable {
    /// Packed 4:2:2 Y0 U Y1 V (V4L2 `YUYV`).
    case yuyv = "YUYV"
    /// Packed 4:2:2 U Y0 V Y1 (V4L2 `UYVY`).
    case uyvy = "UYVY"
    /// 8-bit gray (V4L2 `GREY`).
    case grey = "GREY"
    /// 8-bit R, G, B (V4L2 `RGB3`).
    case rgb24 = "RGB3"
    /// 8-bit B, G, R (V4L2 `BGR3`).
    case bgr24 = "BGR3"

    /// The V4L2 fourcc.
    public var fourcc: UInt32 {
        switch self {
        case .yuyv: KA_V4L2_PIX_FMT_YUYV
        case .uyvy: KA_V4L2_PIX_FMT_UYVY
        case .grey: KA_V4L2_PIX_FMT_GREY
        case .rgb24: KA_V4L2_PIX_FMT_RGB24
        case .bgr24: KA_V4L2_PIX_FMT_BGR24
        }
    }

    /// The format for a fourcc, if the module reads it.
    public init?(fourcc: UInt32) {
        guard let f = PixelFormat.allCases.first(where: { $0.fourcc == fourcc }) else { return nil }
        self = f
    }

    /// Parses `YUYV`, `RGB3`/`RGB24`, `BGR3`/`BGR24`, `GREY`/`GRAY`, `UYVY` (case-insensitive).
    public init?(name: String) {
        switch name.uppercased() {
        case "YUYV": self = .yuyv
        case "UYVY": self = .uyvy
        case "GREY", "GRAY": self = .grey
        case "RGB3", "RGB24", "RGB": self = .rgb24
        case "BGR3", "BGR24", "BGR": self = .bgr24
        default: return nil
        }
    }

    /// Bytes per pixel in a packed row (2 for 4:2:2).
    public var bytesPerPixel: Int {
        switch self {
        case .yuyv, .uyvy: 2
        case .grey: 1
        case .rgb24, .bgr24: 3
        }
    }

    /// A fourcc as four characters (`YUYV`, `MJPG`).
    public static func fourccString(_ fourcc: UInt32) -> String {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: fourcc >> (8 * $0)) }
        return String(decoding: bytes.map { (0x20...0x7e).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}

/// An 8-bit gray image, row-major, `pixels.count == width * height` (what the liveness checks read).
public struct LumaImage: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// `width * height` gray values, row after row.
    public var pixels: [UInt8]

    /// Creates an image; `pixels` must hold `width * height` values.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height, "LumaImage: \(pixels.count) pixels for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// One captured (or replayed) frame: its bytes in `format`, rows `bytesPerLine` apart.
public struct Frame: Sendable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// The layout of `data`.
    public var format: PixelFormat
    /// Bytes from one row to the next (at least `width * format.bytesPerPixel`).
    public var bytesPerLine: Int
    /// The pixel data, `bytesPerLine * height` bytes at least.
    public var data: [UInt8]
    /// The driver's frame counter (V4L2 `sequence`) or the replay index; gaps mean dropped frames.
    public var sequence: UInt32
    /// Capture time, monotonic clock, nanoseconds.
    public var timestampNanos: UInt64

    /// Creates a frame; `bytesPerLine` defaults to the packed row size.
    public init(width: Int, height: Int, format: PixelFormat, bytesPerLine: Int? = nil, data: [UInt8], sequence: UInt32 = 0, timestampNanos: UInt64 = 0) {
        self.width = width
        self.height = height
        self.format = format
        self.bytesPerLine = bytesPerLine ?? width * format.bytesPerPixel
        self.data = data
        self.sequence = sequence
        self.timestampNanos = timestampNanos
    }

    /// 8-bit luma: Y of YUYV/UYVY as is, BT.601 `(77 R + 150 G + 29 B) >> 8` for RGB/BGR, GREY as is.
    public func luma() -> LumaImage {
        let w = width, h = height, bpl = bytesPerLine, fmt = format
        var out = [UInt8](repeating: 0, count: w * h)
        guard data.count >= bpl * (h - 1) + w * fmt.bytesPerPixel || h == 0 else {
            return LumaImage(width: w, height: h, pixels: out)
        }
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                for y in 0..<h {
                    let row = s + y * bpl
                    let o = d + y * w
                    switch fmt {
                    case .grey:
                        for x in 0..<w { o[x] = row[x] }
                    case .yuyv:
                        for x in 0..<w { o[x] = row[2 * x] }
                    case .uyvy:
                        for x in 0..<w { o[x] = row[2 * x + 1] }
                    case .rgb24, .bgr24:
                        let (ri, bi) = fmt == .rgb24 ? (0, 2) : (2, 0)
                        for x in 0..<w {
                            let p = row + 3 * x
                            o[x] = UInt8((77 * UInt32(p[ri]) + 150 * UInt32(p[1]) + 29 * UInt32(p[bi])) >> 8)
                        }
                    }
                }
            }
        }
        return LumaImage(width: w, height: h, pixels: out)
    }

    /// Packed RGB24 (`width * height * 3` bytes): YUV converted with BT.601 (limited range), gray replicated.
    public func rgb() -> [UInt8] {
        let w = width, h = height, bpl = bytesPerLine, fmt = format
        var out = [UInt8](repeating: 0, count: w * h * 3)
        guard data.count >= bpl * (h - 1) + w * fmt.bytesPerPixel || h == 0 else { return out }
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                for y in 0..<h {
                    let row = s + y * bpl
                    let o = d + y * w * 3
                    for x in 0..<w {
                        let q = o + 3 * x
                        switch fmt {
                        case .grey:
                            q[0] = row[x]; q[1] = row[x]; q[2] = row[x]
                        case .rgb24:
                            q[0] = row[3 * x]; q[1] = row[3 * x + 1]; q[2] = row[3 * x + 2]
                        case .bgr24:
                            q[0] = row[3 * x + 2]; q[1] = row[3 * x + 1]; q[2] = row[3 * x]
                        case .yuyv, .uyvy:
                            let pair = row + 4 * (x / 2)
                            let (yv, u, v): (UInt8, UInt8, UInt8) = fmt == .yuyv
                                ? (row[2 * x], pair[1], pair[3]) : (row[2 * x + 1], pair[0], pair[2])
                            let c = 298 * (Int(yv) - 16), dd = Int(u) - 128, e = Int(v) - 128
                            q[0] = clamp8((c + 409 * e + 128) >> 8)
                            q[1] = clamp8((c - 100 * dd - 208 * e + 128) >> 8)
                            q[2] = clamp8((c + 516 * dd + 128) >> 8)
                        }
                    }
                }
            }
        }
        return out
    }
}

@inline(__always)
func clamp8(_ v: Int) -> UInt8 { UInt8(clamping: v) }
