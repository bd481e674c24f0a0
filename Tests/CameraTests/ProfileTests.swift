import Foundation
import Testing

@testable import Camera

/// The repository's Devices/ folder.
let devicesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Devices").path
}()

private let good = """
    { "name": "cam", "description": "d", "match": { "driver": "uvcvideo", "card": "C270" }, "input": 1,
      "pixel_format": "RGB3", "width": 320, "height": 240, "fps": 15, "buffers": 3, "frame_timeout_ms": 500 }
    """

private func parse(_ s: String) throws(CameraError) -> CameraProfile {
    try CameraProfile.parse(Data(s.utf8), source: "test.json")
}

private func device(driver: String, card: String) -> CameraDevice {
    CameraDevice(path: "/dev/video9", identity: CameraIdentity(card: card, busInfo: "usb-1"), driver: driver, capabilities: 0)
}

@Suite struct ProfileTests {
    @Test func parsesEveryField() throws {
        let p = try parse(good)
        #expect(p == CameraProfile(name: "cam", description: "d", matchDriver: "uvcvideo", matchCard: "C270", input: 1,
                                   pixelFormat: .rgb24, width: 320, height: 240, fps: 15, buffers: 3, frameTimeoutMillis: 500))
    }

    @Test func defaults() throws {
        let p = try parse(#"{ "name": "x" }"#)
        #expect(p.pixelFormat == .yuyv && p.width == 640 && p.height == 480 && p.fps == 30 && p.buffers == 4 && p.input == nil)
    }

    @Test func unknownFieldsAreNamed() {
        #expect(throws: CameraError.profile(file: "test.json", field: "colour", message: "unknown field (allowed: \(CameraProfile.topFields.joined(separator: ", ")))")) {
            try parse(#"{ "name": "x", "colour": 1 }"#)
        }
        do {
            _ = try parse(#"{ "name": "x", "match": { "vendor": "y" } }"#)
            Issue.record("accepted match.vendor")
        } catch {
            #expect(error.description.contains("field match.vendor"))
        }
    }

    @Test func badValuesAreNamed() {
        for (doc, field) in [(#"{ "name": "x", "width": "wide" }"#, "width"), (#"{ "name": "x", "fps": 0 }"#, "fps"),
                             (#"{ "name": "x", "pixel_format": "MJPG" }"#, "pixel_format"), (#"{ "description": "x" }"#, "name"),
                             (#"{ "name": "x", "width": 1.5 }"#, "width"), (#"{ "name": "x", "match": [] }"#, "match")] {
            do {
                _ = try parse(doc)
                Issue.record("accepted \(doc)")
            } catch {
                if case .profile(_, let f, _) = error { #expect(f == field, "\(doc)") } else { Issue.record("\(error)") }
            }
        }
        #expect(throws: CameraError.self) { try parse("not json") }
    }

    @Test func bestMatchIsTheMostSpecific() throws {
        let generic = CameraProfile(name: "uvc", matchDriver: "uvcvideo")
        let c270 = CameraProfile(name: "c270", matchDriver: "uvcvideo", matchCard: "C270")
        let vivid = CameraProfile(name: "vivid", matchDriver: "vivid")
        let all = [generic, c270, vivid]
        #expect(CameraProfile.best(for: device(driver: "uvcvideo", card: "HD Webcam C270"), in: all).name == "c270")
        #expect(CameraProfile.best(for: device(driver: "uvcvideo", card: "Other"), in: all).name == "uvc")
        #expect(CameraProfile.best(for: device(driver: "vivid", card: "vivid"), in: all).name == "vivid")
        #expect(CameraProfile.best(for: device(driver: "bttv", card: "x"), in: all) == .fallback)
    }

    @Test func repositoryProfilesLoad() throws {
        let ps = try CameraProfile.loadAll(directory: devicesDirectory + "/cameras")
        #expect(ps.map(\.name) == ["camera-uvc-generic", "camera-vivid"])
        #expect(CameraProfile.best(for: device(driver: "vivid", card: "vivid"), in: ps).name == "camera-vivid")
    }

    @Test func fileNameMustMatch() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(#"{ "name": "other" }"#.utf8).write(to: URL(fileURLWithPath: dir + "/cam.json"))
        #expect(throws: CameraError.self) { try CameraProfile.loadAll(directory: dir) }
    }
}
