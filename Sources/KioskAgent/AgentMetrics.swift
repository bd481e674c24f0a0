import Foundation
import KioskCore

/// The metrics the agent owns (liveness decisions and durations); the rest are read from the
/// outbox, the sync engine, the checkout runner and the device drivers when rendered.
public final class AgentMetrics: Sendable {
    /// Liveness checks by decision.
    public let livenessDecisions = LabelledCounter(
        name: "kiosk_agent_liveness_decisions_total", help: "Liveness checks run, by decision.", labelNames: ["decision"])
    /// Liveness check durations by decision.
    public let livenessDuration = LabelledHistogram(
        name: "kiosk_agent_liveness_duration_seconds", help: "How long liveness checks took, by decision.", labelNames: ["decision"],
        buckets: [0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60])

    /// Creates empty metrics.
    public init() {}
}

/// Counts and times every liveness check of the step it wraps.
struct MeteredLiveness: LivenessStep {
    let inner: any LivenessStep
    let metrics: AgentMetrics

    func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult {
        let t0 = ContinuousClock.now
        let result = inner.check(checkout: checkout, guide: guide)
        let d = ContinuousClock.now - t0
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        metrics.livenessDecisions.increment([result.decision.rawValue])
        metrics.livenessDuration.observe([result.decision.rawValue], seconds)
        return result
    }

    var unavailableReason: String? { inner.unavailableReason }
}

extension AgentDaemon {
    /// Every metric family, read now.
    public func metricFamilies(now: Date = Date()) -> [MetricFamily] {
        var f: [MetricFamily] = []
        f.append(MetricFamily(name: "kiosk_agent_info", help: "The agent's version and device id (always 1).", type: .gauge,
                              samples: [MetricSample("kiosk_agent_info", [("version", kioskAgentVersion), ("device_id", config.deviceID)], 1)]))
        f.append(.single("kiosk_agent_start_time_seconds", "When the agent started (Unix time).", .gauge, startedAtDate.timeIntervalSince1970))
        if let s = try? outbox.stats() {
            f.append(.single("kiosk_agent_outbox_depth", "Applications waiting to be delivered (pending and in flight).", .gauge,
                             Double(s.pending + s.inFlight)))
            f.append(.labelled("kiosk_agent_outbox_applications", "Applications in the outbox, by state.", .gauge, label: "state",
                               ["pending": Double(s.pending), "in_flight": Double(s.inFlight), "synced": Double(s.synced),
                                "rejected": Double(s.rejected), "quarantined": Double(s.quarantined)]))
            f.append(.single("kiosk_agent_outbox_oldest_pending_age_seconds", "Age of the oldest pending application (0 when none).", .gauge,
                             s.oldestPendingCreatedAt.map { max(0, now.timeIntervalSince($0)) } ?? 0))
            f.append(.single("kiosk_agent_outbox_unsynced_bytes", "Payload bytes not yet delivered.", .gauge, Double(s.unsyncedBytes)))
        }
        if let engine {
            let s = engine.status
            f.append(.labelled("kiosk_agent_sync_requests_total", "Batch requests to central, by result.", .counter, label: "result",
                               ["success": Double(s.batches), "failure": Double(s.failures)]))
            f.append(.labelled("kiosk_agent_sync_applications_total", "Applications central answered, by answer.", .counter, label: "result",
                               ["accepted": Double(s.accepted), "duplicate": Double(s.duplicates), "rejected": Double(s.rejected)]))
            f.append(.single("kiosk_agent_sync_last_success_timestamp_seconds", "When central last accepted a batch (Unix time; 0 never).", .gauge,
                             s.lastSuccessAt?.timeIntervalSince1970 ?? 0))
        }
        if let checkouts {
            f.append(.labelled("kiosk_agent_checkouts_total", "Checkouts finished since the agent started, by outcome.", .counter,
                               label: "outcome", checkouts.outcomes.mapValues { Double($0) }))
        }
        f.append(metrics.livenessDecisions.family)
        f.append(metrics.livenessDuration.family)
        var reconnects: [String: Double] = [:]
        if let usb = terminal as? USBTerminalPort { reconnects["terminal"] = Double(max(0, usb.driver.connectCount - 1)) }
        if let camera { reconnects["camera"] = Double(max(0, camera.supervisor.openCount - 1)) }
        if !reconnects.isEmpty {
            f.append(.labelled("kiosk_agent_device_reconnects_total", "Times a device was opened again after the first time.", .counter,
                               label: "device", reconnects))
        }
        return f
    }

    /// The metrics in Prometheus text format.
    public func metricsText() -> String { PrometheusText.render(metricFamilies()) }
}
