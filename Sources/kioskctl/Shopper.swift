import ArgumentParser
import Camera
import Foundation
import KioskAgent
import Liveness

extension KioskCtl.Dev {
    /// `kioskctl dev synth-shopper`: make a synthetic shopper's frame sequences from a photo.
    struct SynthShopper: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "synth-shopper",
            abstract: "Write a synthetic shopper's frame sequences (idle and one per liveness challenge) from a face photo.",
            discussion: "For the demo and the test VM only: synthetic frames say nothing about accuracy on real attacks.")
        @Option(help: "A PGM photo with exactly one face.") var photo: String
        @Option(help: "live, print, screen or static.") var kind = "live"
        @Option(help: "Output directory (<out>/<action>/NNN.pgm).") var out: String
        @Option(help: "Frames per sequence.") var count = 16
        @Option(help: "Frame width.") var width = 640
        @Option(help: "Frame height.") var height = 480
        @Option(help: "Face width in the frame, pixels.") var faceWidth = 150.0
        @Option(help: "OpenCV cascade directory.") var cascades = LivenessEngine.defaultCascadeDirectory

        func run() throws {
            guard let k = SyntheticShopper.Kind(rawValue: kind) else {
                throw ValidationError("--kind must be one of \(SyntheticShopper.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let engine = try LivenessEngine(cascadeDirectory: cascades)
            var shopper = try SyntheticShopper(photo: try GrayImage(pgmFile: photo), engine: engine)
            shopper.frameWidth = width
            shopper.frameHeight = height
            shopper.faceWidth = faceWidth
            try shopper.writeSessions(to: out, kind: k, count: count)
            print("wrote \(SyntheticShopper.actionNames.count) sequences of \(count) \(width)x\(height) frames (\(k.rawValue)) to \(out)")
        }
    }

    /// `kioskctl dev feed-shopper`: play a synthetic shopper into a V4L2 output (vivid's loop),
    /// following the agent's liveness instructions from the control socket.
    struct FeedShopper: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "feed-shopper",
            abstract: "Feed a synthetic shopper into a V4L2 output, doing what the agent's liveness check asks.",
            discussion: """
                Watches the agent's events (control socket); a liveness challenge starts the matching \
                sequence of DIR (written by synth-shopper). The test VM feeds vivid's HDMI output, whose \
                loop makes the frames arrive at the capture node the agent reads.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Directory written by synth-shopper.") var directory: String
        @Option(help: "The V4L2 output node.") var device: String
        @Option(help: "Frames per second.") var fps = 25.0
        @Option(help: "Stop after this many seconds.") var seconds = 600.0
        @Option(help: "Play each sequence over this many seconds (for slow consumers); default one frame per output buffer.")
        var sequenceSeconds: Double?

        func run() throws {
            let playback = try ShopperPlayback(directory: directory, secondsPerSequence: sequenceSeconds)
            guard let first = playback.frames.first else { throw ValidationError("no frames in \(directory)") }
            let frames = playback.frames.map { Frame(width: $0.width, height: $0.height, format: .grey, data: $0.pixels) }
            let socket = try global.socketPath()
            let watcher = Thread {
                while true {
                    try? ControlClient.watch(socketPath: socket) { line in
                        if let e = try? JSONSerialization.jsonObject(with: line) as? [String: Any], e["event"] as? String == "liveness" {
                            if let g = (e["guidance"] as? String).flatMap(LivenessGuidance.init(rawValue:)) {
                                playback.follow(g)
                            } else if e["state"] as? String == "decided" || e["state"] as? String == "started" {
                                playback.follow(.faceTheCamera)
                            }
                        }
                        return true
                    }
                    Thread.sleep(forTimeInterval: 0.5)  // the agent is not up (yet): try again
                }
            }
            watcher.start()
            let output = try V4L2Output(path: device, width: first.width, height: first.height)
            let stats = try output.feed(frames, fps: fps, seconds: seconds, onStreaming: {
                // Unbuffered: scripts wait for this line.
                FileHandle.standardOutput.write(Data("streaming to \(device)\n".utf8))
            }, select: { playback.nextIndex() })
            print("fed \(stats.queued) buffers, \(stats.framesShown) distinct frames in \(String(format: "%.1f", stats.seconds)) s")
        }
    }
}
