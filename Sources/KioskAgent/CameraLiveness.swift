import Camera
import Foundation
import KioskCore
import Liveness
import Logging
import ServiceLifecycle
import ShopperScreen
import Synchronization

/// The newest camera frame, handed from the camera service to the checkout thread.
///
/// The camera streams all the time (so an unplug is noticed and reported in status before a
/// shopper is offered anything); frames are only converted and analysed while a check runs.
public final class FrameSlot: Sendable {
    private let condition = NSCondition()
    private nonisolated(unsafe) var frame: Frame?
    private nonisolated(unsafe) var count: UInt64 = 0

    /// Creates an empty slot.
    public init() {}

    /// Replaces the frame (camera side).
    public func put(_ f: Frame) {
        condition.lock()
        frame = f
        count += 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits (blocking) for a frame newer than `after`; nil when `timeout` passes first.
    public func next(after: UInt64, timeout: TimeInterval) -> (Frame, UInt64)? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while count <= after {
            if !condition.wait(until: deadline) { return nil }
        }
        return frame.map { ($0, count) }
    }

    /// How many frames were put so far.
    public var frameCount: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return count
    }

    /// The newest frame and its number, without waiting (nil before the first frame).
    public var latest: (Frame, UInt64)? {
        condition.lock()
        defer { condition.unlock() }
        return frame.map { ($0, count) }
    }
}

/// The shopper's live camera preview for the kiosk's screen: the newest frame of the liveness
/// camera's ``FrameSlot`` (the same frames the check analyses; no second camera open), as grey
/// downscaled to at most ``maxWidth`` pixels wide, and only while a liveness session runs.
///
/// The ``CameraLivenessStep`` marks its session with ``sessionStarted()`` / ``sessionEnded()``;
/// outside a session ``previewFrame()`` is nil, so the screen server answers 404. Nothing is
/// stored: the last downscaled frame is kept in memory only to serve several requests per
/// camera frame, and dropped when the session ends.
public final class LivePreview: ScreenPreviewSource {
    private struct State {
        var sessions = 0
        var cached: (number: UInt64, frame: PreviewFrame)?
    }
    private let slot: FrameSlot
    private let state = Mutex(State())
    /// Largest preview width in pixels.
    public let maxWidth: Int

    /// Creates the preview of `slot`'s frames.
    public init(slot: FrameSlot, maxWidth: Int = 320) {
        self.slot = slot
        self.maxWidth = maxWidth
    }

    /// A liveness session began: frames are served from now on.
    public func sessionStarted() { state.withLock { $0.sessions += 1 } }

    /// The session ended: no more frames, the cached one is dropped.
    public func sessionEnded() {
        state.withLock { s in
            s.sessions = max(0, s.sessions - 1)
            if s.sessions == 0 { s.cached = nil }
        }
    }

    /// Whether a session runs now.
    public var isActive: Bool { state.withLock { $0.sessions > 0 } }

    /// The newest frame, downscaled, while a session runs; nil otherwise or before any frame.
    public func previewFrame() -> PreviewFrame? {
        guard isActive, let (frame, number) = slot.latest else { return nil }
        if let cached = state.withLock({ s in s.cached.flatMap { $0.number == number ? $0.frame : nil } }) { return cached }
        let luma = frame.luma()
        guard let small = PreviewFrame.downscaled(width: luma.width, height: luma.height, pixels: luma.pixels, maxWidth: maxWidth) else { return nil }
        return state.withLock { s -> PreviewFrame? in
            guard s.sessions > 0 else { return nil }
            s.cached = (number, small)
            return small
        }
    }
}

/// Feeds a ``FrameSlot`` from a ``Camera/CameraSupervisor`` until graceful shutdown.
public struct CameraService: Service {
    /// The supervised camera (status for the agent's status output).
    public let supervisor: CameraSupervisor
    /// Where frames go.
    public let slot: FrameSlot

    /// Creates the service.
    public init(supervisor: CameraSupervisor, slot: FrameSlot) {
        self.supervisor = supervisor
        self.slot = slot
    }

    /// Streams frames into the slot; ending the iteration stops the camera.
    public func run() async throws {
        let frames = supervisor.frames()
        await withGracefulShutdownHandler {
            for await frame in frames.cancelOnGracefulShutdown() { slot.put(frame) }
        } onGracefulShutdown: {}
    }
}

/// The liveness check on camera frames (``Liveness/LivenessSession``), between the shopper's
/// consent and the application.
///
/// Runs on the checkout thread: it takes the newest frames, converts them to gray, feeds the
/// session, and passes each new instruction to `guide` (the terminal's display and the event
/// bus, for the kiosk's screen) until the session decides or the time limit passes. A camera
/// that delivers nothing gives an inconclusive result (no application), never a pass.
public final class CameraLivenessStep: LivenessStep {
    private let engine: LivenessEngine
    private let supervisor: CameraSupervisor
    private let slot: FrameSlot
    private let timeLimit: TimeInterval
    private let bus: EventBus
    private let logger: Logger
    /// The shopper's live preview on the kiosk's screen, served only while ``check(checkout:guide:)`` runs.
    public let preview: LivePreview?

    /// Creates the step.
    public init(engine: LivenessEngine, supervisor: CameraSupervisor, slot: FrameSlot, timeLimit: TimeInterval, bus: EventBus, logger: Logger,
                preview: LivePreview? = nil) {
        self.engine = engine
        self.supervisor = supervisor
        self.slot = slot
        self.timeLimit = timeLimit
        self.bus = bus
        self.logger = logger
        self.preview = preview
    }

    /// Why offers are suspended: the camera is not delivering frames.
    public var unavailableReason: String? {
        supervisor.status.isAvailable ? nil : supervisor.statusLine
    }

    /// Runs one session on live frames.
    public func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult {
        check(checkout: checkout, guide: guide, isStopping: { false })
    }

    /// Runs one session on live frames, ending early when `isStopping` turns true.
    public func check(checkout: Checkout, guide: (String) -> Void, isStopping: () -> Bool) -> LivenessResult {
        var session = engine.makeSession()
        preview?.sessionStarted()
        defer { preview?.sessionEnded() }
        // Monotonic: the wall clock of a kiosk may jump (NTP after a boot with a wrong clock).
        let started = ContinuousClock.now
        func elapsed() -> Double {
            let d = ContinuousClock.now - started
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        var last: LivenessGuidance?
        var seen = slot.frameCount
        var frames = 0
        var repeated = 0
        var previous: [UInt8]?
        bus.publish("liveness", ["checkout_id": checkout.id, "state": "started", "challenge": session.challenge.rawValue])
        while elapsed() < timeLimit, !isStopping() {
            guard let (frame, n) = slot.next(after: seen, timeout: 1) else {
                if !supervisor.status.isAvailable { break }
                continue
            }
            seen = n
            let luma = frame.luma()
            // A frame repeated byte for byte (a loopback source, or a driver converting the frame
            // rate by repeating its input) carries no new information: a real sensor never
            // repeats one exactly. Analysed, repeats read as a face that does not move.
            if luma.pixels == previous {
                repeated += 1
                continue
            }
            previous = luma.pixels
            guard let image = GrayImage(width: luma.width, height: luma.height, pixels: luma.pixels) else { continue }
            frames += 1
            let g = session.process(image, timestamp: elapsed())
            if g != last {
                last = g
                guide(g.message)
                bus.publish("liveness", ["checkout_id": checkout.id, "state": "guidance", "guidance": g.rawValue, "message": g.message,
                                         "challenge": session.challenge.rawValue])
            }
            if session.isComplete { break }
        }
        let outcome = session.result()
        var result = outcome.asResult()
        if frames == 0 {
            result = LivenessResult(decision: .inconclusive, score: 0,
                                    checks: [.init(name: "camera_frames", value: 0, threshold: 1, passed: false)])
        }
        logger.info("liveness decided", metadata: [
            "checkout": "\(checkout.id)", "decision": "\(result.decision.rawValue)", "score": "\(result.score)",
            "challenge": "\(session.challenge.rawValue)", "frames": "\(frames)", "repeated_frames_skipped": "\(repeated)",
            "seconds": "\(String(format: "%.1f", elapsed()))",
        ])
        bus.publish("liveness", ["checkout_id": checkout.id, "state": "decided", "decision": result.decision.rawValue, "score": result.score,
                                 "challenge": session.challenge.rawValue, "frames": frames])
        return result
    }
}

/// A synthetic shopper in front of a simulated camera (the demo): frames from a
/// ``Liveness/ShopperPlayback`` directory, following the liveness instructions published on the
/// event bus, at `fps`.
public struct ShopperSource: FrameSource {
    /// The sequences.
    public let playback: ShopperPlayback
    /// Where the instructions come from.
    public let bus: EventBus
    /// Frames per second.
    public let fps: Double
    /// The directory (for the name).
    public let directory: String

    /// Loads the sequences from `directory` (written by `kioskctl dev synth-shopper`).
    public init(directory: String, bus: EventBus, fps: Double) throws {
        playback = try ShopperPlayback(directory: directory)
        self.bus = bus
        self.fps = fps
        self.directory = directory
    }

    /// "synthetic shopper DIR".
    public var name: String { "synthetic shopper \(directory)" }

    /// Frames until the consumer stops listening.
    public func frames() -> AsyncThrowingStream<Frame, Error> {
        let (stream, continuation) = AsyncThrowingStream<Frame, Error>.makeStream(bufferingPolicy: .bufferingNewest(2))
        let playback = self.playback, bus = self.bus, interval = Duration.milliseconds(Int(1000 / max(1, fps)))
        let follower = Task {
            for await line in bus.subscribe(replay: false) {
                guard let e = try? JSONSerialization.jsonObject(with: line) as? [String: Any], e["event"] as? String == "liveness" else { continue }
                if let g = (e["guidance"] as? String).flatMap(LivenessGuidance.init(rawValue:)) {
                    playback.follow(g)
                } else {
                    playback.follow(.faceTheCamera)
                }
            }
        }
        let player = Task {
            var sequence: UInt32 = 0
            while !Task.isCancelled {
                let image = playback.frames[playback.nextIndex()]
                sequence &+= 1
                continuation.yield(Frame(width: image.width, height: image.height, format: .grey, data: image.pixels, sequence: sequence))
                try? await Task.sleep(for: interval)
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            player.cancel()
            follower.cancel()
        }
        return stream
    }
}
