import Foundation

/// What the shopper is asked to do next (shown on the terminal's display or the kiosk screen).
public enum LivenessGuidance: String, Sendable, Codable, CaseIterable {
    /// No face found.
    case faceTheCamera = "face_the_camera"
    /// More than one face found.
    case onlyOnePerson = "only_one_person"
    /// The face is too small.
    case comeCloser = "come_closer"
    /// The face is too large.
    case moveBack = "move_back"
    /// The face is off-centre.
    case centerYourFace = "center_your_face"
    /// The face is too dark.
    case moreLight = "more_light"
    /// The face is over-exposed.
    case lessLight = "less_light"
    /// The face is blurred.
    case holdStill = "hold_still"
    /// Challenge: blink.
    case blink
    /// Challenge: turn the head to the shopper's left.
    case turnLeft = "turn_left"
    /// Challenge: turn the head to the shopper's right.
    case turnRight = "turn_right"
    /// Challenge: move closer to the camera.
    case moveCloser = "move_closer"
    /// Enough frames seen: the check can be decided.
    case done

    /// Short text for the terminal's display.
    public var message: String {
        switch self {
        case .faceTheCamera: "Please face the camera"
        case .onlyOnePerson: "Only one person, please"
        case .comeCloser: "Please come closer"
        case .moveBack: "Please move back a little"
        case .centerYourFace: "Please center your face"
        case .moreLight: "More light, please"
        case .lessLight: "Too bright: avoid direct light"
        case .holdStill: "Please hold still"
        case .blink: "Please blink"
        case .turnLeft: "Turn your head to your left"
        case .turnRight: "Turn your head to your right"
        case .moveCloser: "Move closer to the camera"
        case .done: "Thank you"
        }
    }

    /// Whether this guidance reports a quality problem (rather than a challenge or completion).
    public var isQualityProblem: Bool {
        switch self {
        case .blink, .turnLeft, .turnRight, .moveCloser, .done: false
        default: true
        }
    }
}

/// The active challenge of a session, chosen at random so that a pre-recorded video cannot know it.
public enum LivenessChallenge: String, Sendable, Codable, CaseIterable {
    /// Eyes disappear then reappear in the face region.
    case blink
    /// Head turns to the shopper's left (the face moves to the camera image's right: the camera is not mirrored).
    case turnLeft = "turn_left"
    /// Head turns to the shopper's right (the face moves to the camera image's left).
    case turnRight = "turn_right"
    /// The face box grows by the configured ratio.
    case moveCloser = "move_closer"

    /// The guidance that asks for this challenge.
    public var guidance: LivenessGuidance {
        switch self {
        case .blink: .blink
        case .turnLeft: .turnLeft
        case .turnRight: .turnRight
        case .moveCloser: .moveCloser
        }
    }
}

/// One check's measured value against its threshold.
public struct LivenessCheck: Sendable, Codable, Equatable {
    /// Name, e.g. "moire", "challenge_blink".
    public var name: String
    /// Measured value.
    public var value: Double
    /// Threshold compared against.
    public var threshold: Double
    /// Whether the check passed.
    public var passed: Bool

    /// Creates a check record.
    public init(name: String, value: Double, threshold: Double, passed: Bool) {
        self.name = name; self.value = value; self.threshold = threshold; self.passed = passed
    }
}

/// The outcome of a liveness session.
public struct LivenessOutcome: Sendable, Codable, Equatable {
    /// The overall decision.
    public enum Decision: String, Sendable, Codable {
        /// A live person was seen.
        case pass
        /// An attack or a failed challenge was seen.
        case fail
        /// Not enough evidence either way.
        case inconclusive
    }
    /// The decision.
    public var decision: Decision
    /// Score in 0…1 (fraction of checks passed, capped below 0.5 on failure).
    public var score: Double
    /// Every check with its evidence.
    public var checks: [LivenessCheck]
    /// Frames with one usable face.
    public var framesUsed: Int
    /// Seconds from the first to the last frame processed.
    public var duration: Double
    /// The challenge asked for.
    public var challenge: LivenessChallenge

    enum CodingKeys: String, CodingKey {
        case decision, score, checks, framesUsed = "frames_used", duration, challenge
    }
}

/// Loads the cascades once and creates sessions; shareable across threads.
public struct LivenessEngine: Sendable {
    /// The default cascade directory (Debian's opencv-data).
    public static let defaultCascadeDirectory = "/usr/share/opencv4/haarcascades"
    /// The face detector (haarcascade_frontalface_default.xml).
    public let faceDetector: HaarDetector
    /// The eye detector (haarcascade_eye.xml).
    public let eyeDetector: HaarDetector
    /// The thresholds sessions use.
    public var thresholds: LivenessThresholds

    /// Loads the face and eye cascades from `cascadeDirectory`.
    public init(cascadeDirectory: String = LivenessEngine.defaultCascadeDirectory, thresholds: LivenessThresholds = .init()) throws(CascadeError) {
        faceDetector = try HaarDetector(contentsOf: cascadeDirectory + "/haarcascade_frontalface_default.xml")
        eyeDetector = try HaarDetector(contentsOf: cascadeDirectory + "/haarcascade_eye.xml")
        self.thresholds = thresholds
    }

    /// A new session with a challenge drawn from the system's random generator.
    public func makeSession() -> LivenessSession {
        var rng = SystemRandomNumberGenerator()
        return makeSession(using: &rng)
    }

    /// A new session with a challenge drawn from `rng` (injectable for tests).
    public func makeSession<R: RandomNumberGenerator>(using rng: inout R) -> LivenessSession {
        let challenge = LivenessChallenge.allCases.randomElement(using: &rng) ?? .blink
        return LivenessSession(engine: self, challenge: challenge)
    }

    /// A new session with a given challenge.
    public func makeSession(challenge: LivenessChallenge) -> LivenessSession {
        LivenessSession(engine: self, challenge: challenge)
    }

    /// The eye boxes in the upper part of `face`.
    public func eyes(in image: GrayImage, face: PixelRect) -> [PixelRect] {
        let roi = PixelRect(x: face.x, y: face.y, width: face.width, height: face.height / 2 + face.height / 8)
        let p = DetectionParameters(scaleFactor: thresholds.eyeScaleFactor, minNeighbors: thresholds.eyeMinNeighbors,
                                    minSize: max(8, face.width / 10), maxSize: face.width / 2)
        return eyeDetector.detect(in: image, parameters: p, roi: roi)
    }
}

/// One shopper's liveness check: feed frames, follow the guidance, read the outcome.
public struct LivenessSession: Sendable {
    /// The challenge this session asks for.
    public let challenge: LivenessChallenge
    private let engine: LivenessEngine
    private var tracker: FaceTracker
    private var t: LivenessThresholds { engine.thresholds }

    private var firstTimestamp: Double?
    private var lastTimestamp: Double?
    private var framesUsed = 0
    private var previous: (image: GrayImage, face: PixelRect)?
    // Evidence.
    private var moire: [Double] = []
    private var halftone: [Double] = []
    private var bezel: [Double] = []
    private var microMotion: [Double] = []
    private var nonRigid: [Double] = []
    // Challenge state.
    private var challengeStart: Double?
    private var baseline: PixelRect?
    private var eyesOpenSeen = false
    private var closedRun = 0
    private var blinkArmed = false
    private var challengeDoneAt: Double?
    private var challengeValue = 0.0
    private var lastGuidance = LivenessGuidance.faceTheCamera

    init(engine: LivenessEngine, challenge: LivenessChallenge) {
        self.engine = engine
        self.challenge = challenge
        self.tracker = FaceTracker(detector: engine.faceDetector, parameters: engine.thresholds.faceDetection)
    }

    /// The quality gates for one face in one frame: nil when usable, else what to fix.
    public static func gate(_ image: GrayImage, face: PixelRect, thresholds t: LivenessThresholds, sizeGate: Bool = true) -> LivenessGuidance? {
        let frac = Double(face.width) / Double(image.width)
        if sizeGate && frac < t.minFaceFraction { return .comeCloser }
        if sizeGate && frac > t.maxFaceFraction { return .moveBack }
        if abs(face.midX - Double(image.width) / 2) > t.maxCenterOffset * Double(image.width)
            || abs(face.midY - Double(image.height) / 2) > t.maxCenterOffset * Double(image.height) { return .centerYourFace }
        let inner = face.expanded(by: -0.15)
        let e = ImageMetrics.exposure(image, in: inner)
        if e.mean < t.minMeanLuma { return .moreLight }
        if e.mean > t.maxMeanLuma { return .lessLight }
        if e.clipped > t.maxClippedFraction { return e.mean < 128 ? .moreLight : .lessLight }
        if ImageMetrics.laplacianVariance(image, in: inner) < t.minSharpness { return .holdStill }
        return nil
    }

    /// Processes one frame taken at `timestamp` (seconds, monotonic) and returns what to tell the shopper.
    public mutating func process(_ image: GrayImage, timestamp: Double) -> LivenessGuidance {
        if firstTimestamp == nil { firstTimestamp = timestamp }
        lastTimestamp = timestamp
        var faces = tracker.track(image)
        if faces.count > 1 {
            // Haar cascades have false positives (textured clothing, posters): keep the candidates with eyes.
            let withEyes = faces.filter { !engine.eyes(in: image, face: $0).isEmpty }
            if withEyes.count == 1 { faces = withEyes; tracker.follow(withEyes[0]) }
        }
        guard faces.count == 1, let face = faces.first else {
            previous = nil
            if faces.isEmpty && challenge == .blink { closedRun = 0 }
            lastGuidance = faces.isEmpty ? .faceTheCamera : .onlyOnePerson
            return lastGuidance
        }
        // During the move-closer challenge the size gates would fight the challenge itself.
        let inChallenge = challengeStart != nil && challengeDoneAt == nil
        if let problem = Self.gate(image, face: face, thresholds: t, sizeGate: !(inChallenge && challenge == .moveCloser)) {
            previous = nil
            lastGuidance = problem
            return problem
        }
        framesUsed += 1
        // Passive evidence.
        let peaks = ImageMetrics.spectralPeaks(image, face: face)
        moire.append(peaks.primary)
        halftone.append(peaks.crossing)
        bezel.append(ImageMetrics.straightEdgeFraction(image, face: face))
        if let prev = previous, prev.image.width == image.width, prev.image.height == image.height {
            let pred = (tx: face.midX - prev.face.midX, ty: face.midY - prev.face.midY, s: Double(face.width) / Double(prev.face.width))
            let m = ImageMetrics.motionStats(ImageMetrics.blockMotion(from: prev.image, to: image, face: prev.face, predicted: pred))
            microMotion.append(m.mean)
            nonRigid.append(m.nonRigid)
        }
        previous = (image, face)
        // Challenge.
        if challengeStart == nil { challengeStart = timestamp; baseline = face }
        if challengeDoneAt == nil, let start = challengeStart, timestamp - start <= t.challengeWindow, let base = baseline {
            switch challenge {
            case .blink:
                let open = !engine.eyes(in: image, face: face).isEmpty
                if open {
                    if blinkArmed && closedRun >= t.blinkMinClosedFrames { challengeDoneAt = timestamp; challengeValue = Double(closedRun) }
                    eyesOpenSeen = true; closedRun = 0; blinkArmed = true
                } else if eyesOpenSeen {
                    closedRun += 1
                    challengeValue = max(challengeValue, 0)
                }
            case .turnLeft, .turnRight:
                let shift = (face.midX - base.midX) / Double(base.width) * (challenge == .turnLeft ? 1 : -1)
                challengeValue = max(challengeValue, shift)
                if shift >= t.turnShift { challengeDoneAt = timestamp }
            case .moveCloser:
                let ratio = Double(face.width) / Double(base.width)
                challengeValue = max(challengeValue, ratio)
                if ratio >= t.closerRatio { challengeDoneAt = timestamp }
            }
        }
        if challengeDoneAt != nil && framesUsed >= t.minFrames { lastGuidance = .done } else { lastGuidance = challengeDoneAt == nil ? challenge.guidance : .holdStill }
        if challengeDoneAt == nil, let start = challengeStart, timestamp - start > t.challengeWindow, framesUsed >= t.minFrames { lastGuidance = .done }
        return lastGuidance
    }

    /// Whether the session has seen enough to decide (the caller may stop feeding frames).
    public var isComplete: Bool { lastGuidance == .done }

    /// The decision from the evidence gathered so far.
    public func result() -> LivenessOutcome {
        let duration = (lastTimestamp ?? 0) - (firstTimestamp ?? 0)
        var checks: [LivenessCheck] = []
        func median(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[a.count / 2] }
        func upper(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[min(a.count - 1, a.count * 3 / 4)] }
        checks.append(.init(name: "frames", value: Double(framesUsed), threshold: Double(t.minFrames), passed: framesUsed >= t.minFrames))
        let enough = framesUsed >= t.minFrames
        if enough {
            let mo = median(moire), ht = median(halftone), bz = median(bezel), mm = median(microMotion), nr = upper(nonRigid)
            checks.append(.init(name: "moire", value: mo, threshold: t.maxMoire, passed: mo <= t.maxMoire))
            checks.append(.init(name: "halftone", value: ht, threshold: t.maxHalftone, passed: ht <= t.maxHalftone))
            checks.append(.init(name: "bezel_edge", value: bz, threshold: t.maxBezelEdge, passed: bz <= t.maxBezelEdge))
            checks.append(.init(name: "micro_motion", value: mm, threshold: t.minMicroMotion, passed: mm >= t.minMicroMotion))
            checks.append(.init(name: "non_rigid_motion", value: nr, threshold: t.minNonRigidMotion, passed: nr >= t.minNonRigidMotion))
        }
        let challengeThreshold: Double = switch challenge {
        case .blink: Double(t.blinkMinClosedFrames)
        case .turnLeft, .turnRight: t.turnShift
        case .moveCloser: t.closerRatio
        }
        let windowOver = challengeStart.map { (lastTimestamp ?? $0) - $0 > t.challengeWindow } ?? false
        checks.append(.init(name: "challenge_\(challenge.rawValue)", value: challengeValue, threshold: challengeThreshold, passed: challengeDoneAt != nil))
        let passed = checks.filter(\.passed).count
        var score = Double(passed) / Double(checks.count)
        let decision: LivenessOutcome.Decision
        let passiveFailed = enough && checks.contains { !$0.passed && !$0.name.hasPrefix("challenge_") && $0.name != "frames" }
        if passiveFailed || (challengeDoneAt == nil && windowOver && enough) {
            decision = .fail
            score = min(score, 0.49)
        } else if !enough || challengeDoneAt == nil {
            decision = .inconclusive
            score = min(score, 0.49)
        } else {
            decision = score >= t.passScore ? .pass : .inconclusive
        }
        return LivenessOutcome(decision: decision, score: score, checks: checks, framesUsed: framesUsed, duration: duration, challenge: challenge)
    }
}
