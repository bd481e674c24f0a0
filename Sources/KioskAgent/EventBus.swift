import Foundation
import Synchronization

/// Fans the agent's events (checkout transitions, terminal connection changes) out to live
/// subscribers: `watch` connections on the control socket and the shopper's screen.
///
/// Each event is one JSON object (a line on the control socket). Subscribers that fall behind
/// lose the oldest events (bounded buffer), never block the checkout; the last few events are
/// replayed to a new subscriber so a screen that (re)connects shows the current state.
public final class EventBus: Sendable {
    private struct State {
        var next = 0
        var subscribers: [Int: AsyncStream<Data>.Continuation] = [:]
        var recent: [Data] = []
        var sequence: Int64 = 0
    }
    private let state = Mutex(State())
    private let replayCount: Int
    private let bufferPerSubscriber: Int

    /// Creates a bus keeping `replay` recent events for new subscribers.
    public init(replay: Int = 16, bufferPerSubscriber: Int = 1024) {
        replayCount = replay
        self.bufferPerSubscriber = bufferPerSubscriber
    }

    /// Publishes an event: `fields` plus `"event": kind`, a bus sequence number and the time.
    public func publish(_ kind: String, _ fields: [String: Any]) {
        var object = fields
        object["event"] = kind
        object["at"] = Date().formatted(Self.timestampStyle)
        let subscribers = state.withLock { s -> [AsyncStream<Data>.Continuation] in
            s.sequence += 1
            object["seq"] = s.sequence
            return Array(s.subscribers.values)
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        state.withLock { s in
            s.recent.append(data)
            if s.recent.count > replayCount { s.recent.removeFirst(s.recent.count - replayCount) }
        }
        for c in subscribers { c.yield(data) }
    }

    /// A live stream of events (JSON object bytes), starting with the recent ones when `replay`.
    public func subscribe(replay: Bool = true) -> AsyncStream<Data> {
        let (stream, continuation) = AsyncStream.makeStream(of: Data.self, bufferingPolicy: .bufferingNewest(bufferPerSubscriber))
        let id = state.withLock { s -> Int in
            s.next += 1
            s.subscribers[s.next] = continuation
            if replay { s.recent.forEach { continuation.yield($0) } }
            return s.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Number of live subscribers.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Ends every subscription (shutdown).
    public func finish() {
        let subs = state.withLock { s -> [AsyncStream<Data>.Continuation] in
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        subs.forEach { $0.finish() }
    }
}

extension EventBus {
    /// ISO 8601 UTC with milliseconds (a value type: no formatter object, no ICU, per event).
    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
}
