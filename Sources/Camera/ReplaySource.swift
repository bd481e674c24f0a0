import Foundation
import Synchronization

/// Anything that delivers frames: the V4L2 camera, a replay directory, a test fake.
public protocol FrameSource: Sendable {
    /// What the source is, for status and logs (`/dev/video0 (vivid@platform:vivid-000)`, `replay DIR`).
    var name: String { get }
    /// Starts the source; frames arrive until the consumer stops iterating (which stops the source)
    /// or the source fails (the stream then throws a ``CameraError``).
    func frames() -> AsyncThrowingStream<Frame, Error>
}

/// Frames from a directory of PGM/PPM files (sorted by name), for the demo and tests.
public struct ReplaySource: FrameSource {
    /// The directory.
    public let directory: String
    /// The files replayed, in order (full paths).
    public let files: [String]
    /// Frames per second when paced.
    public let fps: Double
    /// Start again after the last file.
    public let loop: Bool
    /// Deliver at `fps` (true) or as fast as the consumer takes them (false).
    public let paced: Bool

    /// Lists the directory's `.pgm`/`.ppm` files; throws ``CameraError/file(path:reason:)`` when it
    /// cannot be read or holds none.
    public init(directory: String, fps: Double = 30, loop: Bool = false, paced: Bool = true) throws(CameraError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .file(path: directory, reason: "cannot list the replay directory: \(error.localizedDescription)")
        }
        let frames = names.filter { $0.hasSuffix(".pgm") || $0.hasSuffix(".ppm") }.sorted()
        guard !frames.isEmpty else { throw .file(path: directory, reason: "holds no .pgm or .ppm frames") }
        self.directory = directory
        self.files = frames.map { (directory as NSString).appendingPathComponent($0) }
        self.fps = fps > 0 ? fps : 30
        self.loop = loop
        self.paced = paced
    }

    /// `replay DIR`.
    public var name: String { "replay \(directory)" }

    /// Pull-driven: each frame is read when the consumer asks for it (nothing buffers up); paced
    /// sources wait until the frame's due time.
    public func frames() -> AsyncThrowingStream<Frame, Error> {
        let state = Mutex<(index: Int, sequence: UInt32, next: ContinuousClock.Instant?)>((0, 0, nil))
        let files = self.files, loop = self.loop, paced = self.paced
        let period = Duration.nanoseconds(Int64(1e9 / fps))
        return AsyncThrowingStream<Frame, Error> {
            let step: (path: String, sequence: UInt32, due: ContinuousClock.Instant?)? = state.withLock { s in
                if s.index >= files.count {
                    guard loop else { return nil }
                    s.index = 0
                }
                let now = ContinuousClock.now
                let due = s.next.map { max($0, now) } ?? now
                s.next = due + period
                defer { s.index += 1; s.sequence &+= 1 }
                return (files[s.index], s.sequence, paced ? due : nil)
            }
            guard let step else { return nil }
            if let due = step.due { try await Task.sleep(until: due, clock: .continuous) }
            var frame = try Netpbm.read(path: step.path)
            frame.sequence = step.sequence
            frame.timestampNanos = monotonicNanos()
            return frame
        }
    }
}
