import Foundation

/// Every threshold of the liveness checks; loadable from the camera profile's JSON (snake_case keys, missing keys keep defaults).
public struct LivenessThresholds: Codable, Sendable, Equatable {
    /// Face search over the whole frame.
    public var faceDetection = DetectionParameters(scaleFactor: 1.1, minNeighbors: 3, minSize: 60)
    /// Eye search inside the upper face (min size is relative: face width / 10).
    public var eyeScaleFactor = 1.1
    /// Eye search minNeighbors.
    public var eyeMinNeighbors = 3
    /// Smallest face width as a fraction of the frame width ("come closer" below it).
    public var minFaceFraction = 0.15
    /// Largest face width as a fraction of the frame width ("move back" above it).
    public var maxFaceFraction = 0.7
    /// Largest distance of the face centre from the frame centre, as a fraction of the frame size.
    public var maxCenterOffset = 0.25
    /// Smallest variance of the Laplacian in the face region (sharpness).
    public var minSharpness = 20.0
    /// Smallest mean luma of the face region (0…255).
    public var minMeanLuma = 50.0
    /// Largest mean luma of the face region (0…255).
    public var maxMeanLuma = 215.0
    /// Largest fraction of clipped pixels (≤ 5 or ≥ 250) in the face region.
    public var maxClippedFraction = 0.15
    /// Seconds the shopper has to perform the challenge after it is shown.
    public var challengeWindow = 6.0
    /// Frames without eyes (between frames with eyes) that count as a blink.
    public var blinkMinClosedFrames = 1
    /// Face-centre shift, as a fraction of the face width, that counts as a head turn.
    public var turnShift = 0.12
    /// Face-width growth ratio that counts as moving closer.
    public var closerRatio = 1.2
    /// Largest spectral peak ratio in the face region before it counts as screen moiré.
    public var maxMoire = 8.0
    /// Largest second (crossing) spectral peak ratio before it counts as a halftone print.
    public var maxHalftone = 8.0
    /// Smallest micro-motion (px, mean block motion between frames) of a live face.
    public var minMicroMotion = 0.15
    /// Smallest non-rigid motion (px, residual after a similarity fit) of a live face.
    public var minNonRigidMotion = 0.3
    /// Largest straight-edge fraction around the face before it counts as a bezel or frame edge.
    public var maxBezelEdge = 0.55
    /// Frames with a usable face needed for a decision.
    public var minFrames = 8
    /// Score a passing session reports at least; below it the decision is inconclusive.
    public var passScore = 0.5

    /// Defaults.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case faceDetection = "face_detection", eyeScaleFactor = "eye_scale_factor", eyeMinNeighbors = "eye_min_neighbors"
        case minFaceFraction = "min_face_fraction", maxFaceFraction = "max_face_fraction", maxCenterOffset = "max_center_offset"
        case minSharpness = "min_sharpness", minMeanLuma = "min_mean_luma", maxMeanLuma = "max_mean_luma"
        case maxClippedFraction = "max_clipped_fraction", challengeWindow = "challenge_window"
        case blinkMinClosedFrames = "blink_min_closed_frames", turnShift = "turn_shift", closerRatio = "closer_ratio"
        case maxMoire = "max_moire", maxHalftone = "max_halftone", minMicroMotion = "min_micro_motion"
        case minNonRigidMotion = "min_non_rigid_motion", maxBezelEdge = "max_bezel_edge", minFrames = "min_frames", passScore = "pass_score"
    }

    /// Decodes thresholds; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LivenessThresholds()
        faceDetection = try c.decodeIfPresent(DetectionParameters.self, forKey: .faceDetection) ?? d.faceDetection
        eyeScaleFactor = try c.decodeIfPresent(Double.self, forKey: .eyeScaleFactor) ?? d.eyeScaleFactor
        eyeMinNeighbors = try c.decodeIfPresent(Int.self, forKey: .eyeMinNeighbors) ?? d.eyeMinNeighbors
        minFaceFraction = try c.decodeIfPresent(Double.self, forKey: .minFaceFraction) ?? d.minFaceFraction
        maxFaceFraction = try c.decodeIfPresent(Double.self, forKey: .maxFaceFraction) ?? d.maxFaceFraction
        maxCenterOffset = try c.decodeIfPresent(Double.self, forKey: .maxCenterOffset) ?? d.maxCenterOffset
        minSharpness = try c.decodeIfPresent(Double.self, forKey: .minSharpness) ?? d.minSharpness
        minMeanLuma = try c.decodeIfPresent(Double.self, forKey: .minMeanLuma) ?? d.minMeanLuma
        maxMeanLuma = try c.decodeIfPresent(Double.self, forKey: .maxMeanLuma) ?? d.maxMeanLuma
        maxClippedFraction = try c.decodeIfPresent(Double.self, forKey: .maxClippedFraction) ?? d.maxClippedFraction
        challengeWindow = try c.decodeIfPresent(Double.self, forKey: .challengeWindow) ?? d.challengeWindow
        blinkMinClosedFrames = try c.decodeIfPresent(Int.self, forKey: .blinkMinClosedFrames) ?? d.blinkMinClosedFrames
        turnShift = try c.decodeIfPresent(Double.self, forKey: .turnShift) ?? d.turnShift
        closerRatio = try c.decodeIfPresent(Double.self, forKey: .closerRatio) ?? d.closerRatio
        maxMoire = try c.decodeIfPresent(Double.self, forKey: .maxMoire) ?? d.maxMoire
        maxHalftone = try c.decodeIfPresent(Double.self, forKey: .maxHalftone) ?? d.maxHalftone
        minMicroMotion = try c.decodeIfPresent(Double.self, forKey: .minMicroMotion) ?? d.minMicroMotion
        minNonRigidMotion = try c.decodeIfPresent(Double.self, forKey: .minNonRigidMotion) ?? d.minNonRigidMotion
        maxBezelEdge = try c.decodeIfPresent(Double.self, forKey: .maxBezelEdge) ?? d.maxBezelEdge
        minFrames = try c.decodeIfPresent(Int.self, forKey: .minFrames) ?? d.minFrames
        passScore = try c.decodeIfPresent(Double.self, forKey: .passScore) ?? d.passScore
    }

    /// Loads thresholds from a JSON file: either the thresholds object itself or a camera-profile
    /// object carrying them under `"liveness"`.
    public static func load(path: String) throws -> LivenessThresholds {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        if let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any], let sub = obj["liveness"] {
            return try JSONDecoder().decode(LivenessThresholds.self, from: JSONSerialization.data(withJSONObject: sub))
        }
        return try JSONDecoder().decode(LivenessThresholds.self, from: data)
    }
}
