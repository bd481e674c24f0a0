import Logging

/// Whether the camera can be used right now, for the agent's status output.
public enum CameraStatus: Sendable, Equatable, CustomStringConvertible {
    /// Not opened yet.
    case starting
    /// Frames are arriving from the named source.
    case streaming(source: String)
    /// The camera cannot be used (unplugged, driver error, not found); reopening is retried.
    case unavailable(reason: String)
    /// The supervisor's stream was ended by its consumer.
    case stopped

    /// True only while frames arrive.
    public var isAvailable: Bool { if case .streaming = self { true } else { false } }

    /// `camera ok: SOURCE`, `camera unavailable: REASON`, `camera starting`, `camera stopped`.
    public var description: String {
        switch self {
        case .starting: "camera starting"
        case .streaming(let source): "camera ok: \(source)"
        case .unavailable(let reason): "camera unavailable: \(reason)"
        case .stopped: "camera stopped"
        }
    }
}

/// Keeps a camera running: opens a source, passes its frames on, and when it fails (unplug,
/// driver error, timeout) reports ``CameraStatus/unavailable(reason:)`` and tries to open it
/// again every `retryInterval` until it returns.
public final class CameraSupervisor: Sendable {
    private let open: @Sendable () async throws -> any FrameSource
    private let retryInterval: Duration
    private let logger: Logger
    private let state = Locked<(status: CameraStatus, opens: Int, failures: Int)>((.starting, 0, 0))
    private let watchers = Locked<[AsyncStream<CameraStatus>.Continuation]>([])

    /// A supervisor around `open`, called for every attempt (it should look the device up again:
    /// its node may have changed after a replug).
    public init(retryInterval: Duration = .seconds(2), logger: Logger = Logger(label: "kiosk.camera"),
                open: @escaping @Sendable () async throws -> any FrameSource) {
        self.open = open
        self.retryInterval = retryInterval
        self.logger = logger
    }

    /// A supervisor for a V4L2 camera found by `identity` (nil: the first camera) on every
    /// attempt, with the best of `profiles` for it.
    public static func v4l2(identity: CameraIdentity?, profiles: [CameraProfile], retryInterval: Duration = .seconds(2),
                            logger: Logger = Logger(label: "kiosk.camera")) -> CameraSupervisor {
        CameraSupervisor(retryInterval: retryInterval, logger: logger) {
            let device: CameraDevice
            if let identity {
                device = try await CameraEnumerator.findOffPool(identity)
            } else {
                guard let first = await CameraEnumerator.listOffPool().first else { throw CameraError.notFound("any camera") }
                device = first
            }
            return V4L2Source(device: device, profile: CameraProfile.best(for: device, in: profiles))
        }
    }

    /// The current status.
    public var status: CameraStatus { state.withLock { $0.status } }
    /// `camera ok: …` / `camera unavailable: <reason>` for status output.
    public var statusLine: String { status.description }
    /// How many times a source delivered its first frame (1 + reopenings).
    public var openCount: Int { state.withLock { $0.opens } }
    /// How many times a source failed or ended.
    public var failureCount: Int { state.withLock { $0.failures } }

    /// Every status change from now on (the current status first).
    public func statusUpdates() -> AsyncStream<CameraStatus> {
        let (stream, c) = AsyncStream<CameraStatus>.makeStream(bufferingPolicy: .bufferingNewest(16))
        let current = status
        watchers.withLock { $0.append(c) }
        c.yield(current)
        return stream
    }

    private func set(_ s: CameraStatus, opened: Bool = false, failed: Bool = false) {
        let changed = state.withLock { st -> Bool in
            let changed = st.status != s
            st.status = s
            if opened { st.opens += 1 }
            if failed { st.failures += 1 }
            return changed
        }
        guard changed else { return }
        switch s {
        case .unavailable: logger.warning("\(s.description)")
        default: logger.info("\(s.description)")
        }
        watchers.withLock { ws in for w in ws { w.yield(s) } }
    }

    /// Frames from whichever source is open, across failures and reopenings; never throws
    /// (failures become ``status``). Ending the iteration stops the source. Newest two buffered.
    public func frames() -> AsyncStream<Frame> {
        let (stream, continuation) = AsyncStream<Frame>.makeStream(bufferingPolicy: .bufferingNewest(2))
        let task = Task { [self] in
            while !Task.isCancelled {
                do {
                    let source = try await open()
                    var first = true
                    for try await frame in source.frames() {
                        if first {
                            first = false
                            set(.streaming(source: source.name), opened: true)
                        }
                        continuation.yield(frame)
                    }
                    if Task.isCancelled { break }
                    set(.unavailable(reason: "\(source.name) stopped delivering frames"), failed: true)
                } catch {
                    if Task.isCancelled { break }
                    set(.unavailable(reason: "\(error)"), failed: true)
                }
                try? await Task.sleep(for: retryInterval)
            }
            set(.stopped)
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
