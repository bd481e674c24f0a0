import Foundation
import Testing
@testable import Liveness

@Suite("Cascade parsing")
struct CascadeTests {
    static let tiny = """
    <?xml version="1.0"?>
    <!-- a two-stage toy cascade -->
    <opencv_storage>
    <cascade type_id="opencv-cascade-classifier"><stageType>BOOST</stageType>
      <featureType>HAAR</featureType><height>4</height><width>4</width>
      <stageNum>1</stageNum>
      <stages><_><maxWeakCount>1</maxWeakCount><stageThreshold>0.5</stageThreshold>
        <weakClassifiers><_><internalNodes>0 -1 0 0.25</internalNodes><leafValues>-1. 1.</leafValues></_></weakClassifiers></_></stages>
      <features><_><rects><_>0 0 4 2 -1.</_><_>0 2 4 2 1.</_></rects></_></features>
    </cascade>
    </opencv_storage>
    """

    @Test func parsesAToyCascade() throws {
        let c = try HaarCascade(xml: Data(Self.tiny.utf8))
        #expect(c.windowWidth == 4 && c.windowHeight == 4)
        #expect(c.stages.count == 1 && c.weakClassifierCount == 1 && c.isStumpBased)
        #expect(c.features[0].rects == [.init(x: 0, y: 0, width: 4, height: 2, weight: -1), .init(x: 0, y: 2, width: 4, height: 2, weight: 1)])
        #expect(abs(c.stages[0].threshold - (0.5 - 1e-5)) < 1e-7)
    }

    @Test func rejectsMalformedXML() {
        #expect(throws: CascadeError.self) { try HaarCascade(xml: Data("<opencv_storage><cascade>".utf8)) }
        #expect(throws: CascadeError.self) { try HaarCascade(xml: Data("<opencv_storage></opencv_storage>".utf8)) }
        let badIndex = Self.tiny.replacingOccurrences(of: "0 -1 0 0.25", with: "0 -1 7 0.25")
        #expect(throws: CascadeError.self) { try HaarCascade(xml: Data(badIndex.utf8)) }
    }

    @Test(.enabled(if: Fixtures.haveCascades, Fixtures.skipMessage))
    func parsesOpenCVFaceAndEyeCascades() throws {
        let face = try HaarCascade(contentsOf: Fixtures.cascadeDir + "/haarcascade_frontalface_default.xml")
        #expect(face.windowWidth == 24 && face.windowHeight == 24)
        #expect(face.stages.count == 25 && face.weakClassifierCount == 2913)
        #expect(face.isStumpBased && !face.hasTiltedFeatures)
        let eye = try HaarCascade(contentsOf: Fixtures.cascadeDir + "/haarcascade_eye.xml")
        #expect(eye.windowWidth == 20 && eye.stages.count == 24 && eye.weakClassifierCount == 1066)
        // Trees deeper than a stump (alt2) and the old opencv-haar-classifier format load too.
        let alt2 = try HaarCascade(contentsOf: Fixtures.cascadeDir + "/haarcascade_frontalface_alt2.xml")
        #expect(!alt2.isStumpBased && alt2.stages.count == 20)
        let old = try HaarCascade(contentsOf: Fixtures.cascadeDir + "/haarcascade_licence_plate_rus_16stages.xml")
        #expect(old.windowWidth == 64 && old.windowHeight == 16 && old.stages.count == 16)
        // Tilted features are refused by the detector rather than evaluated wrongly.
        let tilted = try HaarCascade(contentsOf: Fixtures.cascadeDir + "/haarcascade_eye_tree_eyeglasses.xml")
        #expect(tilted.hasTiltedFeatures)
        #expect(throws: CascadeError.self) { try HaarDetector(cascade: tilted) }
    }
}

@Suite("PGM and images")
struct ImageTests {
    @Test func pgmRoundTrip() throws {
        let img = try #require(GrayImage(width: 3, height: 2, pixels: [0, 10, 20, 30, 40, 255]))
        #expect(try GrayImage(pgm: img.pgmData) == img)
        let commented = Data("P5\n# comment\n3 2\n255\n".utf8) + Data(img.pixels)
        #expect(try GrayImage(pgm: commented) == img)
    }

    @Test func pgmRejectsBadInput() {
        #expect(throws: PGMError.self) { try GrayImage(pgm: Data("P2\n1 1\n255\n0".utf8)) }
        #expect(throws: PGMError.self) { try GrayImage(pgm: Data("P5\n4 4\n255\n".utf8) + Data([1, 2, 3])) }
        #expect(throws: PGMError.self) { try GrayImage(pgm: Data()) }
        #expect(GrayImage(width: 2, height: 2, pixels: [1]) == nil)
    }

    @Test func rectArithmetic() {
        let a = PixelRect(x: 0, y: 0, width: 10, height: 10), b = PixelRect(x: 5, y: 0, width: 10, height: 10)
        #expect(a.intersection(b) == PixelRect(x: 5, y: 0, width: 5, height: 10))
        #expect(abs(a.iou(b) - 50.0 / 150.0) < 1e-12)
        #expect(a.expanded(by: 0.1) == PixelRect(x: -1, y: -1, width: 12, height: 12))
    }

    @Test func groupingFollowsOpenCV() {
        // Four near-identical hits and one stray: minNeighbors 3 keeps the averaged group only.
        let hits = [PixelRect(x: 100, y: 100, width: 50, height: 50), PixelRect(x: 102, y: 101, width: 50, height: 50),
                    PixelRect(x: 98, y: 99, width: 52, height: 52), PixelRect(x: 101, y: 100, width: 48, height: 48),
                    PixelRect(x: 300, y: 300, width: 40, height: 40)]
        #expect(groupRectangles(hits, minNeighbors: 3) == [PixelRect(x: 100, y: 100, width: 50, height: 50)])
        #expect(groupRectangles(hits, minNeighbors: 4).isEmpty)
        #expect(groupRectangles(hits, minNeighbors: 0) == hits)
    }

    @Test func sharpnessAndExposure() {
        let flat = GrayImage(width: 20, height: 20, fill: 128)
        #expect(ImageMetrics.laplacianVariance(flat, in: flat.bounds) == 0)
        var checker = flat
        for y in 0..<20 { for x in 0..<20 { checker[x, y] = (x + y) % 2 == 0 ? 0 : 255 } }
        #expect(ImageMetrics.laplacianVariance(checker, in: checker.bounds) > 1000)
        let e = ImageMetrics.exposure(checker, in: checker.bounds)
        #expect(abs(e.mean - 127.5) < 1e-9 && e.clipped == 1)
    }
}
