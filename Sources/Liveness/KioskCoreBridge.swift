import KioskCore

extension LivenessOutcome {
    /// The outcome as the checkout's `LivenessResult` (decision, score, per-check evidence).
    public func asResult() -> LivenessResult {
        let d: LivenessResult.Decision = switch decision {
        case .pass: .pass
        case .fail: .fail
        case .inconclusive: .inconclusive
        }
        return LivenessResult(decision: d, score: score, checks: checks.map {
            LivenessResult.Check(name: $0.name, value: $0.value, threshold: $0.threshold, passed: $0.passed)
        })
    }
}
