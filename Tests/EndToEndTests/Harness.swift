import Foundation
import KioskAgent
import KioskCentral
import KioskCore
import Sync

/// Paths and helpers shared by the end-to-end tests, which run the built binaries.
enum Harness {
    /// The repository root (derived from this file's path).
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where `kiosk-agent`, `kioskctl` and `kiosk-central` were built.
    static var binDir: URL {
        if let d = ProcessInfo.processInfo.environment["KIOSK_BIN_DIR"] { return URL(fileURLWithPath: d) }
        return repoRoot.appendingPathComponent(".build/debug")
    }

    /// A fresh temporary directory.
    static func tempDir(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiosk-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs a program to completion and returns (status, stdout, stderr).
    @discardableResult
    static func run(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Makes the dev PKI (CA, server, device and rogue certificates) in a directory.
    static func makePKI(in dir: URL, devices: [String] = ["kiosk-e2e-0001"]) throws -> URL {
        let pki = dir.appendingPathComponent("pki")
        let (status, _, err) = try run("/bin/bash", [repoRoot.appendingPathComponent("Provisioning/dev-pki.sh").path, pki.path] + devices)
        guard status == 0 else { throw HarnessError("dev-pki.sh failed: \(err)") }
        return pki
    }

    /// Posts a batch with the agent's own sync settings (the Sync module's libcurl client).
    static func postBatch(config path: String, _ batch: BatchRequest) async throws -> HTTPResponse {
        let config = try AgentConfig.load(path: path, environment: [:])
        let body = try JSONEncoder().encode(batch)
        let http = config.syncConfiguration.http
        let url = config.centralURL + "/v1/applications/batch"
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let client = try CurlHTTPClient(configuration: http)
                    continuation.resume(returning: try client.perform(
                        method: "POST", url: url, headers: ["Content-Type: application/json"], body: body))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Starts an in-process kiosk-central with enrolment (the dev PKI's CA issues device
    /// certificates); returns it with its mTLS and enrolment ports.
    static func startEnrollingCentral(pki: URL, databasePath: String, requireSealed: Bool = false,
                                      captureDirectory: String? = nil) async throws -> (CentralServer, port: Int, enrolPort: Int) {
        let server = try CentralServer(
            configuration: CentralConfiguration(
                certificatePath: pki.appendingPathComponent("server.pem").path,
                privateKeyPath: pki.appendingPathComponent("server.key").path,
                caPath: pki.appendingPathComponent("ca.pem").path, databasePath: databasePath,
                enrolment: EnrolmentConfiguration(
                    caCertificatePath: pki.appendingPathComponent("ca.pem").path,
                    caKeyPath: pki.appendingPathComponent("ca.key").path),
                requireSealed: requireSealed, captureDirectory: captureDirectory))
        let port = try await server.start()
        guard let enrolPort = server.enrolmentPort else { throw HarnessError("central has no enrolment listener") }
        return (server, port, enrolPort)
    }

    /// Starts an in-process kiosk-central on 127.0.0.1 with an ephemeral port.
    static func startCentral(pki: URL, dir: URL, faults: FaultConfiguration = .none) async throws -> (CentralServer, Int) {
        let config = CentralConfiguration(
            certificatePath: pki.appendingPathComponent("server.pem").path,
            privateKeyPath: pki.appendingPathComponent("server.key").path,
            caPath: pki.appendingPathComponent("ca.pem").path,
            databasePath: dir.appendingPathComponent("central.sqlite").path,
            faults: faults)
        let server = try CentralServer(configuration: config)
        let port = try await server.start()
        return (server, port)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A real `kiosk-agent` process with its own config and state directory.
final class AgentProcess: @unchecked Sendable {
    let dir: URL
    let configPath: URL
    let socketPath: String
    private(set) var process: Process?
    let logPath: URL
    /// The agent's message for the last refused submission.
    var lastSubmitError: String?

    init(dir: URL, deviceID: String, centralPort: Int, pki: URL, extra: String = "") throws {
        self.dir = dir
        configPath = dir.appendingPathComponent("agent.toml")
        socketPath = dir.appendingPathComponent("control.sock").path
        logPath = dir.appendingPathComponent("agent.log")
        let toml = """
        [agent]
        device_id = "\(deviceID)"
        merchant_id = "merchant-e2e"
        state_dir = "\(dir.appendingPathComponent("state").path)"
        log_level = "info"
        [outbox]
        min_free_disk_bytes = 0
        [sync]
        url = "https://localhost:\(centralPort)"
        ca_file = "\(pki.appendingPathComponent("ca.pem").path)"
        cert_file = "\(pki.appendingPathComponent("devices/\(deviceID).pem").path)"
        key_file = "\(pki.appendingPathComponent("devices/\(deviceID).key").path)"
        batch_size = 100
        backoff_base_ms = 5
        backoff_cap_ms = 200
        retry_after_cap_s = 2
        idle_poll_ms = 200
        timeout_ms = 5000
        [control]
        socket = "\(socketPath)"
        allow_submit = true
        \(extra)
        """
        try toml.write(to: configPath, atomically: true, encoding: .utf8)
    }

    /// An agent on an existing config file (one that `kioskctl provision` wrote, say).
    init(dir: URL, existingConfig: URL, socketPath: String) {
        self.dir = dir
        configPath = existingConfig
        self.socketPath = socketPath
        logPath = dir.appendingPathComponent("agent.log")
    }

    /// Starts the agent and waits until its control socket answers.
    func start(timeout: Duration = .seconds(30), environment: [String: String] = [:]) async throws {
        let p = Process()
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.executableURL = Harness.binDir.appendingPathComponent("kiosk-agent")
        p.arguments = ["--config", configPath.path]
        if !FileManager.default.fileExists(atPath: logPath.path) { FileManager.default.createFile(atPath: logPath.path, contents: nil) }
        let log = try FileHandle(forWritingTo: logPath)
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        try p.run()
        process = p
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !p.isRunning { throw HarnessError("kiosk-agent exited with \(p.terminationStatus); log: \(tail())") }
            if (try? call(["cmd": "ping"]))?["ok"] as? Bool == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("kiosk-agent did not become ready; log: \(tail())")
    }

    func tail() -> String {
        let s = (try? String(contentsOf: logPath, encoding: .utf8)) ?? ""
        return String(s.suffix(2000))
    }

    /// One control-socket request.
    func call(_ obj: [String: Any]) throws -> [String: Any] {
        let reply = try ControlClient.request(socketPath: socketPath, JSONSerialization.data(withJSONObject: obj))
        return (try JSONSerialization.jsonObject(with: reply) as? [String: Any]) ?? [:]
    }

    /// Submits an application; returns true only when the agent acknowledged it as durably queued.
    func submit(_ app: CreditApplication) throws -> Bool {
        let obj = try JSONSerialization.jsonObject(with: CanonicalJSON.encode(app))
        let reply = try call(["cmd": "submit", "application": obj])
        if reply["ok"] as? Bool != true { lastSubmitError = reply["error"] as? String ?? "\(reply)" }
        return reply["ok"] as? Bool == true
    }

    func status() throws -> [String: Any] { try call(["cmd": "status"]) }

    func kill9() {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// SIGTERM and wait; returns the exit status.
    func terminate() -> Int32 {
        guard let p = process else { return -1 }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
