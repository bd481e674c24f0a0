import Foundation
import Testing
@testable import Liveness

@Suite("Quality gates", .enabled(if: Fixtures.haveCascades, Fixtures.skipMessage))
struct GateTests {
    func firstGuidance(_ frame: GrayImage) throws -> LivenessGuidance {
        var s = try Fixtures.requireEngine().makeSession(challenge: .blink)
        return s.process(frame, timestamp: 0)
    }

    func liveFrame(_ syn: Synthesizer) -> GrayImage { syn.session(.live, challenge: .blink, count: 1)[0] }

    @Test func goodFrameAsksForTheChallenge() throws {
        #expect(try firstGuidance(liveFrame(Fixtures.synthesizer())) == .blink)
    }

    @Test func noFace() throws {
        #expect(try firstGuidance(GrayImage(width: 640, height: 480, fill: 120)) == .faceTheCamera)
    }

    @Test func tooFarAway() throws {
        var syn = try Fixtures.synthesizer()
        syn.faceWidth = 70
        #expect(try firstGuidance(liveFrame(syn)) == .comeCloser)
    }

    @Test func offCentre() throws {
        let syn = try Fixtures.synthesizer()
        var rng = SplitMix64(seed: 3)
        let f = syn.render(syn.photo, scale: 1, dx: 230, dy: 0, noise: 0, rng: &rng)
        #expect(try firstGuidance(f) == .centerYourFace)
    }

    @Test func tooDarkAndTooBright() throws {
        let f = try liveFrame(Fixtures.synthesizer())
        var dark = f, bright = f
        for i in f.pixels.indices {
            dark.pixels[i] = UInt8(Double(f.pixels[i]) * 0.25)
            bright.pixels[i] = UInt8(255 - Double(255 - Int(f.pixels[i])) * 0.35)   // washed out, still a face
        }
        #expect(try firstGuidance(dark) == .moreLight)
        #expect(try firstGuidance(bright) == .lessLight)
    }

    @Test func blurred() throws {
        // A face the detector still finds but without fine detail (defocus): down 8x and up again.
        let f = try liveFrame(Fixtures.synthesizer())
        let t = LivenessThresholds()
        let small = f.resized(width: f.width / 8, height: f.height / 8).resized(width: f.width, height: f.height)
        let e = try Fixtures.requireEngine()
        // The gate itself, on the face box of the sharp frame.
        let face = try #require(e.faceDetector.detect(in: f, parameters: t.faceDetection).first)
        #expect(LivenessSession.gate(f, face: face, thresholds: t) == nil)
        #expect(LivenessSession.gate(small, face: face, thresholds: t) == .holdStill)
    }

    @Test func twoPeople() throws {
        let syn = try Fixtures.synthesizer()
        let f = liveFrame(syn)
        // Two copies of the face side by side, each half-size.
        let half = f.resized(width: 320, height: 240)
        var two = GrayImage(width: 640, height: 480, fill: 90)
        for y in 0..<240 { for x in 0..<320 { two[x, y + 120] = half[x, y]; two[x + 320, y + 120] = half[x, y] } }
        #expect(try firstGuidance(two) == .onlyOnePerson)
    }
}
