import Foundation
import Testing
@testable import Liveness

@Suite("Face detection against OpenCV", .enabled(if: Fixtures.haveCascades, Fixtures.skipMessage))
struct DetectorTests {
    /// Same faces as OpenCV 4.6's detectMultiScale (scale 1.1, minNeighbors 3, min 40 px), IoU ≥ 0.5 one to one.
    @Test(arguments: ["astronaut", "camera", "grace_hopper", "frame640_astronaut"])
    func sameFacesAsOpenCV(_ name: String) throws {
        let e = try Fixtures.requireEngine()
        let ref = try #require(try Fixtures.opencvReference()[name], "no OpenCV reference for \(name)")
        let img = try Fixtures.photo(name)
        let ours = e.faceDetector.detect(in: img, parameters: .init(scaleFactor: 1.1, minNeighbors: 3, minSize: 40))
        #expect(ours.count == ref.faces.count, "ours \(ours) vs OpenCV \(ref.faces)")
        for r in ref.faces {
            let best = ours.map { $0.iou(r) }.max() ?? 0
            #expect(best >= 0.5, "OpenCV face \(r) not matched (ours \(ours))")
        }
    }

    @Test func eyesAsOpenCV() throws {
        let e = try Fixtures.requireEngine()
        let ref = try #require(try Fixtures.opencvReference()["astronaut"])
        let img = try Fixtures.photo("astronaut")
        let face = try #require(e.faceDetector.detect(in: img, parameters: .init(minSize: 40)).first)
        let roi = PixelRect(x: face.x, y: face.y, width: face.width, height: face.height / 2 + face.height / 8)
        let eyes = e.eyeDetector.detect(in: img, parameters: .init(scaleFactor: 1.1, minNeighbors: 3, minSize: max(8, face.width / 10)), roi: roi)
        #expect(eyes.count == ref.eyes.count, "ours \(eyes) vs OpenCV \(ref.eyes)")
        for r in ref.eyes { #expect((eyes.map { $0.iou(r) }.max() ?? 0) >= 0.5) }
    }

    @Test func trackerSearchesAroundTheLastFace() throws {
        let e = try Fixtures.requireEngine()
        let img = try Fixtures.photo("frame640_astronaut")
        var tracker = FaceTracker(detector: e.faceDetector, parameters: .init(minSize: 40))
        let first = tracker.track(img)
        #expect(first.count == 1 && tracker.roiSearches == 0)
        let second = tracker.track(img)
        #expect(tracker.roiSearches == 1)
        #expect(second.count == 1 && second[0].iou(first[0]) >= 0.8)
        // A frame without a face: the tracker falls back to the full frame and forgets the face.
        #expect(tracker.track(GrayImage(width: 640, height: 480, fill: 100)).isEmpty)
        #expect(tracker.lastFace == nil)
    }

    @Test func noFaceInFlatOrNoiseFrames() throws {
        let e = try Fixtures.requireEngine()
        var rng = SplitMix64(seed: 7)
        var noise = GrayImage(width: 320, height: 240)
        for i in noise.pixels.indices { noise.pixels[i] = UInt8.random(in: 0...255, using: &rng) }
        #expect(e.faceDetector.detect(in: noise).isEmpty)
        #expect(e.faceDetector.detect(in: GrayImage(width: 320, height: 240, fill: 0)).isEmpty)
        #expect(e.faceDetector.detect(in: GrayImage(width: 10, height: 10, fill: 0)).isEmpty)
    }
}
