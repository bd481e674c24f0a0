import ArgumentParser
import Camera
import Foundation

extension KioskCtl {
    /// `kioskctl camera …`: find, check and feed the kiosk's camera (V4L2 through libv4l2).
    struct CameraCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "camera",
            abstract: "List cameras, take a snapshot, measure capture, feed a video output.",
            subcommands: [List.self, Snapshot.self, Test.self, Supervise.self, Feed.self]
        )
    }
}

/// Which camera and how to capture from it.
struct CameraOptions: ParsableArguments {
    @Option(help: "Camera: identity card@bus_info[#serial] (see 'camera list'), card name, or /dev/videoN. Default: the first camera.")
    var device: String?

    @Option(help: "Directory of camera profiles (*.json). Default: /usr/share/kiosk-agent/cameras if present.")
    var profiles: String?

    @Option(help: "One camera profile file (overrides --profiles).")
    var profile: String?

    @Option(help: "Input to select (VIDIOC_S_INPUT), overriding the profile.")
    var input: Int?

    @Option(help: "Pixel format to ask for (YUYV, RGB3, GREY, ...), overriding the profile.")
    var format: String?

    @Option(help: "Width, overriding the profile.") var width: Int?
    @Option(help: "Height, overriding the profile.") var height: Int?
    @Option(help: "Frames per second, overriding the profile.") var fps: Int?
    @Option(help: "No frame for this many milliseconds is an error, overriding the profile.") var timeoutMs: Int?

    /// The device and the profile to capture it with.
    func resolve() throws -> (CameraDevice, CameraProfile) {
        let device = try CameraEnumerator.resolve(device)
        var p: CameraProfile
        if let profile {
            p = try CameraProfile.load(path: profile)
        } else {
            let dir = profiles ?? (FileManager.default.fileExists(atPath: CameraProfile.installedDirectory) ? CameraProfile.installedDirectory : nil)
            p = CameraProfile.best(for: device, in: try dir.map { try CameraProfile.loadAll(directory: $0) } ?? [])
        }
        if let input { p.input = input }
        if let format {
            guard let f = PixelFormat(name: format) else { throw ValidationError("unknown pixel format \(format)") }
            p.pixelFormat = f
        }
        if let width { p.width = width }
        if let height { p.height = height }
        if let fps { p.fps = fps }
        if let timeoutMs { p.frameTimeoutMillis = timeoutMs }
        return (device, p)
    }
}

func formatJSON(_ f: NegotiatedFormat?) -> Any {
    guard let f else { return NSNull() }
    return ["width": f.width, "height": f.height, "pixel_format": f.pixelFormat.rawValue, "bytes_per_line": f.bytesPerLine,
            "driver_fps": f.fps.map { $0 as Any } ?? NSNull(), "input": f.input.map { $0 as Any } ?? NSNull(), "buffers": f.buffers]
}

func printJSONObject(_ obj: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

extension KioskCtl.CameraCommand {
    /// `kioskctl camera list [--json] [--all]`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List capture devices with their identities.")
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Also list output nodes (e.g. vivid's HDMI out).") var all = false

        func run() throws {
            let devices = all ? CameraEnumerator.listAll().filter(\.canStream) : CameraEnumerator.list()
            if json {
                try printJSONObject(devices.map { d -> [String: Any] in
                    ["identity": d.identity.description, "card": d.identity.card, "bus_info": d.identity.busInfo,
                     "serial": d.identity.serial.map { $0 as Any } ?? NSNull(), "driver": d.driver, "path": d.path,
                     "capture": d.isCapture, "output": d.isOutput]
                })
                return
            }
            if devices.isEmpty { print("no cameras (no /dev/video* capture node answers VIDIOC_QUERYCAP)") }
            for d in devices {
                print("\(d.identity)  driver \(d.driver)  \(d.path)\(d.isCapture ? "" : "  (output)")")
            }
        }
    }

    /// `kioskctl camera snapshot --out FILE`.
    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Capture one frame to a PPM (or PGM) file a technician can open.")
        @OptionGroup var camera: CameraOptions
        @Option(help: "Output file (.ppm colour, .pgm gray).") var out: String
        @Option(help: "Frames to skip first (auto exposure settles).") var skip = 3
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (device, profile) = try camera.resolve()
            let source = V4L2Source(device: device, profile: profile)
            var seen = 0
            var shot: Frame?
            for try await frame in source.frames() {
                seen += 1
                if seen > skip { shot = frame; break }
            }
            guard let shot else { throw CameraError.timeout(device: device.path, seconds: Double(profile.frameTimeoutMillis) / 1000) }
            if out.hasSuffix(".pgm") {
                try Netpbm.write(shot.luma(), path: out)
            } else {
                try Netpbm.write(Frame(width: shot.width, height: shot.height, format: .rgb24, data: shot.rgb()), path: out)
            }
            let f = source.stats.format
            if json {
                try printJSONObject(["file": out, "identity": device.identity.description, "path": device.path, "profile": profile.name,
                                     "format": formatJSON(f), "sequence": Int(shot.sequence)])
            } else {
                print("wrote \(out): \(shot.width)x\(shot.height) from \(device.identity) (\(device.path)), captured as \(shot.format.rawValue), profile \(profile.name)")
            }
        }
    }

    /// `kioskctl camera test [--frames N] [--json]`.
    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Capture N frames; print fps, format, size and dropped frames.")
        @OptionGroup var camera: CameraOptions
        @Option(help: "Frames to capture.") var frames = 60
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (device, profile) = try camera.resolve()
            let source = V4L2Source(device: device, profile: profile)
            let start = Date()
            var firstAt: Date?
            var count = 0
            var lumaSum = 0.0
            for try await frame in source.frames() {
                if firstAt == nil { firstAt = Date() }
                count += 1
                if count == 1 || count == frames {
                    let l = frame.luma()
                    lumaSum += Double(l.pixels.reduce(0) { $0 + Int($1) }) / Double(max(1, l.pixels.count))
                }
                if count >= frames { break }
            }
            let end = Date()
            let stats = source.stats
            let first = firstAt ?? end
            let fps = count > 1 ? Double(count - 1) / max(1e-9, end.timeIntervalSince(first)) : 0
            let firstFrameMs = first.timeIntervalSince(start) * 1000
            // The capture thread's rate (every frame it dequeued, including those the consumer
            // let the stream replace): what the driver delivers, apart from the consumer's speed.
            let captureFPS = stats.delivered > 1 ? Double(stats.delivered - 1) / max(1e-9, end.timeIntervalSince(first)) : 0
            if json {
                try printJSONObject(["identity": device.identity.description, "path": device.path, "profile": profile.name,
                                     "frames": count, "fps": (fps * 100).rounded() / 100, "capture_fps": (captureFPS * 100).rounded() / 100, "first_frame_ms": Int(firstFrameMs),
                                     "dropped_by_driver": stats.droppedByDriver, "dropped_by_consumer": stats.droppedByConsumer,
                                     "format": formatJSON(stats.format), "mean_luma": (lumaSum / 2 * 10).rounded() / 10])
            } else {
                let f = stats.format
                print("\(device.identity) (\(device.path)), profile \(profile.name)")
                print("format \(f.map { "\($0.width)x\($0.height) \($0.pixelFormat.rawValue), \($0.buffers) buffers, driver fps \($0.fps.map { String($0) } ?? "-")" } ?? "-")")
                print(String(format: "%d frames, %.2f fps (after the first, which took %.0f ms); capture thread %.2f fps; dropped %d by driver, %d by consumer",
                             count, fps, firstFrameMs, captureFPS, stats.droppedByDriver, stats.droppedByConsumer))
            }
        }
    }

    /// `kioskctl camera supervise`: the supervisor's status changes, for checking unplug and return.
    struct Supervise: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the camera supervisor; print status changes (unplug → unavailable, return → reopened).")
        @OptionGroup var camera: CameraOptions
        @Option(help: "Stop after this many seconds.") var seconds = 30.0
        @Option(help: "Retry interval while unavailable, milliseconds.") var retryMs = 500
        @Flag(help: "Exit 0 only if the camera streamed, became unavailable and streamed again.") var expectReopen = false

        func run() async throws {
            let (device, profile) = try camera.resolve()
            let identity = device.identity
            let supervisor = CameraSupervisor(retryInterval: .milliseconds(retryMs)) {
                let d = try await CameraEnumerator.findOffPool(identity)
                return V4L2Source(device: d, profile: profile)
            }
            let t0 = Date()
            let counter = FrameCounter()
            let statusTask = Task {
                for await s in supervisor.statusUpdates() {
                    print(String(format: "[%7.2f s] status: %@ (frames so far %d)", Date().timeIntervalSince(t0), s.description, counter.value))
                    fflush(nil)
                }
            }
            let frameTask = Task {
                for await _ in supervisor.frames() { counter.increment() }
            }
            // Until the time is up, or (--expect-reopen) 10 frames after a reopening.
            let deadline = Date().addingTimeInterval(seconds)
            var framesAtReopen: Int?
            while Date() < deadline {
                try? await Task.sleep(for: .milliseconds(100))
                if expectReopen, supervisor.openCount >= 2 {
                    if framesAtReopen == nil { framesAtReopen = counter.value }
                    if counter.value - framesAtReopen! >= 10 { break }
                }
            }
            frameTask.cancel()
            statusTask.cancel()
            _ = await frameTask.value
            let opens = supervisor.openCount, failures = supervisor.failureCount
            print("supervisor: \(counter.value) frames, opened \(opens) times, \(failures) failures, now: \(supervisor.statusLine)")
            if expectReopen {
                guard opens >= 2, failures >= 1 else {
                    print("FAIL camera-supervise: expected a failure and a reopen (opens \(opens), failures \(failures))")
                    throw ExitCode(1)
                }
                print("OK camera-supervise: \(failures) failure(s), reopened (\(opens) opens, \(counter.value) frames)")
            }
        }
    }

    /// `kioskctl camera feed DIR --device OUTPUT`.
    struct Feed: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Feed a video output (vivid's HDMI out) with the PGM/PPM frames of a directory, in a cycle.")
        @Argument(help: "Directory of .pgm/.ppm frames (sorted by name).") var directory: String
        @Option(help: "Output node: /dev/videoN or identity (default: the first output).") var device: String?
        @Option(help: "Source frames per second.") var fps = 15.0
        @Option(help: "Seconds to feed.") var seconds = 10.0
        @Option(help: "Output width.") var width = 640
        @Option(help: "Output height.") var height = 480

        func run() throws {
            let out = try CameraEnumerator.resolve(device, output: true)
            let replay = try ReplaySource(directory: directory, paced: false)
            var frames: [Frame] = []
            for f in replay.files { frames.append(try Netpbm.read(path: f)) }
            let output = try V4L2Output(path: out.path, width: width, height: height)
            print("feeding \(frames.count) frames from \(directory) to \(out.path) (\(out.identity)) at \(output.width)x\(output.height) RGB24, \(fps) fps, \(seconds) s")
            fflush(nil)
            let s = try output.feed(frames, fps: fps, seconds: seconds, onStreaming: {
                print("streaming to \(out.path)")
                fflush(nil)
            })
            print(String(format: "fed %d buffers, %d distinct frames, %.1f s", s.queued, s.framesShown, s.seconds))
        }
    }
}

/// A frame counter shared by the supervise tasks.
final class FrameCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
