import Foundation
@testable import Liveness

/// A deterministic generator for reproducible synthetic sessions.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func gaussian() -> Double {
        let u1 = max(Double.random(in: 0..<1, using: &self), 1e-12), u2 = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// Synthetic sessions made from one still photo: regression tests, not accuracy (see Sources/Liveness/README.md).
struct Synthesizer {
    enum Kind: String, CaseIterable { case live, print, screen, staticImage = "static" }

    let photo: GrayImage
    let face: PixelRect        // face box in the photo
    let eyes: [PixelRect]      // eye boxes in the photo
    var frameWidth = 640, frameHeight = 480
    var faceWidth = 150.0      // face width in the frame

    /// Samples `src` at (u, v) bilinearly; outside → `outside`.
    static func sample(_ src: GrayImage, _ u: Double, _ v: Double, outside: Double?) -> Double {
        guard u >= 0, v >= 0, u < Double(src.width - 1), v < Double(src.height - 1) else {
            guard let outside else { return sample(src, min(max(u, 0), Double(src.width) - 1.001), min(max(v, 0), Double(src.height) - 1.001), outside: 0) }
            return outside
        }
        let x = Int(u), y = Int(v), fx = u - Double(x), fy = v - Double(y)
        let p = src.pixels, w = src.width
        let a = Double(p[y * w + x]), b = Double(p[y * w + x + 1]), c = Double(p[(y + 1) * w + x]), d = Double(p[(y + 1) * w + x + 1])
        return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    }

    /// The photo with the eyes closed: eye boxes filled with the skin tone below them, softly.
    func closedEyes(_ img: GrayImage) -> GrayImage {
        var out = img
        for e in eyes {
            let skin = img.mean(in: PixelRect(x: e.x, y: e.y + e.height, width: e.width, height: max(2, e.height / 3)))
            let r = e.expanded(by: -0.05)
            for y in r.y..<(r.y + r.height) { for x in r.x..<(r.x + r.width) {
                let lid = 0.85 * skin + 0.15 * Double(img[x, y])
                let crease = abs(Double(y - (r.y + r.height * 2 / 3))) < 1.5 ? -25.0 : 0
                out[x, y] = UInt8(max(0, min(255, lid + crease)))
            } }
        }
        return out
    }

    /// Renders one frame: the photo placed with scale `s` (relative) and shift, plus local (non-rigid) motion.
    func render(_ src: GrayImage, scale s: Double, dx: Double, dy: Double, local: (Double, Double) = (0, 0),
                within: PixelRect? = nil, background: Double? = nil, noise: Double, rng: inout SplitMix64,
                overlay: ((Int, Int) -> Double)? = nil) -> GrayImage {
        let k = faceWidth / Double(face.width) * s
        // Frame coords → photo coords: photo face centre lands on frame centre + shift.
        let cx = Double(frameWidth) / 2 + dx, cy = Double(frameHeight) / 2 - 20 + dy
        var out = GrayImage(width: frameWidth, height: frameHeight)
        let eyeY = eyes.isEmpty ? face.midY - Double(face.height) * 0.15 : eyes.map(\.midY).reduce(0, +) / Double(eyes.count)
        for y in 0..<frameHeight {
            for x in 0..<frameWidth {
                var u = face.midX + (Double(x) - cx) / k, v = face.midY + (Double(y) - cy) / k
                // Local motion: the eye band moves by `local`, fading out over a face height.
                let d = (v - eyeY) / (Double(face.height) * 0.18), du = u - face.midX
                let wgt = exp(-d * d) * exp(-(du * du) / pow(Double(face.width) * 0.6, 2))
                u -= local.0 * wgt / k; v -= local.1 * wgt / k
                var val: Double
                if let within, !(x >= within.x && y >= within.y && x < within.x + within.width && y < within.y + within.height) {
                    val = background ?? 90
                } else {
                    val = Self.sample(src, u, v, outside: background)
                    if let overlay { val += overlay(x, y) }
                }
                val += noise * rng.gaussian()
                out.pixels[y * frameWidth + x] = UInt8(max(0, min(255, val.rounded())))
            }
        }
        return out
    }

    /// Clustered-dot halftone of the photo (period `cell` px at 45°), as a printer makes it.
    func halftoned(cell: Double = 3.2) -> GrayImage {
        var out = photo
        let c = cos(Double.pi / 4), s = sin(Double.pi / 4)
        for y in 0..<photo.height { for x in 0..<photo.width {
            let u = (Double(x) * c + Double(y) * s) / cell, v = (-Double(x) * s + Double(y) * c) / cell
            let fu = u - u.rounded(), fv = v - v.rounded()
            let dot = (fu * fu + fv * fv).squareRoot() / 0.7071   // 0 at the dot centre, 1 at the cell corner
            let ink = 1 - Double(photo[x, y]) / 255
            let inked = dot < ink.squareRoot() * 1.05
            out[x, y] = UInt8(inked ? 35 : 235)
        } }
        // The camera does not resolve every dot: a light blur.
        var blurred = out
        for y in 1..<(out.height - 1) { for x in 1..<(out.width - 1) {
            var acc = 0
            for j in -1...1 { for i in -1...1 { acc += Int(out[x + i, y + j]) } }
            blurred[x, y] = UInt8(acc / 9)
        } }
        return blurred
    }

    /// A session of `count` frames of the given kind, following `challenge` (attacks follow it too, rigidly).
    func session(_ kind: Kind, challenge: LivenessChallenge, count: Int = 16, seed: UInt64 = 1) -> [GrayImage] {
        var rng = SplitMix64(seed: seed)
        let closed = closedEyes(photo)
        let halftone = kind == .print ? halftoned() : photo
        let base: GrayImage = kind == .print ? halftone : photo
        let still = render(base, scale: 1, dx: 0, dy: 0, noise: 0, rng: &rng)
        var frames: [GrayImage] = []
        for i in 0..<count {
            let t = Double(i) / Double(max(1, count - 1))
            var s = 1.0, dx = 0.0, dy = 0.0
            switch challenge {
            case .turnLeft: dx = t > 0.4 ? faceWidth * 0.25 * min(1, (t - 0.4) / 0.3) : 0
            case .turnRight: dx = t > 0.4 ? -faceWidth * 0.25 * min(1, (t - 0.4) / 0.3) : 0
            case .moveCloser: s = t > 0.4 ? 1 + 0.35 * min(1, (t - 0.4) / 0.3) : 1
            case .blink: break
            }
            switch kind {
            case .live:
                dx += 1.2 * rng.gaussian(); dy += 1.2 * rng.gaussian()
                let local = (1.5 * rng.gaussian(), 1.8 * rng.gaussian())
                let blinking = challenge == .blink && count >= 6 && (i == count / 2 || i == count / 2 + 1)
                frames.append(render(blinking ? closed : photo, scale: s, dx: dx, dy: dy, local: local, noise: 1.5, rng: &rng))
            case .staticImage:
                var f = still
                for k in f.pixels.indices { f.pixels[k] = UInt8(max(0, min(255, Double(f.pixels[k]) + 1.5 * rng.gaussian()))) }
                frames.append(f)
            case .print:
                // A hand-held print: the whole sheet moves as one plane; white paper margin, room behind.
                dx += 1.5 * rng.gaussian(); dy += 1.5 * rng.gaussian()
                let k = s * faceWidth
                let sheet = PixelRect(x: Int(Double(frameWidth) / 2 + dx - 1.6 * k), y: Int(Double(frameHeight) / 2 - 20 + dy - 1.7 * k),
                                      width: Int(3.2 * k), height: Int(3.6 * k))
                frames.append(render(halftone, scale: s, dx: dx, dy: dy, within: sheet, background: 70, noise: 1.5, rng: &rng))
            case .screen:
                // A phone held up: moiré from the pixel grid against the sensor, black bezel.
                dx += 1.5 * rng.gaussian(); dy += 1.5 * rng.gaussian()
                let k = s * faceWidth
                let screen = PixelRect(x: Int(Double(frameWidth) / 2 + dx - 1.3 * k), y: Int(Double(frameHeight) / 2 - 20 + dy - 1.5 * k),
                                       width: Int(2.6 * k), height: Int(3.0 * k))
                let ang = 0.5, period = 4.6
                let ca = cos(ang), sa = sin(ang)
                frames.append(render(photo, scale: s, dx: dx, dy: dy, within: screen, background: 12, noise: 1.5, rng: &rng,
                                     overlay: { x, y in 14 * sin(2 * .pi * (Double(x) * ca + Double(y) * sa) / period) }))
            }
        }
        return frames
    }
}
