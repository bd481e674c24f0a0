import Foundation

/// An 8-bit grayscale image, row-major, one byte per pixel (the shape of the camera's luma plane).
public struct GrayImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// `width * height` luma values, row by row from the top-left.
    public var pixels: [UInt8]

    /// Creates an image from its pixels; returns nil if the buffer does not match the size.
    public init?(width: Int, height: Int, pixels: [UInt8]) {
        guard width > 0, height > 0, pixels.count == width * height else { return nil }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Creates an image filled with one value.
    public init(width: Int, height: Int, fill: UInt8 = 0) {
        self.width = max(1, width)
        self.height = max(1, height)
        self.pixels = [UInt8](repeating: fill, count: self.width * self.height)
    }

    /// The pixel at (x, y); coordinates are clamped to the image.
    @inlinable public subscript(x: Int, y: Int) -> UInt8 {
        get { pixels[min(max(y, 0), height - 1) * width + min(max(x, 0), width - 1)] }
        set {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            pixels[y * width + x] = newValue
        }
    }

    /// The image's full rectangle.
    public var bounds: PixelRect { PixelRect(x: 0, y: 0, width: width, height: height) }

    /// A copy of the region `rect` (clipped to the image); nil if nothing is left after clipping.
    public func cropped(to rect: PixelRect) -> GrayImage? {
        let r = rect.intersection(bounds)
        guard r.width > 0, r.height > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: r.width * r.height)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<r.height {
                    let s = (r.y + y) * width + r.x
                    for x in 0..<r.width { dst[y * r.width + x] = src[s + x] }
                }
            }
        }
        return GrayImage(width: r.width, height: r.height, pixels: out)
    }

    /// Resizes with bilinear interpolation on pixel centres (OpenCV's INTER_LINEAR convention).
    public func resized(width w: Int, height h: Int) -> GrayImage {
        let w = max(1, w), h = max(1, h)
        if w == width && h == height { return self }
        var out = [UInt8](repeating: 0, count: w * h)
        let sx = Double(width) / Double(w), sy = Double(height) / Double(h)
        // Precompute horizontal taps (fixed point, 11 bits like OpenCV).
        var x0 = [Int](repeating: 0, count: w), x1 = [Int](repeating: 0, count: w), ax = [Int32](repeating: 0, count: w)
        for x in 0..<w {
            var fx = (Double(x) + 0.5) * sx - 0.5
            if fx < 0 { fx = 0 }
            var ix = Int(fx)
            var f = fx - Double(ix)
            if ix >= width - 1 { ix = width - 1; f = 0 }
            x0[x] = ix; x1[x] = min(ix + 1, width - 1); ax[x] = Int32((f * 2048).rounded())
        }
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    var fy = (Double(y) + 0.5) * sy - 0.5
                    if fy < 0 { fy = 0 }
                    var iy = Int(fy)
                    var f = fy - Double(iy)
                    if iy >= height - 1 { iy = height - 1; f = 0 }
                    let ay = Int32((f * 2048).rounded())
                    let r0 = iy * width, r1 = min(iy + 1, height - 1) * width
                    for x in 0..<w {
                        let a = ax[x]
                        let t0 = Int32(src[r0 + x0[x]]) * (2048 - a) + Int32(src[r0 + x1[x]]) * a
                        let t1 = Int32(src[r1 + x0[x]]) * (2048 - a) + Int32(src[r1 + x1[x]]) * a
                        let v = (Int64(t0) * Int64(2048 - ay) + Int64(t1) * Int64(ay) + (1 << 21)) >> 22
                        dst[y * w + x] = UInt8(truncatingIfNeeded: min(max(v, 0), 255))
                    }
                }
            }
        }
        return GrayImage(width: w, height: h, pixels: out) ?? self
    }

    /// Mean luma in 0…255 over `rect` (the whole image if nil).
    public func mean(in rect: PixelRect? = nil) -> Double {
        let r = (rect ?? bounds).intersection(bounds)
        guard r.width > 0, r.height > 0 else { return 0 }
        var sum = 0
        for y in r.y..<(r.y + r.height) {
            let row = y * width
            for x in r.x..<(r.x + r.width) { sum += Int(pixels[row + x]) }
        }
        return Double(sum) / Double(r.width * r.height)
    }
}

/// An integer rectangle in pixel coordinates (origin top-left).
public struct PixelRect: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// Left edge.
    public var x: Int
    /// Top edge.
    public var y: Int
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int

    /// Creates a rectangle.
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }

    /// Area in pixels (0 for empty rectangles).
    public var area: Int { max(0, width) * max(0, height) }
    /// Centre x.
    public var midX: Double { Double(x) + Double(width) / 2 }
    /// Centre y.
    public var midY: Double { Double(y) + Double(height) / 2 }

    /// The overlap of two rectangles (zero-sized when they do not overlap).
    public func intersection(_ o: PixelRect) -> PixelRect {
        let x0 = max(x, o.x), y0 = max(y, o.y)
        let x1 = min(x + width, o.x + o.width), y1 = min(y + height, o.y + o.height)
        return PixelRect(x: x0, y: y0, width: max(0, x1 - x0), height: max(0, y1 - y0))
    }

    /// Intersection over union in 0…1.
    public func iou(_ o: PixelRect) -> Double {
        let i = intersection(o).area
        let u = area + o.area - i
        return u > 0 ? Double(i) / Double(u) : 0
    }

    /// The rectangle grown by `fraction` of its size on every side.
    public func expanded(by fraction: Double) -> PixelRect {
        let dx = Int((Double(width) * fraction).rounded()), dy = Int((Double(height) * fraction).rounded())
        return PixelRect(x: x - dx, y: y - dy, width: width + 2 * dx, height: height + 2 * dy)
    }

    /// `x y w h`.
    public var description: String { "\(x) \(y) \(width) \(height)" }
}
