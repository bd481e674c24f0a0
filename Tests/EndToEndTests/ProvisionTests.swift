import Foundation
import KioskAgent
import KioskCentral
import KioskCore
import Sync
import Testing

/// `kioskctl provision` against a real kiosk-central on loopback, then a sync with the issued identity.
@Suite(.serialized) struct ProvisionTests {
    static var kioskctl: String { Harness.binDir.appendingPathComponent("kioskctl").path }
    static var central: String { Harness.binDir.appendingPathComponent("kiosk-central").path }

    /// Runs a binary on a plain thread (not the cooperative pool the in-process central needs), stdin closed.
    static func run(_ path: String, _ args: [String]) async throws -> (Int32, String, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: path)
                p.arguments = args
                p.standardInput = FileHandle.nullDevice
                let out = Pipe(), err = Pipe()
                p.standardOutput = out
                p.standardError = err
                do {
                    try p.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                let o = out.fileHandleForReading.readDataToEndOfFile()
                let e = err.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                continuation.resume(returning: (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self)))
            }
        }
    }

    /// Sends one plain batch item with the agent's own sync settings.
    static func sync(config path: String, id: String) async throws -> HTTPResponse {
        let payload = #"{"id":"\#(id)"}"#
        return try await Harness.postBatch(
            config: path,
            BatchRequest(
                deviceID: try AgentConfig.load(path: path, environment: [:]).deviceID, sentAt: "2026-12-02T05:00:00Z",
                items: [BatchItem(id: id, sequence: 1, payloadSHA256: CentralStore.sha256Hex(payload), payload: payload)]))
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func provisionRerunTokenReuseSyncRotateRevoke() async throws {
        let dir = try Harness.tempDir("provision")
        let pki = try Harness.makePKI(in: dir)
        let db = dir.appendingPathComponent("central.sqlite").path
        let (server, port, enrolPort) = try await Harness.startEnrollingCentral(pki: pki, databasePath: db)
        defer { Task { await server.stop() } }

        // The operator makes a token with the real command line.
        let (ts, tout, terr) = try await Self.run(Self.central, ["token", "create", "--db", db, "--merchant-id", "merchant-e2e", "--site", "mall-1", "--ttl", "1h", "--json"])
        #expect(ts == 0, "\(terr)")
        let token = try #require(Self.json(tout)["token"] as? String)

        let etc = dir.appendingPathComponent("etc").path
        let state = dir.appendingPathComponent("state").path
        let common = [
            "--central-url", "https://127.0.0.1:\(port)", "--enrol-url", "https://127.0.0.1:\(enrolPort)",
            "--ca-file", pki.appendingPathComponent("ca.pem").path, "--no-start", "--json",
        ]

        // Without a token and without a TTY: a clear error naming the flag.
        let (ms, _, merr) = try await Self.run(Self.kioskctl, ["provision", "--config-dir", etc, "--state-dir", state] + common)
        #expect(ms != 0)
        #expect(merr.contains("--token"), "\(merr)")

        // A wrong token: refused with the reason; the key made so far is kept for the re-run.
        let (ws, wout, _) = try await Self.run(Self.kioskctl, ["provision", "--token", "ket_wrong", "--config-dir", etc, "--state-dir", state] + common)
        #expect(ws != 0)
        #expect(Self.json(wout)["reason"] as? String == "token_unknown", "\(wout)")
        let keyAfterFailure = try String(contentsOfFile: state + "/device.key", encoding: .utf8)

        // Provision.
        let (ps, pout, perr) = try await Self.run(
            Self.kioskctl, ["provision", "--token", token, "--merchant-id", "merchant-e2e", "--site", "mall-1", "--config-dir", etc, "--state-dir", state] + common)
        #expect(ps == 0, "\(perr)")
        let result = Self.json(pout)
        #expect(result["status"] as? String == "provisioned", "\(pout)")
        let deviceID = try #require(result["device_id"] as? String)
        #expect(result["merchant_id"] as? String == "merchant-e2e")
        #expect(perr.contains("[3/6] enrol"), "progress per step: \(perr)")
        #expect(try String(contentsOfFile: state + "/device.key", encoding: .utf8) == keyAfterFailure, "the re-run kept the key")
        let keyMode = try #require(try FileManager.default.attributesOfItem(atPath: state + "/device.key")[.posixPermissions] as? Int)
        #expect(keyMode == 0o600)
        let config = try AgentConfig.load(path: etc + "/agent.toml", environment: [:])
        #expect(config.deviceID == deviceID)
        #expect(config.merchantID == "merchant-e2e")
        #expect(config.keyFile == state + "/device.key")
        #expect(FileManager.default.fileExists(atPath: etc + "/central-sealing-key.json"))
        #expect(!(try String(contentsOfFile: state + "/provision.json", encoding: .utf8)).contains(token), "the token is not recorded")

        // Re-run: a no-op.
        let (rs, rout, _) = try await Self.run(Self.kioskctl, ["provision", "--token", token, "--config-dir", etc, "--state-dir", state] + common)
        #expect(rs == 0)
        #expect(Self.json(rout)["status"] as? String == "already_provisioned")

        // The same token on another kiosk (from an enrol.env file): token_used.
        let env = dir.appendingPathComponent("enrol.env").path
        try """
            # from the technician's USB stick
            KIOSK_CENTRAL_URL=https://127.0.0.1:\(port)
            KIOSK_ENROL_URL=https://127.0.0.1:\(enrolPort)
            KIOSK_ENROL_TOKEN=\(token)
            KIOSK_MERCHANT_ID=merchant-e2e
            KIOSK_SITE=mall-1
            KIOSK_CA_FILE=\(pki.appendingPathComponent("ca.pem").path)

            """.write(toFile: env, atomically: true, encoding: .utf8)
        let (us, uout, _) = try await Self.run(
            Self.kioskctl, ["provision", "--from", env, "--config-dir", dir.appendingPathComponent("etc2").path, "--state-dir", dir.appendingPathComponent("state2").path, "--no-start", "--json"])
        #expect(us != 0)
        #expect(Self.json(uout)["reason"] as? String == "token_used", "\(uout)")
        #expect(FileManager.default.fileExists(atPath: env), "a failed provisioning keeps the enrolment file")

        // The agent's sync settings, as written, are accepted by central.
        let first = try await Self.sync(config: etc + "/agent.toml", id: "prov-1")
        #expect(first.status == 200, "\(String(decoding: first.body, as: UTF8.self))")
        #expect(try await server.store.application(id: "prov-1")?.deviceID == deviceID)

        // Rotation: a new key and certificate, the same device, the outbox untouched.
        let outbox = state + "/outbox.sqlite"
        try Data("queued applications".utf8).write(to: URL(fileURLWithPath: outbox))
        let oldCertificate = try String(contentsOfFile: state + "/device.pem", encoding: .utf8)
        let oldKey = try String(contentsOfFile: state + "/device.key", encoding: .utf8)
        try oldCertificate.write(toFile: dir.appendingPathComponent("old.pem").path, atomically: true, encoding: .utf8)
        let (os, oout, oerr) = try await Self.run(Self.kioskctl, ["provision", "--rotate", "--config-dir", etc, "--state-dir", state] + common)
        #expect(os == 0, "\(oerr)")
        #expect(Self.json(oout)["status"] as? String == "rotated", "\(oout)")
        #expect(Self.json(oout)["device_id"] as? String == deviceID)
        #expect(try String(contentsOfFile: state + "/device.key", encoding: .utf8) != oldKey)
        #expect(try String(contentsOfFile: state + "/device.pem", encoding: .utf8) != oldCertificate)
        #expect(try Data(contentsOf: URL(fileURLWithPath: outbox)) == Data("queued applications".utf8))
        let second = try await Self.sync(config: etc + "/agent.toml", id: "prov-2")
        #expect(second.status == 200, "\(String(decoding: second.body, as: UTF8.self))")

        // Revocation with the operator's command: the device's syncs are refused with the reason.
        let (vs, _, verr) = try await Self.run(Self.central, ["device", "revoke", deviceID, "--db", db])
        #expect(vs == 0, "\(verr)")
        let third = try await Self.sync(config: etc + "/agent.toml", id: "prov-3")
        #expect(third.status == 403)
        #expect(String(decoding: third.body, as: UTF8.self).contains("device_revoked"))
        let (ls, lout, _) = try await Self.run(Self.central, ["device", "list", "--db", db, "--json"])
        #expect(ls == 0)
        #expect(lout.contains("\"revoked\""))
        await server.stop()
    }
}
