import Foundation

/// Errors reading or writing PGM files.
public enum PGMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read or written.
    case io(String)
    /// The bytes are not a binary 8-bit PGM (P5, maxval ≤ 255).
    case malformed(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .io(let s): "PGM I/O: \(s)"
        case .malformed(let s): "not an 8-bit binary PGM: \(s)"
        }
    }
}

extension GrayImage {
    /// Decodes a binary PGM (P5, maxval ≤ 255; comments allowed in the header).
    public init(pgm data: Data) throws(PGMError) {
        let b = [UInt8](data)
        var i = 0
        func token() -> String? {
            while i < b.count {
                if b[i] == UInt8(ascii: "#") { while i < b.count && b[i] != 10 { i += 1 } } else if b[i] == 32 || (9...13).contains(b[i]) { i += 1 } else { break }
            }
            let s = i
            while i < b.count, !(b[i] == 32 || (9...13).contains(b[i])) { i += 1 }
            return i > s ? String(decoding: b[s..<i], as: UTF8.self) : nil
        }
        guard token() == "P5" else { throw .malformed("magic is not P5") }
        guard let w = token().flatMap({ Int($0) }), let h = token().flatMap({ Int($0) }), let maxval = token().flatMap({ Int($0) }),
              w > 0, h > 0, w <= 16384, h <= 16384, (1...255).contains(maxval) else { throw .malformed("header") }
        i += 1 // one whitespace byte after maxval
        guard b.count - i >= w * h else { throw .malformed("truncated: \(b.count - i) of \(w * h) bytes") }
        var px = Array(b[i..<(i + w * h)])
        if maxval != 255 { for k in px.indices { px[k] = UInt8(min(255, Int(px[k]) * 255 / maxval)) } }
        guard let img = GrayImage(width: w, height: h, pixels: px) else { throw .malformed("size") }
        self = img
    }

    /// Reads a binary PGM file.
    public init(pgmFile path: String) throws(PGMError) {
        guard let d = FileManager.default.contents(atPath: path) else { throw .io("cannot read \(path)") }
        try self.init(pgm: d)
    }

    /// The image encoded as binary PGM (P5).
    public var pgmData: Data {
        var d = Data("P5\n\(width) \(height)\n255\n".utf8)
        d.append(contentsOf: pixels)
        return d
    }

    /// Writes the image as a binary PGM file.
    public func writePGM(to path: String) throws(PGMError) {
        do { try pgmData.write(to: URL(fileURLWithPath: path), options: .atomic) } catch { throw .io("\(path): \(error)") }
    }
}
