import Foundation

/// Exponential backoff with full jitter, a cap, and `Retry-After` honoured.
///
/// The n-th consecutive failure waits a uniformly random time in `0 … min(cap, base·2ⁿ)`
/// ("full jitter"); a server's `Retry-After` is a floor (capped by ``retryAfterCap``).
public struct Backoff: Sendable, Equatable {
    /// The first step.
    public var base: Duration
    /// The largest computed wait.
    public var cap: Duration
    /// The largest `Retry-After` obeyed.
    public var retryAfterCap: Duration

    /// Creates a policy.
    public init(base: Duration = .milliseconds(500), cap: Duration = .seconds(300), retryAfterCap: Duration = .seconds(900)) {
        self.base = base
        self.cap = cap
        self.retryAfterCap = retryAfterCap
    }

    /// The wait after `failures` consecutive failures (≥ 1), given an optional `Retry-After`.
    public func delay<R: RandomNumberGenerator>(failures: Int, retryAfter: Duration?, using rng: inout R) -> Duration {
        let exponent = min(max(failures - 1, 0), 30)
        let ceilingMs = min(Double(cap.milliseconds), Double(base.milliseconds) * pow(2, Double(exponent)))
        let jittered = Duration.milliseconds(Int64(Double.random(in: 0...max(ceilingMs, 1), using: &rng)))
        guard let retryAfter else { return jittered }
        return max(jittered, min(retryAfter, retryAfterCap))
    }

    /// Parses a `Retry-After` value: delta-seconds or an HTTP-date.
    public static func parseRetryAfter(_ value: String?, now: Date = Date()) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        guard let date = f.date(from: value) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
    }
}

extension Duration {
    /// The duration in whole milliseconds.
    public var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
    /// The duration in seconds as a `TimeInterval`.
    public var timeInterval: TimeInterval {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
