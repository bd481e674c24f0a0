import Foundation
import KioskCentral
import KioskCore
import Outbox
import Synchronization
import Testing
@testable import Sync

@Suite struct BackoffTests {
    @Test func fullJitterStaysUnderTheExponentialCeilingAndTheCap() {
        let b = Backoff(base: .milliseconds(100), cap: .seconds(5), retryAfterCap: .seconds(60))
        var rng = SystemRandomNumberGenerator()
        for failures in 1...40 {
            let ceiling = min(5_000, 100 * (1 << min(failures - 1, 30)))
            for _ in 0..<50 {
                let d = b.delay(failures: failures, retryAfter: nil, using: &rng)
                #expect(d >= .zero && d.milliseconds <= ceiling)
            }
        }
    }

    @Test func retryAfterIsAFloorButCapped() {
        let b = Backoff(base: .milliseconds(1), cap: .milliseconds(2), retryAfterCap: .seconds(30))
        var rng = SystemRandomNumberGenerator()
        #expect(b.delay(failures: 1, retryAfter: .seconds(7), using: &rng) == .seconds(7))
        #expect(b.delay(failures: 1, retryAfter: .seconds(3600), using: &rng) == .seconds(30))
    }

    @Test func parsesRetryAfter() {
        #expect(Backoff.parseRetryAfter("120") == .seconds(120))
        #expect(Backoff.parseRetryAfter("soon") == nil)
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(Backoff.parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now: now) == .seconds(30))
    }
}

/// Sync against an in-process kiosk-central over real mTLS on loopback.
@Suite(.serialized) struct MutualTLSTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Env {
        let dir: URL
        let pki: URL
        let central: CentralServer
        let port: Int
        func path(_ p: String) -> String { pki.appendingPathComponent(p).path }
    }

    static func makeEnv(faults: FaultConfiguration = .none) async throws -> Env {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiosk-sync-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let pki = dir.appendingPathComponent("pki")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [repoRoot.appendingPathComponent("Provisioning/dev-pki.sh").path, pki.path, "kiosk-sync-0001"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let server = try CentralServer(configuration: CentralConfiguration(
            certificatePath: pki.appendingPathComponent("server.pem").path,
            privateKeyPath: pki.appendingPathComponent("server.key").path,
            caPath: pki.appendingPathComponent("ca.pem").path,
            databasePath: dir.appendingPathComponent("central.sqlite").path, faults: faults))
        let port = try await server.start()
        return Env(dir: dir, pki: pki, central: server, port: port)
    }

    static func engine(_ env: Env, cert: String?, key: String?, ca: String? = nil, outbox: Outbox, batchSize: Int? = nil) -> SyncEngine {
        var c = SyncConfiguration(
            centralURL: "https://localhost:\(env.port)", deviceID: "kiosk-sync-0001",
            http: HTTPClientConfiguration(caFile: ca ?? env.path("ca.pem"), certFile: cert.map(env.path), keyFile: key.map(env.path)))
        c.backoff = Backoff(base: .milliseconds(1), cap: .milliseconds(5))
        if let batchSize { c.batchSize = batchSize }
        return SyncEngine(outbox: outbox, configuration: c)
    }

    /// Runs blocking libcurl work off the cooperative pool, as the agent does: the in-process
    /// central needs the pool's threads to answer.
    static let executor = BlockingExecutor(label: "test.sync")
    static func sync(_ engine: SyncEngine, ignoreBackoff: Bool = false) async -> SyncOutcome {
        await executor.run { engine.syncOnce(ignoreBackoff: ignoreBackoff) }
    }

    static func fill(_ outbox: Outbox, _ n: Int) throws -> [String] {
        try (0..<n).map { _ in
            let app = CreditApplication.sample(deviceID: "kiosk-sync-0001")
            _ = try outbox.enqueue(id: app.id, payload: try app.canonicalPayload())
            return app.id
        }
    }

    @Test func deviceCertificateSyncsAndReusesTheConnection() async throws {
        let env = try await Self.makeEnv()
        let outbox = try Outbox(path: env.dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        let ids = try Self.fill(outbox, 25)
        var c = SyncConfiguration(
            centralURL: "https://localhost:\(env.port)", deviceID: "kiosk-sync-0001",
            http: HTTPClientConfiguration(caFile: env.path("ca.pem"), certFile: env.path("devices/kiosk-sync-0001.pem"),
                                          keyFile: env.path("devices/kiosk-sync-0001.key")))
        c.batchSize = 10
        let engine = SyncEngine(outbox: outbox, configuration: c)
        #expect(await Self.sync(engine) == .delivered(10))
        #expect(await Self.sync(engine) == .delivered(10))
        #expect(await Self.sync(engine) == .delivered(5))
        #expect(await Self.sync(engine) == .idle)
        let stored = try await env.central.store.all().map(\.id)
        #expect(stored == ids)
        #expect(try outbox.stats().synced == 25)
        // The same rows sent again (as after a crash before markSynced) come back as duplicates.
        let rows = try outbox.list(states: [.synced], limit: 3)
        let body = try JSONEncoder().encode(BatchRequest(deviceID: "kiosk-sync-0001", sentAt: "2026-11-23T00:00:00Z", items: rows.map {
            BatchItem(id: $0.id, sequence: $0.sequence, payloadSHA256: $0.payloadSHA256, payload: String(decoding: $0.payload, as: UTF8.self))
        }))
        let http = c.http, url = c.centralURL
        let (r1, r2) = try await Self.executor.run { () -> Result<(HTTPResponse, HTTPResponse), Error> in
            Result {
                let client = try CurlHTTPClient(configuration: http)
                return (try client.perform(method: "POST", url: url + "/v1/applications/batch", headers: ["Content-Type: application/json"], body: body),
                        try client.perform(method: "GET", url: url + "/healthz"))
            }
        }.get()
        #expect(r1.status == 200 && r2.status == 200)
        #expect(r1.newConnections == 1 && r2.newConnections == 0, "the second request should reuse the connection")
        let decoded = try JSONDecoder().decode(BatchResponse.self, from: r1.body)
        #expect(decoded.results.map(\.status) == [.duplicate, .duplicate, .duplicate])
        await env.central.stop()
    }

    @Test func readAheadKeepsTheOrderThroughFailuresAndLeavesNothingInFlight() async throws {
        let faults = FaultConfiguration(rate: 0.4, kinds: [.serverError, .dropBefore, .dropAfter, .serverErrorAfter], seed: 7)
        let env = try await Self.makeEnv(faults: faults)
        let outbox = try Outbox(path: env.dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        let ids = try Self.fill(outbox, 95)
        let engine = Self.engine(env, cert: "devices/kiosk-sync-0001.pem", key: "devices/kiosk-sync-0001.key", outbox: outbox, batchSize: 10)
        var failures = 0
        for _ in 0..<200 {
            let outcome = await Self.sync(engine, ignoreBackoff: true)
            if case .failed = outcome { failures += 1 }
            if outcome == .idle { break }
        }
        #expect(failures > 0, "no fault reached the engine: the test tested nothing")
        // Central saw every application once, in the outbox's order, whatever failed in between.
        #expect(try await env.central.store.all().map(\.id) == ids)
        let stats = try outbox.stats()
        #expect(stats.synced == 95 && stats.inFlight == 0 && stats.pending == 0)
        await env.central.stop()
    }

    @Test func publicKeyPinning() async throws {
        let env = try await Self.makeEnv()
        let outbox = try Outbox(path: env.dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        _ = try Self.fill(outbox, 2)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "openssl x509 -in '\(env.path("server.pem"))' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let pin = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        p.waitUntilExit()
        #expect(pin.count == 44)
        for (value, shouldPass) in [("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", false), ("sha256//\(pin)", true)] {
            var c = SyncConfiguration(
                centralURL: "https://localhost:\(env.port)", deviceID: "kiosk-sync-0001",
                http: HTTPClientConfiguration(caFile: env.path("ca.pem"), certFile: env.path("devices/kiosk-sync-0001.pem"),
                                              keyFile: env.path("devices/kiosk-sync-0001.key"), pinnedPublicKey: value))
            c.backoff = Backoff(base: .milliseconds(1), cap: .milliseconds(5))
            let outcome = await Self.sync(SyncEngine(outbox: outbox, configuration: c), ignoreBackoff: true)
            if shouldPass {
                #expect(outcome == .delivered(2))
            } else {
                guard case .failed = outcome else { Issue.record("a wrong pin was accepted"); continue }
            }
        }
        await env.central.stop()
    }

    @Test func noCertificateOrAnotherCAIsRefused() async throws {
        let env = try await Self.makeEnv()
        let outbox = try Outbox(path: env.dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        _ = try Self.fill(outbox, 3)
        for (cert, key) in [(nil, nil), ("devices/rogue.pem", "devices/rogue.key")] as [(String?, String?)] {
            let engine = Self.engine(env, cert: cert, key: key, outbox: outbox)
            guard case .failed = await Self.sync(engine, ignoreBackoff: true) else {
                Issue.record("sync without a valid client certificate succeeded (cert: \(cert ?? "none"))")
                continue
            }
            #expect(engine.status.lastError?.contains("curl: (") == true)
        }
        // A server certificate not signed by the configured CA is refused by the agent.
        let engine = Self.engine(env, cert: "devices/kiosk-sync-0001.pem", key: "devices/kiosk-sync-0001.key",
                                 ca: env.path("other-ca.pem"), outbox: outbox)
        guard case .failed = await Self.sync(engine, ignoreBackoff: true) else {
            Issue.record("the agent accepted a server certificate from an unknown CA")
            return
        }
        #expect(try await env.central.store.count() == 0)
        #expect(try outbox.stats().pending == 3)
        await env.central.stop()
    }
}

@Suite struct DoorbellTests {
    @Test func ringWakesAWaiterAndNetworkBellIsReported() async {
        let bell = Doorbell()
        let start = ContinuousClock.now
        // A lost ring would wait the whole 300 s; a starved cooperative pool on a loaded 2-core
        // runner has been seen to delay a woken waiter by 26 s. The bound tells the two apart.
        async let woke = bell.wait(timeout: .seconds(300))
        try? await Task.sleep(for: .milliseconds(50))
        bell.ringNetworkReturned()
        #expect(await woke == true)
        #expect(ContinuousClock.now - start < .seconds(150), "the doorbell did not wake the waiter")
    }

    @Test func ringBeforeWaitIsNotLost() async {
        let bell = Doorbell()
        bell.ring()
        let start = ContinuousClock.now
        #expect(await bell.wait(timeout: .seconds(300)) == false)
        #expect(ContinuousClock.now - start < .seconds(150))
    }

    @Test func cancellationWakesTheWaiterWhetherItCameBeforeOrAfterTheWait() async {
        // Regression: a graceful shutdown that cancelled the sync loop just before it began to
        // wait left it waiting forever, and ServiceGroup's cancellation timeout crashed the agent.
        let bell = Doorbell()
        final class Counter: Sendable {
            let value = Mutex(0)
            func bump() { value.withLock { $0 += 1 } }
            var count: Int { value.withLock { $0 } }
        }
        let done = Counter()
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            _ = await bell.wait(timeout: .seconds(600))
            done.bump()
        }
        let late = Task {
            _ = await bell.wait(timeout: .seconds(600))
            done.bump()
        }
        try? await Task.sleep(for: .milliseconds(50))
        late.cancel()
        // Poll instead of awaiting the tasks: a stuck wait must fail the test, not hang it.
        for _ in 0..<200 where done.count < 2 { try? await Task.sleep(for: .milliseconds(50)) }
        #expect(done.count == 2, "a cancelled wait did not return")
        _ = early
    }

    @Test func timeoutReturnsWithoutARing() async {
        let bell = Doorbell()
        #expect(await bell.wait(timeout: .milliseconds(20)) == false)
    }
}
