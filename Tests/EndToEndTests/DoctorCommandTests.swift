import Foundation
import Testing

/// `kioskctl doctor` and `kioskctl metrics` as a technician runs them: the built binary.
@Suite(.serialized) struct DoctorCommandTests {
    static var kioskctl: String { Harness.binDir.appendingPathComponent("kioskctl").path }

    static func parse(_ out: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]], "not a JSON array: \(out)")
    }

    static func byCheck(_ rows: [[String: Any]]) -> [String: String] {
        Dictionary(rows.map { ($0["check"] as? String ?? "?", $0["status"] as? String ?? "?") }) { a, _ in a }
    }

    @Test func unreachableCentralFailsWithHints() throws {
        let dir = try Harness.tempDir("doctor-down")
        let cfg = dir.appendingPathComponent("agent.toml")
        try """
        [agent]
        device_id = "kiosk-doctor-0001"
        state_dir = "\(dir.appendingPathComponent("state").path)"
        [outbox]
        min_free_disk_bytes = 0
        [sync]
        url = "https://127.0.0.1:1"
        cert_file = "\(dir.appendingPathComponent("missing.pem").path)"
        key_file = "\(dir.appendingPathComponent("missing.key").path)"
        [control]
        socket = "\(dir.appendingPathComponent("control.sock").path)"
        """.write(to: cfg, atomically: true, encoding: .utf8)
        let t0 = Date()
        let (status, out, err) = try Harness.run(Self.kioskctl, ["doctor", "--json", "--config", cfg.path, "--timeout", "2"])
        #expect(status == 1, "\(err)")
        #expect(Date().timeIntervalSince(t0) < 30)
        let rows = try Self.parse(out)
        #expect(rows.map { $0["check"] as? String } == ["config", "key", "certificate", "disk", "dns", "tcp", "tls", "mtls", "clock",
                                                        "agent", "terminal", "camera", "outbox"])
        let s = Self.byCheck(rows)
        #expect(s["config"] == "OK")
        #expect(s["dns"] == "OK")
        #expect(s["tcp"] == "FAIL")
        #expect(s["key"] == "FAIL")
        #expect(s["certificate"] == "FAIL")
        #expect(s["agent"] == "WARN")
        for row in rows where row["status"] as? String == "FAIL" {
            #expect(((row["hint"] as? String) ?? "").count > 5, "FAIL without a hint: \(row)")
        }
        #expect(rows.allSatisfy { Set($0.keys) == ["check", "status", "message", "hint"] })

        // Text output: one line per check; --skip drops a check.
        let (status2, text, _) = try Harness.run(Self.kioskctl, ["doctor", "--config", cfg.path, "--timeout", "2", "--skip", "tcp"])
        #expect(status2 == 1)
        #expect(text.contains("SKIP tcp"))
        #expect(text.contains("FAIL key"))
        #expect(text.contains("→ "))
    }

    @Test func brokenConfigFailsFirstAndSkipsTheRest() throws {
        let dir = try Harness.tempDir("doctor-badcfg")
        let cfg = dir.appendingPathComponent("agent.toml")
        try "[sync]\nbatch_sise = 3\n".write(to: cfg, atomically: true, encoding: .utf8)
        let (status, out, _) = try Harness.run(Self.kioskctl, ["doctor", "--json", "--config", cfg.path])
        #expect(status == 1)
        let rows = try Self.parse(out)
        #expect(rows.first?["status"] as? String == "FAIL")
        #expect((rows.first?["message"] as? String ?? "").contains("sync.batch_sise: unknown key (did you mean sync.batch_size?)"))
        #expect(rows.dropFirst().allSatisfy { $0["status"] as? String == "SKIP" })
    }

    @Test func healthyKioskPassesAndExportsMetrics() async throws {
        let dir = try Harness.tempDir("doctor-ok")
        let device = "kiosk-e2e-0001"
        let pki = try Harness.makePKI(in: dir, devices: [device])
        let (central, port) = try await Harness.startCentral(pki: pki, dir: dir)
        let prom = dir.appendingPathComponent("kiosk_agent.prom")
        let agent = try AgentProcess(dir: dir, deviceID: device, centralPort: port, pki: pki,
                                     extra: "[metrics]\ntextfile = \"\(prom.path)\"\ninterval_s = 1")
        try await agent.start()
        defer { _ = agent.terminate() }

        let (status, out, err) = try Harness.run(Self.kioskctl, ["doctor", "--json", "--config", agent.configPath.path])
        let s = Self.byCheck(try Self.parse(out))
        #expect(status == 0, "\(out)\n\(err)")
        for check in ["config", "key", "certificate", "dns", "tcp", "tls", "mtls", "clock", "agent", "outbox"] {
            #expect(s[check] == "OK", "\(check): \(out)")
        }

        let (s1, _, e1) = try Harness.run(Self.kioskctl, ["dev", "submit-sample", "--count", "2", "--device-id", device, "--socket", agent.socketPath])
        #expect(s1 == 0, "\(e1)")
        var metrics = ""
        for _ in 0..<100 {
            let (ms, text, _) = try Harness.run(Self.kioskctl, ["metrics", "--socket", agent.socketPath])
            #expect(ms == 0)
            metrics = text
            if text.contains("kiosk_agent_sync_applications_total{result=\"accepted\"} 2") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(metrics.contains("# TYPE kiosk_agent_outbox_depth gauge\nkiosk_agent_outbox_depth 0\n"), "\(metrics)")
        #expect(metrics.contains("# TYPE kiosk_agent_sync_requests_total counter"))
        #expect(metrics.contains("kiosk_agent_sync_applications_total{result=\"accepted\"} 2"))
        #expect(metrics.contains("# TYPE kiosk_agent_liveness_duration_seconds histogram"))

        // The textfile follows within its interval.
        var file = ""
        for _ in 0..<50 {
            file = (try? String(contentsOf: prom, encoding: .utf8)) ?? ""
            if file.contains("kiosk_agent_sync_applications_total{result=\"accepted\"} 2") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(file.contains("kiosk_agent_sync_applications_total{result=\"accepted\"} 2"), "\(file)")
        #expect(file.contains("# HELP kiosk_agent_outbox_oldest_pending_age_seconds"))
        await central.stop()
    }

    @Test func logsPassesItsOptionsToJournalctl() throws {
        let (status, out, err) = try Harness.run(Self.kioskctl, ["logs", "-f", "--since", "1 hour ago", "-n", "20", "--journalctl", "/bin/echo"])
        #expect(status == 0, "\(err)")
        #expect(out == "-u kiosk-agent --no-pager --follow --since 1 hour ago --lines 20\n")
        let (s2, _, e2) = try Harness.run(Self.kioskctl, ["logs"], environment: ["PATH": "/nonexistent"])
        #expect(s2 != 0)
        #expect(e2.contains("journalctl not found"))
    }

    @Test func completionScriptsKnowTheNewCommands() throws {
        for shell in ["bash", "zsh"] {
            let (status, out, err) = try Harness.run(Self.kioskctl, ["--generate-completion-script", shell])
            #expect(status == 0, "\(err)")
            #expect(out.contains("doctor") && out.contains("metrics") && out.contains("logs"))
        }
    }
}
