import Foundation

/// Per-frame image measurements used by the quality gates and passive checks.
public enum ImageMetrics {
    /// Variance of the 4-neighbour Laplacian over `rect` (higher is sharper).
    public static func laplacianVariance(_ img: GrayImage, in rect: PixelRect) -> Double {
        let r = rect.intersection(PixelRect(x: 1, y: 1, width: img.width - 2, height: img.height - 2))
        guard r.width > 0, r.height > 0 else { return 0 }
        var s = 0.0, s2 = 0.0
        img.pixels.withUnsafeBufferPointer { p in
            let w = img.width
            for y in r.y..<(r.y + r.height) {
                for x in r.x..<(r.x + r.width) {
                    let i = y * w + x
                    let v = Double(Int(p[i - 1]) + Int(p[i + 1]) + Int(p[i - w]) + Int(p[i + w]) - 4 * Int(p[i]))
                    s += v; s2 += v * v
                }
            }
        }
        let n = Double(r.area)
        return s2 / n - (s / n) * (s / n)
    }

    /// Mean luma and the fraction of clipped pixels (≤ 5 or ≥ 250) over `rect`.
    public static func exposure(_ img: GrayImage, in rect: PixelRect) -> (mean: Double, clipped: Double) {
        let r = rect.intersection(img.bounds)
        guard r.area > 0 else { return (0, 1) }
        var sum = 0, clipped = 0
        for y in r.y..<(r.y + r.height) {
            for x in r.x..<(r.x + r.width) {
                let v = img.pixels[y * img.width + x]
                sum += Int(v)
                if v <= 5 || v >= 250 { clipped += 1 }
            }
        }
        return (Double(sum) / Double(r.area), Double(clipped) / Double(r.area))
    }

    /// Spectral peaks of the face's central patch: the strongest periodic component and the strongest
    /// one crossing it (≥ 30° apart), each as a ratio to the median magnitude of the high-frequency band.
    public static func spectralPeaks(_ img: GrayImage, face: PixelRect) -> (primary: Double, crossing: Double) {
        let n = 64
        let side = max(16, Int(Double(min(face.width, face.height)) * 0.6))
        let c = PixelRect(x: Int(face.midX) - side / 2, y: Int(face.midY) - side / 2, width: side, height: side)
        guard let crop = img.cropped(to: c) else { return (0, 0) }
        let patch: GrayImage
        if crop.width >= n && crop.height >= n {
            patch = crop.cropped(to: PixelRect(x: (crop.width - n) / 2, y: (crop.height - n) / 2, width: n, height: n)) ?? crop.resized(width: n, height: n)
        } else {
            patch = crop.resized(width: n, height: n)
        }
        var re = [Double](repeating: 0, count: n * n), im = [Double](repeating: 0, count: n * n)
        let mean = patch.pixels.reduce(0) { $0 + Double($1) } / Double(n * n)
        let hann = (0..<n).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n - 1)) }
        for y in 0..<n {
            for x in 0..<n {
                re[y * n + x] = (Double(patch.pixels[y * n + x]) - mean) * hann[x] * hann[y]
            }
        }
        FFT.transform2D(&re, &im, n: n)
        // Band: radius 8…31 bins, upper half-plane (the spectrum of a real image is symmetric).
        var band: [(mag: Double, u: Int, v: Int)] = []
        for v in 0...(n / 2) {
            for u in (-n / 2 + 1)..<(n / 2) {
                if v == 0 && u <= 0 { continue }
                let r2 = u * u + v * v
                guard r2 >= 64, r2 < (n / 2) * (n / 2) else { continue }
                let i = ((v + n) % n) * n + ((u + n) % n)
                band.append(((re[i] * re[i] + im[i] * im[i]).squareRoot(), u, v))
            }
        }
        guard !band.isEmpty else { return (0, 0) }
        // Whiten: natural images fall off with frequency, so each bin is compared with the median of
        // its own ring (±1 bin); a periodic pattern stands out of its ring, texture does not.
        var rings: [Int: [Double]] = [:]
        for b in band { rings[Int((Double(b.u * b.u + b.v * b.v)).squareRoot().rounded()), default: []].append(b.mag) }
        var ringMedian: [Int: Double] = [:]
        for (r, _) in rings {
            let all = ((r - 1)...(r + 1)).flatMap { rings[$0] ?? [] }.sorted()
            ringMedian[r] = max(all[all.count / 2], 1e-9)
        }
        let ratios = band.map { b in (ratio: b.mag / (ringMedian[Int((Double(b.u * b.u + b.v * b.v)).squareRoot().rounded())] ?? 1e-9), u: b.u, v: b.v) }
        guard let top = ratios.max(by: { $0.ratio < $1.ratio }) else { return (0, 0) }
        let a0 = atan2(Double(top.v), Double(top.u))
        var second = 0.0
        for b in ratios {
            var d = abs(atan2(Double(b.v), Double(b.u)) - a0)
            d = min(d, Double.pi - d)
            if d >= Double.pi / 6, b.ratio > second { second = b.ratio }
        }
        return (top.ratio, second)
    }

    /// Block motion between two frames over the same face region: per block (centre, displacement),
    /// sub-pixel by a parabola through the SAD minimum; flat blocks are skipped.
    /// `predicted` (translation tx, ty and scale s about the face centre, e.g. from the two face boxes) centres each block's search.
    public static func blockMotion(from a: GrayImage, to b: GrayImage, face: PixelRect, predicted: (tx: Double, ty: Double, s: Double) = (0, 0, 1),
                                   grid: Int = 4, search: Int = 4) -> [(x: Double, y: Double, dx: Double, dy: Double)] {
        guard a.width == b.width, a.height == b.height else { return [] }
        let bs = max(8, min(face.width, face.height) / (grid + 1))
        var out: [(Double, Double, Double, Double)] = []
        for gy in 0..<grid {
            for gx in 0..<grid {
                let cx = face.x + face.width * (2 * gx + 1) / (2 * grid), cy = face.y + face.height * (2 * gy + 1) / (2 * grid)
                let x0 = cx - bs / 2, y0 = cy - bs / 2
                let px = Int((predicted.tx + (predicted.s - 1) * (Double(cx) - face.midX)).rounded())
                let py = Int((predicted.ty + (predicted.s - 1) * (Double(cy) - face.midY)).rounded())
                guard x0 >= 0, y0 >= 0, x0 + bs <= a.width, y0 + bs <= a.height,
                      x0 + px - search - 1 >= 0, y0 + py - search - 1 >= 0, x0 + px + bs + search + 1 <= b.width, y0 + py + bs + search + 1 <= b.height else { continue }
                // Skip flat blocks (no texture to match).
                var s = 0.0, s2 = 0.0
                for y in y0..<(y0 + bs) { for x in x0..<(x0 + bs) { let v = Double(a.pixels[y * a.width + x]); s += v; s2 += v * v } }
                let nPix = Double(bs * bs)
                guard s2 / nPix - (s / nPix) * (s / nPix) > 25 else { continue }
                var sad = [Int](repeating: 0, count: (2 * search + 3) * (2 * search + 3))
                let side = 2 * search + 3
                var best = Int.max, bx = 0, by = 0
                a.pixels.withUnsafeBufferPointer { pa in
                    b.pixels.withUnsafeBufferPointer { pb in
                        for dy in -(search + 1)...(search + 1) {
                            for dx in -(search + 1)...(search + 1) {
                                var acc = 0
                                for y in y0..<(y0 + bs) {
                                    let ra = y * a.width, rb = (y + py + dy) * a.width + px + dx
                                    for x in x0..<(x0 + bs) { acc += abs(Int(pa[ra + x]) - Int(pb[rb + x])) }
                                }
                                sad[(dy + search + 1) * side + dx + search + 1] = acc
                                if abs(dx) <= search, abs(dy) <= search, acc < best { best = acc; bx = dx; by = dy }
                            }
                        }
                    }
                }
                func at(_ dx: Int, _ dy: Int) -> Double { Double(sad[(dy + search + 1) * side + dx + search + 1]) }
                func sub(_ l: Double, _ c: Double, _ r: Double) -> Double { let d = l - 2 * c + r; return d > 0 ? max(-0.5, min(0.5, 0.5 * (l - r) / d)) : 0 }
                let fx = Double(bx) + sub(at(bx - 1, by), at(bx, by), at(bx + 1, by))
                let fy = Double(by) + sub(at(bx, by - 1), at(bx, by), at(bx, by + 1))
                out.append((Double(cx), Double(cy), fx + Double(px), fy + Double(py)))
            }
        }
        return out
    }

    /// Mean motion magnitude and the residual (RMS, px) after fitting one similarity transform
    /// (translation, scale, rotation) to block motions: a flat photo moves as one plane.
    public static func motionStats(_ m: [(x: Double, y: Double, dx: Double, dy: Double)]) -> (mean: Double, nonRigid: Double) {
        guard m.count >= 4 else { return (0, 0) }
        let n = Double(m.count)
        let cx = m.reduce(0) { $0 + $1.x } / n, cy = m.reduce(0) { $0 + $1.y } / n
        let tx = m.reduce(0) { $0 + $1.dx } / n, ty = m.reduce(0) { $0 + $1.dy } / n
        var num = 0.0, rot = 0.0, den = 0.0
        for b in m {
            let px = b.x - cx, py = b.y - cy, qx = b.dx - tx, qy = b.dy - ty
            num += qx * px + qy * py; rot += qy * px - qx * py; den += px * px + py * py
        }
        let s = den > 0 ? num / den : 0, r = den > 0 ? rot / den : 0
        var res = 0.0, mag = 0.0
        for b in m {
            let px = b.x - cx, py = b.y - cy
            let ex = b.dx - (tx + s * px - r * py), ey = b.dy - (ty + s * py + r * px)
            res += ex * ex + ey * ey
            mag += (b.dx * b.dx + b.dy * b.dy).squareRoot()
        }
        return (mag / n, (res / n).squareRoot())
    }

    /// The longest straight edge just outside the face (within 1.2 face sizes), as a fraction of
    /// the search band's length: bezels, phone and photo borders make long lines.
    public static func straightEdgeFraction(_ img: GrayImage, face: PixelRect) -> Double {
        let region = face.expanded(by: 1.2).intersection(PixelRect(x: 1, y: 1, width: img.width - 2, height: img.height - 2))
        guard region.width > 4, region.height > 4 else { return 0 }
        let w = img.width
        let inner = face.expanded(by: 0.05)
        var best = 0.0
        let minStep = 24.0 // a step of at least this much luma counts as an edge pixel
        img.pixels.withUnsafeBufferPointer { p in
            // Horizontal lines (vertical gradient), rows above and below the face.
            for y in region.y..<(region.y + region.height) where y < inner.y || y >= inner.y + inner.height {
                var run = 0, longest = 0, sign = 0
                for x in region.x..<(region.x + region.width) {
                    let g = Double(Int(p[(y + 1) * w + x]) - Int(p[(y - 1) * w + x]))
                    let sg = g >= minStep ? 1 : (g <= -minStep ? -1 : 0)
                    if sg != 0 && (sg == sign || run == 0) { run += 1; sign = sg } else { run = sg != 0 ? 1 : 0; sign = sg }
                    longest = max(longest, run)
                }
                best = max(best, Double(longest) / Double(region.width))
            }
            // Vertical lines (horizontal gradient), columns left and right of the face.
            for x in region.x..<(region.x + region.width) where x < inner.x || x >= inner.x + inner.width {
                var run = 0, longest = 0, sign = 0
                for y in region.y..<(region.y + region.height) {
                    let g = Double(Int(p[y * w + x + 1]) - Int(p[y * w + x - 1]))
                    let sg = g >= minStep ? 1 : (g <= -minStep ? -1 : 0)
                    if sg != 0 && (sg == sign || run == 0) { run += 1; sign = sg } else { run = sg != 0 ? 1 : 0; sign = sg }
                    longest = max(longest, run)
                }
                best = max(best, Double(longest) / Double(region.height))
            }
        }
        return best
    }
}

/// A radix-2 complex FFT (in place), enough for small power-of-two patches.
enum FFT {
    static func transform(_ re: inout [Double], _ im: inout [Double], offset: Int, stride: Int, n: Int) {
        // Bit reversal.
        var j = 0
        for i in 0..<(n - 1) {
            if i < j {
                re.swapAt(offset + i * stride, offset + j * stride); im.swapAt(offset + i * stride, offset + j * stride)
            }
            var k = n >> 1
            while k <= j { j -= k; k >>= 1 }
            j += k
        }
        // Twiddles e^{-2πik/n}; a sub-transform of length len uses every (n/len)-th.
        let tw = (0..<(n / 2)).map { (cos(-2 * Double.pi * Double($0) / Double(n)), sin(-2 * Double.pi * Double($0) / Double(n))) }
        var len = 2
        while len <= n {
            let skip = n / len
            for i in Swift.stride(from: 0, to: n, by: len) {
                for k in 0..<(len / 2) {
                    let (wr, wi) = tw[k * skip]
                    let a = offset + (i + k) * stride, b = offset + (i + k + len / 2) * stride
                    let tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr
                    re[b] = re[a] - tr; im[b] = im[a] - ti
                    re[a] += tr; im[a] += ti
                }
            }
            len <<= 1
        }
    }

    static func transform2D(_ re: inout [Double], _ im: inout [Double], n: Int) {
        for r in 0..<n { transform(&re, &im, offset: r * n, stride: 1, n: n) }
        for c in 0..<n { transform(&re, &im, offset: c, stride: n, n: n) }
    }
}
