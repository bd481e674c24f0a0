import Foundation
import KioskCore
import Testing

/// `kioskctl` as a technician runs it: the built binary against a running agent.
@Suite(.serialized) struct KioskctlTests {
    static var kioskctl: String { Harness.binDir.appendingPathComponent("kioskctl").path }

    @Test func statusAndQueueAgainstARunningAgent() async throws {
        let dir = try Harness.tempDir("ctl")
        let device = "kiosk-e2e-0001"
        let pki = try Harness.makePKI(in: dir, devices: [device])
        let (central, port) = try await Harness.startCentral(pki: pki, dir: dir)
        let agent = try AgentProcess(dir: dir, deviceID: device, centralPort: port, pki: pki)
        try await agent.start()
        defer { _ = agent.terminate() }
        let sock = agent.socketPath

        let (s1, out1, err1) = try Harness.run(Self.kioskctl, ["dev", "submit-sample", "--count", "3", "--device-id", device, "--socket", sock, "--json"])
        #expect(s1 == 0, "\(err1)")
        let submitted = try #require(try JSONSerialization.jsonObject(with: Data(out1.utf8)) as? [[String: Any]])
        #expect(submitted.count == 3)

        // Wait until they are synced, then read status and the queue as JSON.
        var status: [String: Any] = [:]
        for _ in 0..<100 {
            let (s, out, _) = try Harness.run(Self.kioskctl, ["status", "--json", "--socket", sock])
            #expect(s == 0)
            status = (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]) ?? [:]
            if (status["queue"] as? [String: Any])?["synced"] as? Int == 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect((status["queue"] as? [String: Any])?["synced"] as? Int == 3)
        #expect((status["offers"] as? [String: Any])?["accepting"] as? Bool == true)
        #expect(status["device_id"] as? String == device)

        let (s2, out2, _) = try Harness.run(Self.kioskctl, ["queue", "list", "--json", "--socket", sock])
        #expect(s2 == 0)
        let items = try #require(try JSONSerialization.jsonObject(with: Data(out2.utf8)) as? [[String: Any]])
        #expect(items.map { $0["state"] as? String } == ["synced", "synced", "synced"])
        #expect(items.map { $0["id"] as? String } == submitted.map { $0["id"] as? String })

        let (s3, out3, _) = try Harness.run(Self.kioskctl, ["queue", "show", submitted[0]["id"] as! String, "--socket", sock])
        #expect(s3 == 0)
        #expect(out3.contains("\"payload\""))
        #expect(out3.contains("622202******1234"), "the masked PAN, as stored")

        let (s4, _, err4) = try Harness.run(Self.kioskctl, ["queue", "show", "no-such-id", "--socket", sock])
        #expect(s4 != 0)
        #expect(err4.contains("no application with id no-such-id"))

        // A full PAN is refused with a clear error and the PAN masked; nothing is queued.
        var app = CreditApplication.sample(deviceID: device)
        app.payment.terminalToken = "4111111111111111"
        let reply = try agent.call(["cmd": "submit", "application": try JSONSerialization.jsonObject(with: CanonicalJSON.encode(app))])
        #expect(reply["ok"] as? Bool == false)
        #expect(reply["code"] as? String == "pci_violation")
        #expect(!(reply["error"] as? String ?? "").contains("4111111111111111"))
        #expect(!agent.tail().contains("4111111111111111"), "the full PAN reached the log")
        #expect((try agent.status()["queue"] as? [String: Any])?["pending"] as? Int == 0)
        await central.stop()
    }

    @Test func clearErrorWhenTheAgentIsNotRunning() throws {
        let (status, _, err) = try Harness.run(Self.kioskctl, ["status", "--socket", "/tmp/kiosk-no-such-agent.sock"])
        #expect(status != 0)
        #expect(err.contains("cannot reach kiosk-agent"))
    }

    @Test func brokenConfigStopsTheAgentWithTheKeyAndLine() throws {
        let dir = try Harness.tempDir("badcfg")
        let cfg = dir.appendingPathComponent("agent.toml")
        try "[agent]\ndevice_id = \"k\"\n[sync]\nbatch_size = \"many\"\n".write(to: cfg, atomically: true, encoding: .utf8)
        let (status, _, err) = try Harness.run(Harness.binDir.appendingPathComponent("kiosk-agent").path, ["--config", cfg.path])
        #expect(status == 78)
        #expect(err.contains("agent.toml:4: sync.batch_size: expected integer, got string"))
    }
}
