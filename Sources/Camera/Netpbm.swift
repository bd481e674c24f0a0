import Foundation

/// Binary Netpbm images (PGM `P5` gray, PPM `P6` RGB, maxval 255): what snapshots are written as
/// (any image viewer opens them) and what ``ReplaySource`` reads.
public enum Netpbm {
    /// Encodes a frame: gray formats as PGM (P5), everything else as PPM (P6, RGB).
    public static func encode(_ frame: Frame) -> [UInt8] {
        if frame.format == .grey { return encode(frame.luma()) }
        return header("P6", frame.width, frame.height) + frame.rgb()
    }

    /// Encodes a gray image as PGM (P5).
    public static func encode(_ image: LumaImage) -> [UInt8] {
        header("P5", image.width, image.height) + image.pixels
    }

    private static func header(_ magic: String, _ w: Int, _ h: Int) -> [UInt8] {
        Array("\(magic)\n\(w) \(h)\n255\n".utf8)
    }

    /// Decodes a P5 (→ ``PixelFormat/grey``) or P6 (→ ``PixelFormat/rgb24``) image; `source` names it in errors.
    public static func decode(_ bytes: [UInt8], source: String = "image") throws(CameraError) -> Frame {
        var i = 0
        func fail(_ why: String) -> CameraError { .file(path: source, reason: "not a binary PGM/PPM: \(why)") }
        func skipSpaceAndComments() {
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "#") {
                    while i < bytes.count, bytes[i] != 0x0A { i += 1 }
                } else if bytes[i] == 0x20 || (0x09...0x0D).contains(bytes[i]) {
                    i += 1
                } else {
                    return
                }
            }
        }
        func number(_ what: String) throws(CameraError) -> Int {
            skipSpaceAndComments()
            var v = 0, digits = 0
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) {
                v = v * 10 + Int(bytes[i] - 0x30)
                i += 1
                digits += 1
                if v > 1 << 20 { throw fail("\(what) too large") }
            }
            guard digits > 0 else { throw fail("missing \(what)") }
            return v
        }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P") else { throw fail("no P5/P6 magic") }
        let format: PixelFormat
        switch bytes[1] {
        case UInt8(ascii: "5"): format = .grey
        case UInt8(ascii: "6"): format = .rgb24
        default: throw fail("magic P\(Character(UnicodeScalar(bytes[1]))) (only P5 and P6 are read)")
        }
        i = 2
        let w = try number("width"), h = try number("height"), maxval = try number("maxval")
        guard w > 0, h > 0 else { throw fail("size \(w)x\(h)") }
        guard maxval == 255 else { throw fail("maxval \(maxval) (only 255 is read)") }
        guard i < bytes.count else { throw fail("no pixel data") }
        i += 1  // exactly one whitespace byte after maxval
        let need = w * h * format.bytesPerPixel
        guard bytes.count - i >= need else { throw fail("\(bytes.count - i) data bytes, \(need) needed for \(w)x\(h)") }
        return Frame(width: w, height: h, format: format, data: Array(bytes[i..<(i + need)]))
    }

    /// Reads a PGM/PPM file.
    public static func read(path: String) throws(CameraError) -> Frame {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(path: path, reason: "cannot be read")
        }
        return try decode([UInt8](data), source: path)
    }

    /// Writes a frame as PGM (gray) or PPM (anything else), atomically.
    public static func write(_ frame: Frame, path: String) throws(CameraError) {
        try write(bytes: encode(frame), path: path)
    }

    /// Writes a gray image as PGM, atomically.
    public static func write(_ image: LumaImage, path: String) throws(CameraError) {
        try write(bytes: encode(image), path: path)
    }

    private static func write(bytes: [UInt8], path: String) throws(CameraError) {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .file(path: path, reason: "cannot be written: \(error.localizedDescription)")
        }
    }
}
