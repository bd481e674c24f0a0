import Foundation

/// A small grey picture of the camera for the liveness screen's live preview.
///
/// Only ever held in memory: the server encodes it on request (``BMPEncoder``) with
/// `Cache-Control: no-store`, and the page shows it without keeping it.
public struct PreviewFrame: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// 8-bit grey, row-major, top row first (`width * height` bytes).
    public var pixels: [UInt8]

    /// Creates a frame; nil when the sizes do not match the pixels.
    public init?(width: Int, height: Int, pixels: [UInt8]) {
        guard width > 0, height > 0, pixels.count == width * height else { return nil }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// `pixels` (grey, `width × height`) reduced by the smallest whole factor that makes it at
    /// most `maxWidth` wide, each output pixel the mean of its block; nil for a bad size.
    public static func downscaled(width: Int, height: Int, pixels: [UInt8], maxWidth: Int = 320) -> PreviewFrame? {
        guard width > 0, height > 0, maxWidth > 0, pixels.count >= width * height else { return nil }
        let k = max(1, (width + maxWidth - 1) / maxWidth)
        let ow = width / k, oh = height / k
        guard ow > 0, oh > 0 else { return nil }
        if k == 1 { return PreviewFrame(width: width, height: height, pixels: Array(pixels[0..<(width * height)])) }
        var out = [UInt8](repeating: 0, count: ow * oh)
        let area = UInt32(k * k)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum: UInt32 = 0
                        for y in (oy * k)..<(oy * k + k) {
                            let row = y * width + ox * k
                            for x in 0..<k { sum += UInt32(src[row + x]) }
                        }
                        dst[oy * ow + ox] = UInt8((sum + area / 2) / area)
                    }
                }
            }
        }
        return PreviewFrame(width: ow, height: oh, pixels: out)
    }
}

/// Encodes grey pictures as Windows BMP (8 bits per pixel, 256-entry grey palette, bottom-up
/// rows padded to 4 bytes): no compression, so trivial to write and shown by every browser.
public enum BMPEncoder {
    /// Size of the file and info headers plus the palette.
    static let headerSize = 14 + 40 + 256 * 4

    /// The BMP file for `frame`.
    public static func encode(_ frame: PreviewFrame) -> Data {
        let rowBytes = (frame.width + 3) & ~3
        let imageSize = rowBytes * frame.height
        var out = [UInt8]()
        out.reserveCapacity(headerSize + imageSize)
        func u16(_ v: Int) { out.append(UInt8(v & 0xff)); out.append(UInt8((v >> 8) & 0xff)) }
        func u32(_ v: Int) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> s) & 0xff)) } }
        // BITMAPFILEHEADER
        out += [0x42, 0x4D]  // "BM"
        u32(headerSize + imageSize)
        u16(0); u16(0)
        u32(headerSize)
        // BITMAPINFOHEADER
        u32(40)
        u32(frame.width)
        u32(frame.height)  // positive: bottom-up rows
        u16(1)  // planes
        u16(8)  // bits per pixel
        u32(0)  // BI_RGB
        u32(imageSize)
        u32(2835); u32(2835)  // 72 dpi
        u32(256); u32(0)
        for g in 0..<256 { out += [UInt8(g), UInt8(g), UInt8(g), 0] }
        let pad = [UInt8](repeating: 0, count: rowBytes - frame.width)
        for y in stride(from: frame.height - 1, through: 0, by: -1) {
            out += frame.pixels[(y * frame.width)..<((y + 1) * frame.width)]
            out += pad
        }
        return Data(out)
    }
}

/// Where the screen's live camera preview comes from (the liveness step's own camera frames).
public protocol ScreenPreviewSource: Sendable {
    /// The newest downscaled frame while a liveness session runs; nil otherwise (the server
    /// answers 404, and the page shows its placeholder).
    func previewFrame() -> PreviewFrame?
}
