import Foundation
import KioskCore
import Testing
@testable import Liveness

/// Synthetic sessions from one still photo: regression tests of each check, not accuracy.
@Suite("Passive checks and challenges", .enabled(if: Fixtures.haveCascades, Fixtures.skipMessage))
struct SessionTests {
    @Test func liveSessionPasses() throws {
        let syn = try Fixtures.synthesizer()
        let (o, g) = try Fixtures.run(syn.session(.live, challenge: .blink), challenge: .blink)
        #expect(o.decision == .pass, "\(o.checks)")
        #expect(o.checks.allSatisfy { $0.passed })
        #expect(o.score == 1 && o.framesUsed >= 8 && o.duration > 0 && o.challenge == .blink)
        #expect(g.first == .blink && g.last == .done)
    }

    @Test func printAttackIsCaught() throws {
        let syn = try Fixtures.synthesizer()
        let (o, _) = try Fixtures.run(syn.session(.print, challenge: .blink), challenge: .blink)
        #expect(o.decision == .fail)
        #expect(o.check("halftone")?.passed == false, "\(o.checks)")
        #expect(o.check("non_rigid_motion")?.passed == false, "a flat print moves as one plane: \(o.checks)")
    }

    @Test func screenAttackIsCaught() throws {
        let syn = try Fixtures.synthesizer()
        let (o, _) = try Fixtures.run(syn.session(.screen, challenge: .blink), challenge: .blink)
        #expect(o.decision == .fail)
        #expect(o.check("moire")?.passed == false, "\(o.checks)")
        #expect(o.check("bezel_edge")?.passed == false, "\(o.checks)")
    }

    @Test func staticImageIsCaught() throws {
        let syn = try Fixtures.synthesizer()
        let (o, _) = try Fixtures.run(syn.session(.staticImage, challenge: .blink), challenge: .blink)
        #expect(o.decision == .fail)
        #expect(o.check("micro_motion")?.passed == false, "\(o.checks)")
        #expect(o.check("challenge_blink")?.passed == false)
    }

    @Test(arguments: [LivenessChallenge.turnLeft, .turnRight, .moveCloser])
    func challengePerformedPasses(_ c: LivenessChallenge) throws {
        let syn = try Fixtures.synthesizer()
        let (o, _) = try Fixtures.run(syn.session(.live, challenge: c), challenge: c)
        #expect(o.check("challenge_\(c.rawValue)")?.passed == true, "\(o.checks)")
        #expect(o.decision == .pass)
    }

    @Test func wrongChallengeFails() throws {
        // The shopper turns left when asked to turn right (or a replayed video): the window runs out.
        let syn = try Fixtures.synthesizer()
        var t = LivenessThresholds()
        t.challengeWindow = 2
        var e = try Fixtures.requireEngine()
        e.thresholds = t
        let (o, _) = try Fixtures.run(syn.session(.live, challenge: .turnLeft), challenge: .turnRight, engine: e)
        #expect(o.check("challenge_turn_right")?.passed == false)
        #expect(o.decision == .fail)
    }

    @Test func tooFewFramesIsInconclusive() throws {
        let syn = try Fixtures.synthesizer()
        let (o, _) = try Fixtures.run(Array(syn.session(.live, challenge: .blink).prefix(3)), challenge: .blink)
        #expect(o.decision == .inconclusive && o.framesUsed == 3)
        #expect(o.score < 0.5)
    }

    @Test func challengeIsRandomAndInjectable() throws {
        let e = try Fixtures.requireEngine()
        var seen = Set<LivenessChallenge>()
        var rng = SplitMix64(seed: 42)
        for _ in 0..<64 { seen.insert(e.makeSession(using: &rng).challenge) }
        #expect(seen == Set(LivenessChallenge.allCases))
        var a = SplitMix64(seed: 9), b = SplitMix64(seed: 9)
        #expect(e.makeSession(using: &a).challenge == e.makeSession(using: &b).challenge)
    }

    @Test func outcomeMapsOntoKioskCoreResult() throws {
        let syn = try Fixtures.synthesizer()
        let (o, _) = try Fixtures.run(syn.session(.staticImage, challenge: .blink, count: 10), challenge: .blink)
        let r = o.asResult()
        #expect(r.decision.rawValue == o.decision.rawValue && r.score == o.score)
        #expect(r.checks.map(\.name) == o.checks.map(\.name) && r.checks.map(\.passed) == o.checks.map(\.passed))
    }
}
