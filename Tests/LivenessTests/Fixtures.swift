import Foundation
import Testing
@testable import Liveness

/// Where the test inputs are: Debian's opencv-data cascades and the faces fetched by Provisioning/fetch-faces.sh.
enum Fixtures {
    static let cascadeDir = LivenessEngine.defaultCascadeDirectory
    static let haveCascades = FileManager.default.fileExists(atPath: cascadeDir + "/haarcascade_frontalface_default.xml")
    static let skipMessage: Comment = "opencv-data is not installed (/usr/share/opencv4/haarcascades): run Provisioning/deps.sh"
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let facesDir = repoRoot + "/.cache/faces"

    /// The engine with default thresholds (loaded once).
    static let engine: LivenessEngine? = try? LivenessEngine(cascadeDirectory: cascadeDir)

    struct Missing: Error, CustomStringConvertible { var description: String }

    static func requireEngine() throws -> LivenessEngine {
        guard let e = engine else { throw Missing(description: "cannot load the cascades from \(cascadeDir)") }
        return e
    }

    /// A fetched face photo; fails (not skips) when opencv-data is there but the fetch did not run.
    static func photo(_ name: String) throws -> GrayImage {
        let path = facesDir + "/" + name + ".pgm"
        guard FileManager.default.fileExists(atPath: path) else {
            throw Missing(description: "\(path) missing: run Provisioning/fetch-faces.sh (make test-unit does)")
        }
        return try GrayImage(pgmFile: path)
    }

    /// OpenCV's boxes recorded by fetch-faces.sh.
    static func opencvReference() throws -> [String: (faces: [PixelRect], eyes: [PixelRect])] {
        let path = facesDir + "/opencv-boxes.json"
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let images = obj["images"] as? [String: [String: Any]] else {
            throw Missing(description: "\(path) missing: run Provisioning/fetch-faces.sh")
        }
        func rects(_ a: Any?) -> [PixelRect] {
            ((a as? [[Int]]) ?? []).compactMap { $0.count == 4 ? PixelRect(x: $0[0], y: $0[1], width: $0[2], height: $0[3]) : nil }
        }
        return images.mapValues { (rects($0["faces"]), rects($0["eyes"])) }
    }

    /// A synthesizer for the astronaut photo (face and eyes found by our own detector).
    static func synthesizer(_ name: String = "astronaut") throws -> Synthesizer {
        let e = try requireEngine()
        let p = try photo(name)
        let faces = e.faceDetector.detect(in: p)
        guard faces.count == 1 else { throw Missing(description: "expected one face in \(name), found \(faces.count)") }
        return Synthesizer(photo: p, face: faces[0], eyes: e.eyes(in: p, face: faces[0]))
    }

    /// Runs frames through a session (5 frames per second).
    static func run(_ frames: [GrayImage], challenge: LivenessChallenge, engine: LivenessEngine? = nil) throws -> (LivenessOutcome, [LivenessGuidance]) {
        let e = try engine ?? requireEngine()
        var s = e.makeSession(challenge: challenge)
        var g: [LivenessGuidance] = []
        for (i, f) in frames.enumerated() { g.append(s.process(f, timestamp: Double(i) * 0.2)) }
        return (s.result(), g)
    }
}

extension LivenessOutcome {
    func check(_ name: String) -> LivenessCheck? { checks.first { $0.name == name } }
}
