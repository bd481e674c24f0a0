import Foundation
import Synchronization

/// A deterministic random generator (SplitMix64), so synthetic sessions are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    /// Starts from `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A standard normal sample (Box–Muller).
    public mutating func gaussian() -> Double {
        let u1 = max(Double.random(in: 0..<1, using: &self), 1e-12), u2 = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// Why a synthetic shopper cannot be made from a photo.
public struct SyntheticShopperError: Error, Sendable, CustomStringConvertible {
    /// A one-line explanation.
    public var description: String
}

/// A synthetic shopper made from one still photo: a live person (small non-rigid motion,
/// blinks, turns, comes closer when asked) or an attack on the camera (a printed photo, a
/// phone screen, a static image) that follows the instructions rigidly.
///
/// For the demo, the test VM and regression tests only: synthetic frames say nothing about
/// accuracy on real attacks (Sources/Liveness/README.md).
public struct SyntheticShopper: Sendable {
    /// What stands in front of the camera.
    public enum Kind: String, Sendable, CaseIterable {
        /// A live person.
        case live
        /// A halftone print held up to the camera.
        case print
        /// A phone screen showing the photo (moiré, black bezel).
        case screen
        /// The same image, frame after frame.
        case staticImage = "static"
    }

    /// The source photo.
    public let photo: GrayImage
    /// The face box in the photo.
    public let face: PixelRect
    /// The eye boxes in the photo.
    public let eyes: [PixelRect]
    /// Frame size.
    public var frameWidth = 640, frameHeight = 480
    /// Face width in the frame, pixels.
    public var faceWidth = 150.0

    /// A shopper from a photo whose face and eye boxes are known.
    public init(photo: GrayImage, face: PixelRect, eyes: [PixelRect]) {
        self.photo = photo
        self.face = face
        self.eyes = eyes
    }

    /// A shopper from a photo with exactly one face, found with `engine`'s detectors.
    public init(photo: GrayImage, engine: LivenessEngine) throws(SyntheticShopperError) {
        let faces = engine.faceDetector.detect(in: photo, parameters: engine.thresholds.faceDetection)
        guard faces.count == 1, let face = faces.first else {
            throw SyntheticShopperError(description: "the photo must show exactly one face (found \(faces.count))")
        }
        self.init(photo: photo, face: face, eyes: engine.eyes(in: photo, face: face))
    }

    /// Samples `src` at (u, v) bilinearly; outside → `outside` (nil: clamp to the edge).
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
    public func closedEyes(_ img: GrayImage) -> GrayImage {
        var out = img
        for e in eyes {
            let skin = img.mean(in: PixelRect(x: e.x, y: e.y + e.height, width: e.width, height: max(2, e.height / 3)))
            let r = e.expanded(by: -0.05)
            for y in r.y..<(r.y + r.height) {
                for x in r.x..<(r.x + r.width) {
                    let lid = 0.85 * skin + 0.15 * Double(img[x, y])
                    let crease = abs(Double(y - (r.y + r.height * 2 / 3))) < 1.5 ? -25.0 : 0
                    out[x, y] = UInt8(max(0, min(255, lid + crease)))
                }
            }
        }
        return out
    }

    /// Renders one frame: the photo placed with scale `s` (relative) and shift, plus local (non-rigid) motion.
    public func render(_ src: GrayImage, scale s: Double, dx: Double, dy: Double, local: (Double, Double) = (0, 0),
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
                u -= local.0 * wgt / k
                v -= local.1 * wgt / k
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
    public func halftoned(cell: Double = 3.2) -> GrayImage {
        var out = photo
        let c = cos(Double.pi / 4), s = sin(Double.pi / 4)
        for y in 0..<photo.height {
            for x in 0..<photo.width {
                let u = (Double(x) * c + Double(y) * s) / cell, v = (-Double(x) * s + Double(y) * c) / cell
                let fu = u - u.rounded(), fv = v - v.rounded()
                let dot = (fu * fu + fv * fv).squareRoot() / 0.7071  // 0 at the dot centre, 1 at the cell corner
                let ink = 1 - Double(photo[x, y]) / 255
                out[x, y] = UInt8(dot < ink.squareRoot() * 1.05 ? 35 : 235)
            }
        }
        // The camera does not resolve every dot: a light blur.
        var blurred = out
        for y in 1..<(out.height - 1) {
            for x in 1..<(out.width - 1) {
                var acc = 0
                for j in -1...1 { for i in -1...1 { acc += Int(out[x + i, y + j]) } }
                blurred[x, y] = UInt8(acc / 9)
            }
        }
        return blurred
    }

    /// `count` frames of `kind` performing `action` (nil: just standing there); attacks follow it too, rigidly.
    public func session(_ kind: Kind, action: LivenessChallenge?, count: Int = 16, seed: UInt64 = 1) -> [GrayImage] {
        var rng = SplitMix64(seed: seed)
        let closed = closedEyes(photo)
        let halftone = kind == .print ? halftoned() : photo
        let still = render(kind == .print ? halftone : photo, scale: 1, dx: 0, dy: 0, noise: 0, rng: &rng)
        var frames: [GrayImage] = []
        for i in 0..<count {
            let t = Double(i) / Double(max(1, count - 1))
            var s = 1.0, dx = 0.0, dy = 0.0
            switch action {
            case .turnLeft?: dx = t > 0.4 ? faceWidth * 0.25 * min(1, (t - 0.4) / 0.3) : 0
            case .turnRight?: dx = t > 0.4 ? -faceWidth * 0.25 * min(1, (t - 0.4) / 0.3) : 0
            case .moveCloser?: s = t > 0.4 ? 1 + 0.35 * min(1, (t - 0.4) / 0.3) : 1
            case .blink?, nil: break
            }
            switch kind {
            case .live:
                dx += 1.2 * rng.gaussian()
                dy += 1.2 * rng.gaussian()
                let local = (1.5 * rng.gaussian(), 1.8 * rng.gaussian())
                // Eyes closed for a sixth of the sequence (two frames of 16): long sequences played
                // slowly keep them closed long enough for a slow consumer to see.
                let blinking = action == .blink && count >= 6 && i >= count / 2 && i < count / 2 + max(2, count / 6)
                frames.append(render(blinking ? closed : photo, scale: s, dx: dx, dy: dy, local: local, noise: 1.5, rng: &rng))
            case .staticImage:
                var f = still
                for k in f.pixels.indices { f.pixels[k] = UInt8(max(0, min(255, Double(f.pixels[k]) + 1.5 * rng.gaussian()))) }
                frames.append(f)
            case .print:
                // A hand-held print: the whole sheet moves as one plane; white paper margin, room behind.
                dx += 1.5 * rng.gaussian()
                dy += 1.5 * rng.gaussian()
                let k = s * faceWidth
                let sheet = PixelRect(x: Int(Double(frameWidth) / 2 + dx - 1.6 * k), y: Int(Double(frameHeight) / 2 - 20 + dy - 1.7 * k),
                                      width: Int(3.2 * k), height: Int(3.6 * k))
                frames.append(render(halftone, scale: s, dx: dx, dy: dy, within: sheet, background: 70, noise: 1.5, rng: &rng))
            case .screen:
                // A phone held up: moiré from the pixel grid against the sensor, black bezel.
                dx += 1.5 * rng.gaussian()
                dy += 1.5 * rng.gaussian()
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

    /// The directory names of ``writeSessions(to:kind:count:)``: "idle" plus one per challenge.
    public static let actionNames: [(String, LivenessChallenge?)] =
        [("idle", nil)] + LivenessChallenge.allCases.map { ($0.rawValue, $0) }

    /// Writes one frame sequence per action (idle, blink, turn_left, …) as PGM files under
    /// `directory/<action>/NNN.pgm`, for ``ShopperPlayback``.
    public func writeSessions(to directory: String, kind: Kind, count: Int = 16, seed: UInt64 = 1) throws {
        for (i, (name, action)) in Self.actionNames.enumerated() {
            let dir = (directory as NSString).appendingPathComponent(name)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (n, frame) in session(kind, action: action, count: count, seed: seed &+ UInt64(i)).enumerated() {
                try frame.writePGM(to: (dir as NSString).appendingPathComponent(String(format: "%03d.pgm", n)))
            }
        }
    }
}

/// Plays a synthetic shopper's recorded sequences, following the liveness guidance: the
/// challenge asked for is performed (its sequence, then its second half looped, so the shopper
/// keeps moving naturally), anything else shows the "idle" sequence.
public final class ShopperPlayback: Sendable {
    /// Every frame, the sequences one after another.
    public let frames: [GrayImage]
    private let ranges: [String: Range<Int>]
    private let state = Mutex<(action: String, tick: Int, since: ContinuousClock.Instant)>(("idle", 0, .now))
    private let secondsPerSequence: Double?

    /// Loads `directory/<action>/*.pgm` as written by ``SyntheticShopper/writeSessions(to:kind:count:seed:)``.
    /// With `secondsPerSequence`, a sequence lasts that long whatever the frame rate (a slow
    /// consumer still sees each part of it); otherwise one frame per ``nextIndex()`` call.
    public init(directory: String, secondsPerSequence: Double? = nil) throws {
        self.secondsPerSequence = secondsPerSequence
        var frames: [GrayImage] = []
        var ranges: [String: Range<Int>] = [:]
        for (name, _) in SyntheticShopper.actionNames {
            let dir = (directory as NSString).appendingPathComponent(name)
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir).filter({ $0.hasSuffix(".pgm") }).sorted(),
                  !files.isEmpty else { continue }
            let start = frames.count
            for f in files { frames.append(try GrayImage(pgmFile: (dir as NSString).appendingPathComponent(f))) }
            ranges[name] = start..<frames.count
        }
        guard ranges["idle"] != nil else {
            throw SyntheticShopperError(description: "\(directory)/idle/*.pgm missing (kioskctl liveness synth writes it)")
        }
        self.frames = frames
        self.ranges = ranges
    }

    /// Follows an instruction: a challenge starts its sequence; "hold still" and "done" keep
    /// the current one; anything else (quality hints) goes back to idle.
    public func follow(_ guidance: LivenessGuidance) {
        let name: String?
        switch guidance {
        case .blink, .turnLeft, .turnRight, .moveCloser: name = guidance.rawValue
        case .holdStill, .done: name = nil
        default: name = "idle"
        }
        guard let name, ranges[name] != nil else { return }
        state.withLock { s in
            if s.action != name { s = (name, 0, .now) }
        }
    }

    /// The index of the next frame to show.
    public func nextIndex() -> Int {
        state.withLock { s in
            let r = ranges[s.action] ?? ranges["idle"]!
            defer { s.tick += 1 }
            if let secondsPerSequence {
                let d = ContinuousClock.now - s.since
                let elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                let t = Int(elapsed / secondsPerSequence * Double(r.count))
                if s.action == "idle" { return r.lowerBound + t % r.count }
                if t < r.count { return r.lowerBound + t }
                let half = max(1, r.count / 2)
                return r.upperBound - half + (t - r.count) % half
            }
            if s.action == "idle" { return r.lowerBound + s.tick % r.count }
            if s.tick < r.count { return r.lowerBound + s.tick }
            let half = max(1, r.count / 2)
            return r.upperBound - half + (s.tick - r.count) % half
        }
    }
}
