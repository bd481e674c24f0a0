import Foundation

/// Errors loading a cascade file.
public enum CascadeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(String)
    /// The XML is not an OpenCV Haar cascade this loader understands.
    case malformed(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .unreadable(let s): "cannot read cascade: \(s)"
        case .malformed(let s): "not an OpenCV Haar cascade: \(s)"
        }
    }
}

/// A boosted Haar cascade as trained by OpenCV (window size, stages of weak classifiers, features).
public struct HaarCascade: Sendable {
    /// One weighted rectangle of a Haar feature, in window coordinates.
    public struct WeightedRect: Sendable, Equatable {
        /// Left edge.
        public var x: Int
        /// Top edge.
        public var y: Int
        /// Width.
        public var width: Int
        /// Height.
        public var height: Int
        /// Weight of the rectangle's pixel sum.
        public var weight: Float
    }
    /// A Haar feature: two or three weighted rectangles.
    public struct Feature: Sendable, Equatable {
        /// The rectangles.
        public var rects: [WeightedRect]
        /// Whether the feature is rotated 45° (not supported by the evaluator).
        public var tilted: Bool
    }
    /// A node of a weak classifier tree; children ≤ 0 are leaves (index `-child`).
    public struct Node: Sendable, Equatable {
        /// Index into `features`.
        public var featureIndex: Int
        /// Split threshold (for variance-normalised feature values).
        public var threshold: Float
        /// Left child (value < threshold), or `-leafIndex` when ≤ 0.
        public var left: Int
        /// Right child, or `-leafIndex` when ≤ 0.
        public var right: Int
    }
    /// A weak classifier: a small tree (usually a single split, a stump).
    public struct WeakClassifier: Sendable, Equatable {
        /// The tree's internal nodes; node 0 is the root.
        public var nodes: [Node]
        /// The leaf values.
        public var leaves: [Float]
    }
    /// A stage: the sum of its weak classifiers must reach the threshold.
    public struct Stage: Sendable, Equatable {
        /// Stage threshold.
        public var threshold: Float
        /// Weak classifiers.
        public var classifiers: [WeakClassifier]
    }

    /// Detection window width.
    public var windowWidth: Int
    /// Detection window height.
    public var windowHeight: Int
    /// The stages, evaluated in order with early rejection.
    public var stages: [Stage]
    /// The features referenced by the nodes.
    public var features: [Feature]

    /// Whether every weak classifier is a single split (the fast path).
    public var isStumpBased: Bool { stages.allSatisfy { $0.classifiers.allSatisfy { $0.nodes.count == 1 } } }
    /// Whether any feature is tilted.
    public var hasTiltedFeatures: Bool { features.contains { $0.tilted } }
    /// Total number of weak classifiers.
    public var weakClassifierCount: Int { stages.reduce(0) { $0 + $1.classifiers.count } }

    /// Loads an OpenCV cascade XML file (the new `opencv-cascade-classifier` or the old `opencv-haar-classifier` format).
    public init(contentsOf path: String) throws(CascadeError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path) }
        try self.init(xml: data)
    }

    /// Parses an OpenCV cascade from XML bytes.
    public init(xml data: Data) throws(CascadeError) {
        let root: XMLNode
        do { root = try MiniXML.parse(data) } catch { throw .malformed("XML: \(error.message)") }
        guard let storage = root.child("opencv_storage"), let cascade = storage.children.first(where: { !$0.name.isEmpty }) else {
            throw .malformed("no opencv_storage element")
        }
        if cascade.child("stageType") != nil || cascade.child("featureType") != nil {
            try self.init(newFormat: cascade)
        } else if cascade.child("size") != nil {
            try self.init(oldFormat: cascade)
        } else {
            throw .malformed("unknown cascade layout <\(cascade.name)>")
        }
        // OpenCV subtracts a small epsilon from the stage thresholds when loading.
        for i in stages.indices { stages[i].threshold -= 1e-5 }
        for s in stages { for c in s.classifiers { for n in c.nodes where n.featureIndex < 0 || n.featureIndex >= features.count {
            throw .malformed("feature index \(n.featureIndex) out of range")
        } } }
        guard !stages.isEmpty, windowWidth > 0, windowHeight > 0 else { throw .malformed("empty cascade") }
    }

    private init(newFormat c: XMLNode) throws(CascadeError) {
        guard c.child("stageType")?.text == "BOOST", c.child("featureType")?.text == "HAAR" else {
            throw .malformed("only BOOST/HAAR cascades are supported (got \(c.child("featureType")?.text ?? "?"))")
        }
        guard let w = Int(c.child("width")?.text ?? ""), let h = Int(c.child("height")?.text ?? "") else { throw .malformed("window size") }
        windowWidth = w; windowHeight = h
        guard let stageNodes = c.child("stages")?.children, let featNodes = c.child("features")?.children else { throw .malformed("stages/features") }
        var stages: [Stage] = []
        for s in stageNodes {
            guard let t = Float(s.child("stageThreshold")?.text ?? ""), let weak = s.child("weakClassifiers")?.children else { throw .malformed("stage") }
            var cls: [WeakClassifier] = []
            for wc in weak {
                let ints = (wc.child("internalNodes")?.text ?? "").split(whereSeparator: \.isWhitespace)
                let leaves = (wc.child("leafValues")?.text ?? "").split(whereSeparator: \.isWhitespace).compactMap { Float($0) }
                guard ints.count % 4 == 0, !ints.isEmpty, !leaves.isEmpty else { throw .malformed("weak classifier") }
                var nodes: [Node] = []
                for i in stride(from: 0, to: ints.count, by: 4) {
                    guard let l = Int(ints[i]), let r = Int(ints[i + 1]), let f = Int(ints[i + 2]), let th = Float(ints[i + 3]) else { throw .malformed("node") }
                    nodes.append(Node(featureIndex: f, threshold: th, left: l, right: r))
                }
                for n in nodes { for ch in [n.left, n.right] where (ch > 0 && ch >= nodes.count) || (ch <= 0 && -ch >= leaves.count) {
                    throw .malformed("tree child out of range")
                } }
                cls.append(WeakClassifier(nodes: nodes, leaves: leaves))
            }
            stages.append(Stage(threshold: t, classifiers: cls))
        }
        var features: [Feature] = []
        for f in featNodes {
            guard let rects = f.child("rects")?.children else { throw .malformed("feature") }
            features.append(Feature(rects: try rects.map { r throws(CascadeError) in try Self.rect(r.text) },
                                    tilted: (f.child("tilted")?.text ?? "0") == "1"))
        }
        self.stages = stages
        self.features = features
    }

    private init(oldFormat c: XMLNode) throws(CascadeError) {
        let size = (c.child("size")?.text ?? "").split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard size.count == 2, let stageNodes = c.child("stages")?.children else { throw .malformed("old format size/stages") }
        windowWidth = size[0]; windowHeight = size[1]
        var stages: [Stage] = []
        var features: [Feature] = []
        for s in stageNodes {
            guard let t = Float(s.child("stage_threshold")?.text ?? ""), let trees = s.child("trees")?.children else { throw .malformed("old stage") }
            var cls: [WeakClassifier] = []
            for tree in trees {
                // Each tree is a list of nodes; a node has either left_val or left_node (same for right).
                var nodes: [Node] = []
                var leaves: [Float] = []
                for n in tree.children {
                    guard let fe = n.child("feature"), let rects = fe.child("rects")?.children, let th = Float(n.child("threshold")?.text ?? "") else {
                        throw .malformed("old node")
                    }
                    features.append(Feature(rects: try rects.map { r throws(CascadeError) in try Self.rect(r.text) },
                                            tilted: (fe.child("tilted")?.text ?? "0") == "1"))
                    func child(_ side: String) throws(CascadeError) -> Int {
                        if let v = Float(n.child("\(side)_val")?.text ?? "") { leaves.append(v); return -(leaves.count - 1) }
                        if let i = Int(n.child("\(side)_node")?.text ?? "") { return i }
                        throw .malformed("old node child")
                    }
                    let l = try child("left"), r = try child("right")
                    nodes.append(Node(featureIndex: features.count - 1, threshold: th, left: l, right: r))
                }
                guard !nodes.isEmpty else { throw .malformed("empty tree") }
                // Old-format internal node references are node indices > 0 (the root is 0): same convention.
                cls.append(WeakClassifier(nodes: nodes, leaves: leaves))
            }
            stages.append(Stage(threshold: t, classifiers: cls))
        }
        self.stages = stages
        self.features = features
    }

    private static func rect(_ text: String) throws(CascadeError) -> WeightedRect {
        let v = text.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
        guard v.count == 5 else { throw .malformed("rect '\(text)'") }
        return WeightedRect(x: Int(v[0]), y: Int(v[1]), width: Int(v[2]), height: Int(v[3]), weight: Float(v[4]))
    }
}

/// A parsed XML element: name, concatenated text, child elements.
struct XMLNode: Sendable {
    var name: String
    var text: String = ""
    var children: [XMLNode] = []
    func child(_ n: String) -> XMLNode? { children.first { $0.name == n } }
}

struct MiniXMLError: Error { var message: String }

/// A minimal XML reader for OpenCV's storage files: elements, text, comments, declarations.
enum MiniXML {
    static func parse(_ data: Data) throws(MiniXMLError) -> XMLNode {
        let b = [UInt8](data)
        var i = 0
        var stack: [XMLNode] = [XMLNode(name: "")]
        var text: [UInt8] = []
        func flushText() {
            if !text.isEmpty {
                let s = String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if !s.isEmpty { stack[stack.count - 1].text += stack[stack.count - 1].text.isEmpty ? s : " " + s }
                text.removeAll(keepingCapacity: true)
            }
        }
        func find(_ pat: [UInt8], from: Int) -> Int? {
            var j = from
            while j + pat.count <= b.count {
                if b[j] == pat[0] && Array(b[j..<(j + pat.count)]) == pat { return j }
                j += 1
            }
            return nil
        }
        while i < b.count {
            if b[i] != UInt8(ascii: "<") { text.append(b[i]); i += 1; continue }
            flushText()
            if i + 3 < b.count, b[i + 1] == UInt8(ascii: "!"), b[i + 2] == UInt8(ascii: "-"), b[i + 3] == UInt8(ascii: "-") {
                guard let e = find(Array("-->".utf8), from: i + 4) else { throw MiniXMLError(message: "unterminated comment") }
                i = e + 3; continue
            }
            guard let close = find([UInt8(ascii: ">")], from: i) else { throw MiniXMLError(message: "unterminated tag") }
            let inner = b[(i + 1)..<close]
            i = close + 1
            guard let first = inner.first else { throw MiniXMLError(message: "empty tag") }
            if first == UInt8(ascii: "?") || first == UInt8(ascii: "!") { continue }
            if first == UInt8(ascii: "/") {
                guard stack.count > 1 else { throw MiniXMLError(message: "unbalanced close tag") }
                let name = String(decoding: inner.dropFirst(), as: UTF8.self).trimmingCharacters(in: .whitespaces)
                let node = stack.removeLast()
                guard node.name == name else { throw MiniXMLError(message: "</\(name)> closes <\(node.name)>") }
                stack[stack.count - 1].children.append(node)
                continue
            }
            let selfClosing = inner.last == UInt8(ascii: "/")
            let body = selfClosing ? inner.dropLast() : inner
            let name = String(decoding: body.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }, as: UTF8.self)
            if selfClosing { stack[stack.count - 1].children.append(XMLNode(name: name)) } else { stack.append(XMLNode(name: name)) }
        }
        guard stack.count == 1 else { throw MiniXMLError(message: "unclosed <\(stack.last?.name ?? "")>") }
        return stack[0]
    }
}
