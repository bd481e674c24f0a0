import Foundation
import Testing

@testable import Camera

/// Writes `count` 8x6 gray frames whose pixels all equal the frame index * 10.
private func makeReplayDirectory(count: Int) throws -> String {
    let dir = scratchDirectory()
    for i in 0..<count {
        try Netpbm.write(LumaImage(width: 8, height: 6, pixels: [UInt8](repeating: UInt8(i * 10), count: 48)),
                         path: dir + String(format: "/frame-%03d.pgm", i))
    }
    try Data("ignored".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))
    return dir
}

@Suite struct ReplayTests {
    @Test func replaysInOrderThenEnds() async throws {
        let dir = try makeReplayDirectory(count: 5)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try ReplaySource(directory: dir, fps: 1000, loop: false, paced: false)
        #expect(src.files.count == 5)
        var values: [UInt8] = []
        var sequences: [UInt32] = []
        for try await f in src.frames() {
            values.append(f.luma().pixels[0])
            sequences.append(f.sequence)
        }
        #expect(values == [0, 10, 20, 30, 40])
        #expect(sequences == [0, 1, 2, 3, 4])
    }

    @Test func loops() async throws {
        let dir = try makeReplayDirectory(count: 2)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try ReplaySource(directory: dir, fps: 500, loop: true, paced: true)
        var values: [UInt8] = []
        for try await f in src.frames() {
            values.append(f.luma().pixels[0])
            if values.count == 5 { break }
        }
        #expect(values == [0, 10, 0, 10, 0])
    }

    @Test func emptyOrMissingDirectoryIsAnError() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: CameraError.self) { try ReplaySource(directory: dir) }
        #expect(throws: CameraError.self) { try ReplaySource(directory: dir + "/missing") }
    }
}

/// A source that fails its first `failures` opens (or streams), then delivers frames forever.
private final class FlakySource: FrameSource, @unchecked Sendable {
    let name: String
    let fail: CameraError?
    init(name: String, fail: CameraError?) {
        self.name = name
        self.fail = fail
    }
    func frames() -> AsyncThrowingStream<Frame, Error> {
        let fail = self.fail
        return AsyncThrowingStream { c in
            if let fail {
                // Delivers two frames, then the device is "unplugged".
                for i in 0..<2 { c.yield(Frame(width: 1, height: 1, format: .grey, data: [UInt8(i)])) }
                c.finish(throwing: fail)
            } else {
                let task = Task {
                    var i: UInt32 = 0
                    while !Task.isCancelled {
                        c.yield(Frame(width: 1, height: 1, format: .grey, data: [200], sequence: i))
                        i += 1
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                    c.finish()
                }
                c.onTermination = { _ in task.cancel() }
            }
        }
    }
}

private actor Attempts {
    var n = 0
    func next() -> Int { n += 1; return n }
}

@Suite struct SupervisorTests {
    @Test func failsThenRecovers() async throws {
        let attempts = Attempts()
        let unplug = CameraError.system(call: "VIDIOC_DQBUF", device: "/dev/video0", errno: ENODEV)
        let supervisor = CameraSupervisor(retryInterval: .milliseconds(1)) {
            switch await attempts.next() {
            case 1: return FlakySource(name: "cam-1", fail: unplug)  // streams, then unplugged
            case 2: throw CameraError.notFound("vivid@platform:vivid-000")  // still gone
            default: return FlakySource(name: "cam-3", fail: nil)  // back
            }
        }
        #expect(supervisor.status == .starting)
        var seen: [CameraStatus] = []
        let statusStream = supervisor.statusUpdates()
        let updates = Task {
            var out: [CameraStatus] = []
            for await s in statusStream {
                out.append(s)
                if s == .streaming(source: "cam-3") { break }
            }
            return out
        }
        var frames = 0
        for await f in supervisor.frames() {
            frames += 1
            if f.data == [200] { break }  // a frame from the reopened source
        }
        seen = await updates.value
        #expect(frames >= 3)
        #expect(seen.contains(.streaming(source: "cam-1")))
        #expect(seen.contains(.unavailable(reason: unplug.description)))
        #expect(seen.contains(.unavailable(reason: "no camera matches vivid@platform:vivid-000")))
        #expect(seen.last == .streaming(source: "cam-3"))
        #expect(supervisor.openCount == 2)
        #expect(supervisor.failureCount == 2)
        // Iteration ended: the supervisor stops.
        for await s in supervisor.statusUpdates() where s == .stopped { break }
        #expect(supervisor.status == .stopped)
    }

    @Test func statusLines() {
        #expect(CameraStatus.unavailable(reason: "VIDIOC_DQBUF failed").description == "camera unavailable: VIDIOC_DQBUF failed")
        #expect(CameraStatus.streaming(source: "x").isAvailable)
        #expect(!CameraStatus.unavailable(reason: "x").isAvailable)
    }

    @Test func replayThroughTheSupervisor() async throws {
        let dir = try makeReplayDirectory(count: 3)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let supervisor = CameraSupervisor(retryInterval: .milliseconds(1)) { try ReplaySource(directory: dir, paced: false) }
        var got = 0
        for await _ in supervisor.frames() {
            got += 1
            if got == 3 { break }
        }
        #expect(got == 3)
    }
}
