import Foundation
import Testing

@testable import Camera

/// A scratch directory removed by the caller.
func scratchDirectory() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("camera-tests-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct NetpbmTests {
    @Test func pgmRoundTrip() throws {
        let img = LumaImage(width: 5, height: 3, pixels: (0..<15).map { UInt8($0 * 17) })
        let bytes = Netpbm.encode(img)
        #expect(bytes.starts(with: Array("P5\n5 3\n255\n".utf8)))
        let f = try Netpbm.decode(bytes)
        #expect(f.format == .grey)
        #expect(f.luma() == img)
    }

    @Test func ppmRoundTripThroughFile() throws {
        let data = (0..<(4 * 2 * 3)).map { UInt8(truncatingIfNeeded: $0 * 11) }
        let frame = Frame(width: 4, height: 2, format: .rgb24, data: data)
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/x.ppm"
        try Netpbm.write(frame, path: path)
        let back = try Netpbm.read(path: path)
        #expect(back.format == .rgb24 && back.width == 4 && back.height == 2)
        #expect(back.data == data)
    }

    @Test func headerWithComments() throws {
        let bytes = Array("P5\n# a comment\n2 # width\n1\n255\n".utf8) + [7, 9]
        let f = try Netpbm.decode(bytes)
        #expect(f.data == [7, 9] && f.width == 2 && f.height == 1)
    }

    @Test func rejectsBadFiles() {
        #expect(throws: CameraError.self) { try Netpbm.decode(Array("P2\n1 1\n255\n1".utf8)) }
        #expect(throws: CameraError.self) { try Netpbm.decode(Array("P5\n2 2\n255\n".utf8) + [1, 2]) }  // short data
        #expect(throws: CameraError.self) { try Netpbm.decode(Array("P5\n1 1\n65535\n".utf8) + [0, 0]) }
        #expect(throws: CameraError.self) { try Netpbm.read(path: "/nonexistent/x.pgm") }
    }
}

@Suite struct LumaTests {
    @Test func yuyvTakesY() {
        // two rows of 2 pixels: Y0 U Y1 V, with 2 bytes of row padding
        let data: [UInt8] = [10, 128, 20, 128, 0, 0, 30, 100, 40, 200, 0, 0]
        let f = Frame(width: 2, height: 2, format: .yuyv, bytesPerLine: 6, data: data)
        #expect(f.luma().pixels == [10, 20, 30, 40])
    }

    @Test func uyvyTakesY() {
        let f = Frame(width: 2, height: 1, format: .uyvy, data: [128, 50, 128, 60])
        #expect(f.luma().pixels == [50, 60])
    }

    @Test func rgbUsesBT601Weights() {
        let f = Frame(width: 4, height: 1, format: .rgb24, data: [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
        #expect(f.luma().pixels == [76, 149, 28, 255])
        let b = Frame(width: 1, height: 1, format: .bgr24, data: [255, 0, 0])  // blue
        #expect(b.luma().pixels == [28])
    }

    @Test func yuyvToRGBGrayStaysGray() {
        let f = Frame(width: 2, height: 1, format: .yuyv, data: [235, 128, 16, 128])
        #expect(f.rgb() == [255, 255, 255, 0, 0, 0])
    }

    @Test func fourccs() {
        #expect(PixelFormat.fourccString(PixelFormat.yuyv.fourcc) == "YUYV")
        #expect(PixelFormat.fourccString(PixelFormat.rgb24.fourcc) == "RGB3")
        #expect(PixelFormat(fourcc: PixelFormat.grey.fourcc) == .grey)
        #expect(PixelFormat(name: "rgb24") == .rgb24)
        #expect(PixelFormat(name: "MJPG") == nil)
    }
}

@Suite struct IdentityTests {
    @Test func parsesAndPrints() throws {
        let i = try #require(CameraIdentity("HD Webcam C270@usb-0000:00:14.0-1#A1B2C3"))
        #expect(i.card == "HD Webcam C270" && i.busInfo == "usb-0000:00:14.0-1" && i.serial == "A1B2C3")
        #expect(i.description == "HD Webcam C270@usb-0000:00:14.0-1#A1B2C3")
        let v = try #require(CameraIdentity("vivid@platform:vivid-000"))
        #expect(v.serial == nil && v.description == "vivid@platform:vivid-000")
        #expect(CameraIdentity("no-at-sign") == nil)
        #expect(CameraIdentity("@bus") == nil)
        #expect(CameraIdentity("a@b@c")?.card == "a@b")
    }

    @Test func matching() {
        let withSerial = CameraIdentity(card: "Cam", busInfo: "usb-1", serial: "S1")
        #expect(withSerial.matches(CameraIdentity(card: "Cam", busInfo: "usb-2", serial: "S1")))  // moved port
        #expect(!withSerial.matches(CameraIdentity(card: "Cam", busInfo: "usb-1", serial: "S2")))
        let noSerial = CameraIdentity(card: "Cam", busInfo: "usb-1")
        #expect(noSerial.matches(CameraIdentity(card: "Cam", busInfo: "usb-1", serial: "S9")))
        #expect(!noSerial.matches(CameraIdentity(card: "Cam", busInfo: "usb-2")))
        #expect(CameraIdentity(card: "Cam", busInfo: "").matches(CameraIdentity(card: "Cam", busInfo: "usb-7")))
        #expect(!noSerial.matches(CameraIdentity(card: "Other", busInfo: "usb-1")))
    }

    @Test func enumeratorOnAnEmptyDirectory() {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(CameraEnumerator.list(devDirectory: dir).isEmpty)
        #expect(throws: CameraError.notFound("x@y")) { try CameraEnumerator.find(CameraIdentity(card: "x", busInfo: "y"), devDirectory: dir) }
    }

    @Test func errorsNameTheIoctlAndErrno() {
        let e = CameraError.system(call: "VIDIOC_DQBUF", device: "/dev/video0", errno: 19)
        #expect(e.description.contains("VIDIOC_DQBUF") && e.description.contains("ENODEV"))
        #expect(e.isDisconnect)
        #expect(!CameraError.timeout(device: "/dev/video0", seconds: 2).isDisconnect)
    }
}

@Suite struct DeviceErrorTests {
    @Test func queryCapOnANonVideoNodeIsTyped() {
        #expect(throws: CameraError.system(call: "VIDIOC_QUERYCAP", device: "/dev/null", errno: ENOTTY)) {
            try CameraEnumerator.query(path: "/dev/null")
        }
    }

    @Test func captureFromAMissingNodeEndsTheStreamWithATypedError() async {
        let device = CameraDevice(path: "/nonexistent/video0", identity: CameraIdentity(card: "x", busInfo: "y"), driver: "x", capabilities: 0)
        let source = V4L2Source(device: device, profile: .fallback)
        do {
            for try await _ in source.frames() { Issue.record("a frame from a missing node") }
            Issue.record("the stream ended without an error")
        } catch let error as CameraError {
            #expect(error == .system(call: "v4l2_open", device: "/nonexistent/video0", errno: ENOENT))
            #expect(error.isDisconnect)
        } catch {
            Issue.record("untyped error \(error)")
        }
    }
}
