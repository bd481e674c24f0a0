import Dispatch
import Foundation
import Logging
import Outbox
import ServiceLifecycle
import Synchronization

/// Wakes a waiting loop: rung on a new enqueue or when the network comes back.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var networkReturned = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    /// Creates a doorbell.
    public init() {}

    /// Wakes the waiter (or the next wait) because there is new work.
    public func ring() { ring(network: false) }

    /// Wakes the waiter because the network changed: waits for backoff are cut short.
    public func ringNetworkReturned() { ring(network: true) }

    private func ring(network: Bool) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.rung = true
            if network { s.networkReturned = true }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Waits until rung, the timeout passes or the task is cancelled; returns whether the
    /// network-returned bell was among the rings (and clears it).
    @discardableResult
    public func wait(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.wake() }
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    // Checked under the lock that `wake()` takes: a cancellation that ran its
                    // handler before this point is seen here, one after finds the waiter.
                    let resumeNow = state.withLock { s -> Bool in
                        if s.rung || Task.isCancelled { return true }
                        s.waiter = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            } onCancel: {
                self.wake()
            }
            group.cancelAll()
        }
        return state.withLock { s in
            defer { s.rung = false; s.networkReturned = false }
            return s.networkReturned
        }
    }

    /// Resumes a waiter without marking new work (timeouts and cancellation).
    private func wake() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }
}

/// Runs blocking work on one dedicated thread, off Swift's cooperative pool.
public final class BlockingExecutor: Sendable {
    private let queue: DispatchQueue

    /// Creates an executor with a serial queue of the given label.
    public init(label: String) { queue = DispatchQueue(label: label) }

    /// Runs `body` on the executor's thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in queue.async { c.resume(returning: body()) } }
    }
}

/// The sync loop as a service: delivers due rows, backs off on failure, sleeps when idle,
/// wakes on the doorbell. On graceful shutdown it finishes the request under way and stops.
public final class SyncService: Service, Sendable {
    private let engine: SyncEngine
    private let outbox: Outbox
    private let doorbell: Doorbell
    private let idlePoll: Duration
    private let executor = BlockingExecutor(label: "kiosk.sync.curl")
    private let progress: (@Sendable () -> Void)?
    private let logger: Logger

    /// Creates the service; `progress` is called after every loop iteration (the watchdog's heartbeat).
    public init(engine: SyncEngine, outbox: Outbox, doorbell: Doorbell, idlePoll: Duration = .seconds(5),
                logger: Logger = Logger(label: "kiosk.sync"), progress: (@Sendable () -> Void)? = nil) {
        self.engine = engine
        self.outbox = outbox
        self.doorbell = doorbell
        self.idlePoll = idlePoll
        self.logger = logger
        self.progress = progress
    }

    /// Runs until cancelled or shut down gracefully.
    public func run() async throws {
        logger.info("sync loop started")
        await cancelWhenGracefulShutdown { await self.loop() }
        let engine = self.engine
        await executor.run { engine.releaseReadAhead() }
        logger.info("sync loop stopped")
    }

    private func loop() async {
        var ignoreBackoff = false
        while !Task.isCancelled {
            let engine = self.engine
            let skip = ignoreBackoff
            let outcome = await executor.run { engine.syncOnce(ignoreBackoff: skip) }
            ignoreBackoff = false
            progress?()
            switch outcome {
            case .delivered:
                continue
            case .idle:
                ignoreBackoff = await doorbell.wait(timeout: await idleWait())
            case let .failed(delay):
                // New enqueues do not cut a backoff short (that would hammer a failing
                // server); a network change does.
                let deadline = ContinuousClock.now + delay
                while !Task.isCancelled, ContinuousClock.now < deadline {
                    let remaining = min(deadline - ContinuousClock.now, idlePoll)
                    if await doorbell.wait(timeout: remaining) {
                        ignoreBackoff = true
                        break
                    }
                    progress?()
                }
            }
        }
    }

    /// How long to sleep when idle: until the head row is due, at most the idle poll. The
    /// outbox read runs on the executor's thread, not on Swift's cooperative pool.
    private func idleWait() async -> Duration {
        let outbox = self.outbox
        guard let next = await executor.run({ try? outbox.stats().nextAttemptAt }) else { return idlePoll }
        let ms = Int64(max(0, next.timeIntervalSinceNow) * 1000) + 5
        return min(idlePoll, .milliseconds(ms))
    }
}
