import Foundation

/// Search parameters of a multi-scale detection (OpenCV's `detectMultiScale` arguments).
public struct DetectionParameters: Sendable, Equatable, Codable {
    /// Ratio between successive scales of the pyramid (> 1).
    public var scaleFactor: Double
    /// Hits a group needs beyond this count to be reported (OpenCV's minNeighbors).
    public var minNeighbors: Int
    /// Smallest object width in pixels.
    public var minSize: Int
    /// Largest object width in pixels (0: no limit).
    public var maxSize: Int

    /// Creates parameters; defaults are OpenCV's usual face settings.
    public init(scaleFactor: Double = 1.1, minNeighbors: Int = 3, minSize: Int = 40, maxSize: Int = 0) {
        self.scaleFactor = max(1.01, scaleFactor)
        self.minNeighbors = max(0, minNeighbors)
        self.minSize = max(1, minSize)
        self.maxSize = max(0, maxSize)
    }

    enum CodingKeys: String, CodingKey {
        case scaleFactor = "scale_factor", minNeighbors = "min_neighbors", minSize = "min_size", maxSize = "max_size"
    }

    /// Decodes parameters; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DetectionParameters()
        self.init(scaleFactor: try c.decodeIfPresent(Double.self, forKey: .scaleFactor) ?? d.scaleFactor,
                  minNeighbors: try c.decodeIfPresent(Int.self, forKey: .minNeighbors) ?? d.minNeighbors,
                  minSize: try c.decodeIfPresent(Int.self, forKey: .minSize) ?? d.minSize,
                  maxSize: try c.decodeIfPresent(Int.self, forKey: .maxSize) ?? d.maxSize)
    }
}

/// Evaluates an OpenCV Haar cascade over an image: integral images, a scale pyramid, early stage rejection, grouping.
public struct HaarDetector: Sendable {
    /// The cascade evaluated.
    public let cascade: HaarCascade
    // Flattened stumps in evaluation order (the fast path: every weak classifier a stump, integer weights).
    private let stageCounts: [Int32]
    private let stageThresholds: [Float]
    private let stumpRects: [Int32]      // per stump: 3 × (x, y, w, h)
    private let stumpWeights: [Int32]    // per stump: 3 integer weights (0 when unused)
    private let stumpValues: [Float]     // per stump: threshold, left leaf, right leaf, (pad)
    private let fastPath: Bool

    /// Prepares a detector; fails for cascades with tilted features (not implemented).
    public init(cascade: HaarCascade) throws(CascadeError) {
        guard !cascade.hasTiltedFeatures else { throw .malformed("tilted features are not supported") }
        self.cascade = cascade
        var counts: [Int32] = [], sth: [Float] = [], rects: [Int32] = [], ws: [Int32] = [], vals: [Float] = []
        let integerWeights = cascade.features.allSatisfy { $0.rects.count <= 3 && $0.rects.allSatisfy { $0.weight == $0.weight.rounded() && abs($0.weight) < 64 } }
        let fast = cascade.isStumpBased && integerWeights
        for s in cascade.stages {
            counts.append(Int32(s.classifiers.count)); sth.append(s.threshold)
            guard fast else { continue }
            for c in s.classifiers {
                let n = c.nodes[0]
                let f = cascade.features[n.featureIndex]
                for k in 0..<3 {
                    if k < f.rects.count {
                        let q = f.rects[k]
                        rects += [Int32(q.x), Int32(q.y), Int32(q.width), Int32(q.height)]; ws.append(Int32(q.weight))
                    } else { rects += [0, 0, 0, 0]; ws.append(0) }
                }
                vals += [n.threshold, c.leaves[-min(0, n.left)], c.leaves[-min(0, n.right)], 0]
            }
        }
        stageCounts = counts; stageThresholds = sth; stumpRects = rects; stumpWeights = ws; stumpValues = vals; fastPath = fast
    }

    /// Loads a cascade file and prepares a detector.
    public init(contentsOf path: String) throws(CascadeError) {
        try self.init(cascade: HaarCascade(contentsOf: path))
    }

    /// Detects objects in `image` (or only inside `roi`), groups overlapping hits, returns boxes in image coordinates.
    public func detect(in image: GrayImage, parameters p: DetectionParameters = .init(), roi: PixelRect? = nil) -> [PixelRect] {
        groupRectangles(detectRaw(in: image, parameters: p, roi: roi), minNeighbors: p.minNeighbors)
    }

    /// All window hits before grouping.
    public func detectRaw(in image: GrayImage, parameters p: DetectionParameters = .init(), roi: PixelRect? = nil) -> [PixelRect] {
        let region = (roi ?? image.bounds).intersection(image.bounds)
        guard region.width >= cascade.windowWidth, region.height >= cascade.windowHeight else { return [] }
        let src = region == image.bounds ? image : (image.cropped(to: region) ?? image)
        var hits: [PixelRect] = []
        // One row stride for every pyramid level, so the stumps' corner offsets are computed once per call.
        let stride = src.width + 1
        var sum = [Int32](repeating: 0, count: stride * (src.height + 1))
        var sq = [UInt32](repeating: 0, count: stride * (src.height + 1))
        var packed = [Int32](repeating: 0, count: stumpValues.count / 4 * 16)
        if fastPath {
            for k in 0..<(stumpValues.count / 4) {
                for r in 0..<3 {
                    let i = k * 3 + r
                    let x = stumpRects[i * 4], y = stumpRects[i * 4 + 1], rw = stumpRects[i * 4 + 2], rh = stumpRects[i * 4 + 3]
                    let st = Int32(stride)
                    packed[k * 16 + r * 4] = y * st + x
                    packed[k * 16 + r * 4 + 1] = y * st + x + rw
                    packed[k * 16 + r * 4 + 2] = (y + rh) * st + x
                    packed[k * 16 + r * 4 + 3] = (y + rh) * st + x + rw
                    packed[k * 16 + 12 + r] = stumpWeights[i]
                }
            }
        }
        var factor = 1.0
        while true {
            defer { factor *= p.scaleFactor }
            let ww = Int((Double(cascade.windowWidth) * factor).rounded()), wh = Int((Double(cascade.windowHeight) * factor).rounded())
            if (p.maxSize > 0 && ww > p.maxSize) || ww > src.width || wh > src.height { break }
            if ww < p.minSize { continue }
            let sw = Int((Double(src.width) / factor).rounded()), sh = Int((Double(src.height) / factor).rounded())
            guard sw >= cascade.windowWidth, sh >= cascade.windowHeight else { break }
            let scaled = src.resized(width: sw, height: sh)
            let step = factor >= 2 ? 1 : 2
            scan(scaled, stride: stride, sum: &sum, sq: &sq, packed: packed, step: step) { x, y in
                hits.append(PixelRect(x: region.x + Int((Double(x) * factor).rounded()), y: region.y + Int((Double(y) * factor).rounded()), width: ww, height: wh))
            }
        }
        return hits
    }

    /// Runs the cascade at every window position of one pyramid level.
    private func scan(_ img: GrayImage, stride: Int, sum: inout [Int32], sq: inout [UInt32], packed: [Int32], step: Int, hit: (Int, Int) -> Void) {
        let w = img.width, h = img.height
        img.pixels.withUnsafeBufferPointer { px in
            sum.withUnsafeMutableBufferPointer { s in
                sq.withUnsafeMutableBufferPointer { q in
                    for x in 0...w { s[x] = 0; q[x] = 0 }
                    for y in 0..<h {
                        var rs: Int32 = 0, rq: UInt32 = 0
                        let row = (y + 1) * stride, prev = y * stride, prow = y * w
                        s[row] = 0; q[row] = 0
                        for x in 0..<w {
                            let v = px[prow + x]
                            rs &+= Int32(v); rq &+= UInt32(v) &* UInt32(v)
                            s[row + x + 1] = s[prev + x + 1] &+ rs
                            q[row + x + 1] = q[prev + x + 1] &+ rq
                        }
                    }
                }
            }
        }
        let W = cascade.windowWidth, H = cascade.windowHeight
        // OpenCV normalises by the window shrunk by one pixel on each side.
        let n0 = stride + 1, n1 = stride + 1 + (W - 2), n2 = (H - 1) * stride + 1, n3 = (H - 1) * stride + 1 + (W - 2)
        let normArea = Double((W - 2) * (H - 2))
        let maxX = w - W, maxY = h - H
        guard maxX >= 0, maxY >= 0 else { return }
        sum.withUnsafeBufferPointer { s in
            sq.withUnsafeBufferPointer { q in
                packed.withUnsafeBufferPointer { o in
                    stumpValues.withUnsafeBufferPointer { vals in
                        stageCounts.withUnsafeBufferPointer { sc in
                            stageThresholds.withUnsafeBufferPointer { sth in
                                var y = 0
                                while y <= maxY {
                                    var x = 0
                                    while x <= maxX {
                                        let base = y * stride + x
                                        let vs = Double(s[base + n0] &- s[base + n1] &- s[base + n2] &+ s[base + n3])
                                        let vq = Double(q[base + n0] &- q[base + n1] &- q[base + n2] &+ q[base + n3])
                                        var nf = normArea * vq - vs * vs
                                        nf = nf > 0 ? nf.squareRoot() : 1
                                        let inv = Float(1 / nf)
                                        let result = fastPath
                                            ? Self.runStumps(s.baseAddress! + base, inv: inv, o: o, vals: vals, sc: sc, sth: sth)
                                            : runTrees(s.baseAddress! + base, stride: stride, inv: inv)
                                        if result > 0 { hit(x, y) } else if result == 0 { x += step }
                                        x += step
                                    }
                                    y += step
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Returns 1 when every stage passes, else `-stage` of the rejecting stage (0 for the first).
    @inline(__always)
    private static func runStumps(_ p: UnsafePointer<Int32>, inv: Float, o: UnsafeBufferPointer<Int32>, vals: UnsafeBufferPointer<Float>,
                                  sc: UnsafeBufferPointer<Int32>, sth: UnsafeBufferPointer<Float>) -> Int {
        var k = 0
        guard var op = o.baseAddress, var vp = vals.baseAddress else { return 0 }
        for si in 0..<sc.count {
            var acc: Float = 0
            let end = k + Int(sc[si])
            while k < end {
                // Integer weights: the weighted rectangle sums are exact in Int32 (as in OpenCV's float sums).
                var v = op[12] &* (p[Int(op[0])] &- p[Int(op[1])] &- p[Int(op[2])] &+ p[Int(op[3])])
                v &+= op[13] &* (p[Int(op[4])] &- p[Int(op[5])] &- p[Int(op[6])] &+ p[Int(op[7])])
                let w2 = op[14]
                if w2 != 0 { v &+= w2 &* (p[Int(op[8])] &- p[Int(op[9])] &- p[Int(op[10])] &+ p[Int(op[11])]) }
                acc += Float(v) * inv < vp[0] ? vp[1] : vp[2]
                op += 16; vp += 4
                k += 1
            }
            if acc < sth[si] { return -si }
        }
        return 1
    }

    /// The general (tree) path, for cascades whose weak classifiers have more than one split.
    private func runTrees(_ p: UnsafePointer<Int32>, stride: Int, inv: Float) -> Int {
        for (si, stage) in cascade.stages.enumerated() {
            var acc: Float = 0
            for c in stage.classifiers {
                var idx = 0
                while true {
                    let n = c.nodes[idx]
                    var v: Float = 0
                    for r in cascade.features[n.featureIndex].rects {
                        let a = r.y * stride + r.x, b = a + r.width, cc = a + r.height * stride, d = cc + r.width
                        v += r.weight * Float(p[a] &- p[b] &- p[cc] &+ p[d])
                    }
                    let next = v * inv < n.threshold ? n.left : n.right
                    if next <= 0 { acc += c.leaves[-next]; break }
                    idx = next
                }
            }
            if acc < stage.threshold { return -si }
        }
        return 1
    }
}

/// Groups overlapping rectangles as OpenCV's `groupRectangles(rects, minNeighbors, 0.2)` does.
public func groupRectangles(_ rects: [PixelRect], minNeighbors: Int, eps: Double = 0.2) -> [PixelRect] {
    guard minNeighbors > 0, !rects.isEmpty else { return rects }
    // Union-find over the "similar" relation.
    var parent = Array(rects.indices)
    func root(_ i: Int) -> Int { var i = i; while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }; return i }
    func similar(_ a: PixelRect, _ b: PixelRect) -> Bool {
        let delta = eps * Double(min(a.width, b.width) + min(a.height, b.height)) * 0.5
        return Double(abs(a.x - b.x)) <= delta && Double(abs(a.y - b.y)) <= delta
            && Double(abs(a.x + a.width - b.x - b.width)) <= delta && Double(abs(a.y + a.height - b.y - b.height)) <= delta
    }
    for i in rects.indices { for j in (i + 1)..<rects.count where similar(rects[i], rects[j]) {
        let a = root(i), b = root(j); if a != b { parent[b] = a }
    } }
    var classOf: [Int: Int] = [:]
    var sums: [(x: Int, y: Int, w: Int, h: Int, n: Int)] = []
    for i in rects.indices {
        let r = root(i)
        let c: Int
        if let k = classOf[r] { c = k } else { c = sums.count; classOf[r] = c; sums.append((0, 0, 0, 0, 0)) }
        sums[c].x += rects[i].x; sums[c].y += rects[i].y; sums[c].w += rects[i].width; sums[c].h += rects[i].height; sums[c].n += 1
    }
    let avg = sums.map { s -> (PixelRect, Int) in
        let f = 1 / Float(s.n)
        return (PixelRect(x: Int((Float(s.x) * f).rounded()), y: Int((Float(s.y) * f).rounded()),
                          width: Int((Float(s.w) * f).rounded()), height: Int((Float(s.h) * f).rounded())), s.n)
    }
    var out: [PixelRect] = []
    for (i, (r1, n1)) in avg.enumerated() where n1 > minNeighbors {
        var swallowed = false
        for (j, (r2, n2)) in avg.enumerated() where j != i && n2 > minNeighbors {
            let dx = Int((Double(r2.width) * eps).rounded()), dy = Int((Double(r2.height) * eps).rounded())
            if r1.x >= r2.x - dx && r1.y >= r2.y - dy && r1.x + r1.width <= r2.x + r2.width + dx && r1.y + r1.height <= r2.y + r2.height + dy
                && (n2 > max(3, n1) || n1 < 3) { swallowed = true; break }
        }
        if !swallowed { out.append(r1) }
    }
    return out
}
