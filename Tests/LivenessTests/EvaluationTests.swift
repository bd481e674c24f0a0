import Foundation
import Testing
@testable import Liveness

@Suite("Evaluation and configuration")
struct EvaluationTests {
    func r(_ label: String, _ d: LivenessOutcome.Decision) -> LivenessEvaluation.SessionResult {
        .init(session: "s", label: label, decision: d, score: 0, failedChecks: [])
    }

    @Test func apcerPerSpeciesAndBpcer() {
        let sessions = Array(repeating: r("bona_fide", .pass), count: 8) + [r("bona_fide", .fail), r("bona_fide", .inconclusive)]
            + [r("print", .pass), r("print", .fail), r("print", .fail), r("print", .inconclusive)]
            + [r("screen", .fail), r("screen", .fail)]
        let ev = LivenessEvaluation(sessions: sessions)
        #expect(ev.bpcer.presentations == 10 && ev.bpcer.accepted == 8 && ev.bpcer.inconclusive == 1)
        #expect(ev.bpcer.rate == 0.2)
        #expect(ev.apcer["print"]?.rate == 0.25 && ev.apcer["print"]?.inconclusive == 1)
        #expect(ev.apcer["screen"]?.rate == 0)
        #expect(ev.maxAPCER == 0.25)
        #expect(ev.summary.contains("APCER[print] 25.0 %") && ev.summary.contains("BPCER 20.0 %"))
    }

    @Test func emptyGroupsHaveNoRate() {
        let ev = LivenessEvaluation(sessions: [r("print", .fail)])
        #expect(ev.bpcer.rate == nil && ev.bpcer.presentations == 0)
        #expect(ev.maxAPCER == 0)
    }

    @Test func thresholdsDecodeSnakeCaseWithDefaults() throws {
        let json = #"{"max_moire": 5.5, "face_detection": {"scale_factor": 1.2, "min_neighbors": 4, "min_size": 80}, "challenge_window": 4}"#
        let t = try JSONDecoder().decode(LivenessThresholds.self, from: Data(json.utf8))
        #expect(t.maxMoire == 5.5 && t.challengeWindow == 4)
        #expect(t.faceDetection == DetectionParameters(scaleFactor: 1.2, minNeighbors: 4, minSize: 80))
        #expect(t.minSharpness == LivenessThresholds().minSharpness)
        let round = try JSONDecoder().decode(LivenessThresholds.self, from: JSONEncoder().encode(t))
        #expect(round == t)
        // A camera profile carrying the thresholds under "liveness".
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lv-profile-\(UUID().uuidString).json").path
        try Data(#"{"name": "usb-cam", "liveness": {"min_frames": 12}}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try LivenessThresholds.load(path: path).minFrames == 12)
    }

    @Test(.enabled(if: Fixtures.haveCascades, Fixtures.skipMessage))
    func recordAndEvaluateSessions() throws {
        let syn = try Fixtures.synthesizer()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("lv-eval-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (name, kind, label) in [("a-live", Synthesizer.Kind.live, "bona_fide"), ("b-static", .staticImage, "static")] {
            var rec = try SessionRecorder(directory: root + "/" + name, label: label, challenge: .blink)
            for (i, f) in syn.session(kind, challenge: .blink).enumerated() { try rec.append(f, timestamp: Double(i) * 0.2) }
            try rec.finish()
        }
        #expect(throws: SessionFileError.self) { try SessionRecorder(directory: root + "/a-live", label: "x", challenge: .blink) }
        let info = try SessionRecorder.info(of: root + "/a-live")
        #expect(info.label == "bona_fide" && info.frames.count == 16 && info.challenge == .blink)
        let ev = try LivenessEvaluation.evaluate(directory: root, engine: Fixtures.requireEngine())
        #expect(ev.sessions.map(\.session) == ["a-live", "b-static"])
        #expect(ev.bpcer.rate == 0 && ev.apcer["static"]?.rate == 0)
        #expect(throws: SessionFileError.self) { try LivenessEvaluation.evaluate(directory: root + "/nope", engine: Fixtures.requireEngine()) }
    }
}
