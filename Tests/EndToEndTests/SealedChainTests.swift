import Foundation
import KioskAgent
import KioskCentral
import KioskCore
import Sync
import Testing

/// Issue 6's chain on the real binaries: a fresh kiosk is provisioned with a one-time token, runs
/// checkouts, and syncs only sealed, signed applications that central opens and verifies; nothing
/// readable about a shopper is left on the kiosk's disk, in its log or on the wire.
@Suite(.serialized) struct SealedChainTests {
    static var kioskctl: String { Harness.binDir.appendingPathComponent("kioskctl").path }
    static var central: String { Harness.binDir.appendingPathComponent("kiosk-central").path }

    /// What a fleet image ships before provisioning: everything but the identity.
    static func imageConfig(state: String, socket: String, payments: Int) -> String {
        """
        # the fleet image's agent.toml; kioskctl provision adds the identity and the sync keys
        [agent]
        log_level = "info"
        [outbox]
        min_free_disk_bytes = 0
        [sync]
        batch_size = 50
        backoff_base_ms = 20
        backoff_cap_ms = 300
        retry_after_cap_s = 1
        idle_poll_ms = 200
        timeout_ms = 5000
        [control]
        socket = "\(socket)"
        allow_submit = true
        [terminal]
        driver = "simulated"
        simulated_scenario = "pay-confirm"
        simulated_payments = \(payments)
        simulated_interval_ms = 200
        simulated_answer_ms = 100
        [checkout]
        cooldown_s = 0
        prompt_timeout_s = 5
        answer_grace_ms = 500
        [liveness]
        mode = "simulated"

        """
    }

    /// Why `data` is not clean: a full PAN (13–19 digits passing Luhn), track data, or one of `secrets`.
    static func findings(in data: Data, secrets: Set<String>) -> [String] {
        // Timestamps' clock readings are long numbers too (about one in ten passes Luhn): not PANs.
        var bytes = [UInt8](data)
        for key in [#""monotonic_ns":"#, #""wall_clock_ms":"#].map({ Array($0.utf8) }) where bytes.count > key.count {
            var i = 0
            while i <= bytes.count - key.count {
                if bytes[i] == key[0], Array(bytes[i..<(i + key.count)]) == key {
                    var j = i + key.count
                    while j < bytes.count, (48...57).contains(bytes[j]) { bytes[j] = 120; j += 1 }  // 'x'
                    i = j
                } else {
                    i += 1
                }
            }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var found: [String] = []
        if PCIGuard.containsFullPAN(text) { found.append("a full PAN (Luhn)") }
        if PCIGuard.containsTrackData(text) { found.append("track data") }
        for secret in secrets.sorted() where data.range(of: Data(secret.utf8)) != nil { found.append(secret) }
        return found
    }

    /// The contents of a file and its SQLite companions (-wal, -shm, -journal) that exist.
    static func fileWithCompanions(_ path: String) -> [(String, Data)] {
        ["", "-wal", "-shm", "-journal"].compactMap { suffix in
            FileManager.default.contents(atPath: path + suffix).map { (path + suffix, $0) }
        }
    }

    @Test func provisionedKioskSyncsSealedSignedApplicationsOnly() async throws {
        // The scan can fail: a planted PAN and a planted secret are found.
        #expect(Self.findings(in: Data("pan 4111111111111111 x".utf8), secrets: []) == ["a full PAN (Luhn)"])
        #expect(Self.findings(in: Data(#"{"masked_pan":"622202******1234"}"#.utf8), secrets: ["622202******1234"]).count == 1)
        #expect(Self.findings(in: Data(#"{"monotonic_ns":21676759172507}"#.utf8), secrets: []).isEmpty)

        let dir = try Harness.tempDir("sealed-chain")
        let pki = try Harness.makePKI(in: dir)
        let db = dir.appendingPathComponent("central.sqlite").path
        let capture = dir.appendingPathComponent("wire")
        let (server, port, enrolPort) = try await Harness.startEnrollingCentral(
            pki: pki, databasePath: db, requireSealed: true, captureDirectory: capture.path)
        defer { Task { await server.stop() } }

        // 1. A one-time token; a fresh kiosk (image config, empty state dir) is provisioned with it.
        let (ts, tout, terr) = try await ProvisionTests.run(
            Self.central, ["token", "create", "--db", db, "--merchant-id", "merchant-mall", "--site", "mall-7", "--json"])
        #expect(ts == 0, "\(terr)")
        let token = try #require(ProvisionTests.json(tout)["token"] as? String)
        let etc = dir.appendingPathComponent("etc")
        let state = dir.appendingPathComponent("state").path
        let socket = dir.appendingPathComponent("control.sock").path
        let payments = 4
        try FileManager.default.createDirectory(at: etc, withIntermediateDirectories: true)
        try Self.imageConfig(state: state, socket: socket, payments: payments)
            .write(to: etc.appendingPathComponent("agent.toml"), atomically: true, encoding: .utf8)
        let urls = [
            "--central-url", "https://127.0.0.1:\(port)", "--enrol-url", "https://127.0.0.1:\(enrolPort)",
            "--ca-file", pki.appendingPathComponent("ca.pem").path, "--no-start", "--json",
        ]
        let (ps, pout, perr) = try await ProvisionTests.run(
            Self.kioskctl, ["provision", "--token", token, "--merchant-id", "merchant-mall", "--site", "mall-7",
                            "--config-dir", etc.path, "--state-dir", state] + urls)
        #expect(ps == 0, "\(perr)")
        let deviceID = try #require(ProvisionTests.json(pout)["device_id"] as? String, "\(pout)")

        // 2. The token cannot enrol a second kiosk.
        let (us, uout, _) = try await ProvisionTests.run(
            Self.kioskctl, ["provision", "--token", token, "--merchant-id", "merchant-mall",
                            "--config-dir", dir.appendingPathComponent("etc2").path,
                            "--state-dir", dir.appendingPathComponent("state2").path] + urls)
        #expect(us != 0)
        #expect(ProvisionTests.json(uout)["reason"] as? String == "token_used", "\(uout)")

        // 3. The provisioned agent runs its checkouts and syncs them.
        let agent = AgentProcess(dir: dir, existingConfig: etc.appendingPathComponent("agent.toml"), socketPath: socket)
        try await agent.start()
        let deadline = ContinuousClock.now + .seconds(120)
        var completed = 0
        while ContinuousClock.now < deadline {
            let status = try agent.status()
            let outcomes = (status["checkouts"] as? [String: Any])?["since_start"] as? [String: Int] ?? [:]
            let queue = status["queue"] as? [String: Any] ?? [:]
            completed = outcomes["completed"] ?? 0
            let unsynced = (queue["pending"] as? Int ?? 1) + (queue["in_flight"] as? Int ?? 1)
            if outcomes.values.reduce(0, +) >= payments, unsynced == 0 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(completed == payments, "checkouts: \((try? agent.status()) ?? [:]); log: \(agent.tail())")

        // 4. Central opened and verified every one: the device's own, signed by its enrolled key.
        let stored = try await server.store.all()
        #expect(stored.count == completed)
        let deviceKey = try AuthorizationSigner(pem: String(contentsOfFile: state + "/device.key", encoding: .utf8))
        var secrets = Set<String>()
        for row in stored {
            #expect(row.deviceID == deviceID)
            let app = try CanonicalJSON.decode(CreditApplication.self, from: Data(row.payload.utf8))
            #expect(app.deviceID == deviceID)
            #expect(app.merchantID == "merchant-mall")
            #expect(try AuthorizationSigner.verify(app.authorization) == deviceKey.keyID)
            #expect(app.authorization.confirmedAt.wallClockMillis > 0)
            secrets.formUnion([app.payment.transactionRef, app.payment.maskedPAN, app.payment.terminalToken,
                               app.payment.approvalCode])
        }
        #expect(!secrets.isEmpty)

        // 5. The wire carried envelopes only; the outbox and the log hold nothing readable.
        let bodies = try FileManager.default.contentsOfDirectory(atPath: capture.path).sorted().map {
            ($0, try Data(contentsOf: capture.appendingPathComponent($0)))
        }
        #expect(!bodies.isEmpty)
        var envelopes = 0
        for (name, body) in bodies {
            #expect(Self.findings(in: body, secrets: secrets).isEmpty, "request body \(name)")
            for item in try JSONDecoder().decode(BatchRequest.self, from: body).items {
                #expect(SealedEnvelope.decodeIfSealed(Data(item.payload.utf8)) != nil, "plain payload on the wire: \(item.id)")
                envelopes += 1
            }
        }
        #expect(envelopes >= completed)
        let outboxFiles = Self.fileWithCompanions(state + "/outbox.sqlite")
        #expect(!outboxFiles.isEmpty)
        for (path, data) in outboxFiles + [(agent.logPath.path, try Data(contentsOf: agent.logPath))] {
            #expect(Self.findings(in: data, secrets: secrets).isEmpty, "\(path)")
        }

        // 6. A tampered envelope (one from the wire, its ciphertext altered) is refused.
        let sample = try JSONDecoder().decode(BatchRequest.self, from: try #require(bodies.first).1)
        var item = try #require(sample.items.first)
        var envelope = try #require(SealedEnvelope.decodeIfSealed(Data(item.payload.utf8)) ?? nil)
        var ciphertext = try #require(Data(base64Encoded: envelope.ciphertext))
        ciphertext[ciphertext.startIndex + 3] ^= 0x01
        envelope.ciphertext = ciphertext.base64EncodedString()
        item.payload = String(decoding: try CanonicalJSON.encode(envelope), as: UTF8.self)
        item.payloadSHA256 = CentralStore.sha256Hex(item.payload)
        let tampered = try await Harness.postBatch(config: etc.appendingPathComponent("agent.toml").path,
                                           BatchRequest(deviceID: deviceID, sentAt: sample.sentAt, items: [item]))
        #expect(tampered.status == 200)
        let tamperedResults = try JSONDecoder().decode(BatchResponse.self, from: tampered.body).results
        #expect(tamperedResults.map(\.reason) == [.badSignature], "\(String(decoding: tampered.body, as: UTF8.self))")
        #expect(try await server.store.application(id: item.id)?.payloadSHA256 == stored.first { $0.id == item.id }?.payloadSHA256)

        // 7. Revoked: the device's syncs are refused, and its queued application stays queued.
        let (vs, _, verr) = try await ProvisionTests.run(Self.central, ["device", "revoke", deviceID, "--db", db])
        #expect(vs == 0, "\(verr)")
        var late = CreditApplication.sample(deviceID: deviceID)
        late.merchantID = "merchant-mall"
        #expect(try agent.submit(late), "\(agent.lastSubmitError ?? "")")
        var lastError = ""
        let revokedDeadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < revokedDeadline {
            let sync = try agent.status()["sync"] as? [String: Any] ?? [:]
            lastError = sync["last_error"] as? String ?? ""
            if lastError.contains("device_revoked") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(lastError.contains("device_revoked"), "\((try? agent.status()) ?? [:])")
        #expect(try await server.store.application(id: late.id) == nil)
        let queue = try agent.status()["queue"] as? [String: Any] ?? [:]
        #expect((queue["pending"] as? Int ?? 0) + (queue["in_flight"] as? Int ?? 0) == 1, "\(queue)")
        #expect(agent.terminate() == 0)
        await server.stop()
    }
}
