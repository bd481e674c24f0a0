import Foundation
import KioskCentral
import KioskCore
import Outbox
import Testing
@testable import Sync

/// Sealed applications: nothing personal on the kiosk's disk; central opens and stores them.
@Suite(.serialized) struct SealedSyncTests {
    /// The bytes of the outbox database and its WAL/SHM side files.
    static func outboxBytes(_ dir: URL) throws -> Data {
        var all = Data()
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasPrefix("outbox.sqlite") {
            all.append(try Data(contentsOf: dir.appendingPathComponent(name)))
        }
        return all
    }

    @Test func sealedApplicationsLeaveNoPlaintextOnDiskAndAreStoredOpened() async throws {
        let env = try await MutualTLSTests.makeEnv()
        let key = try await env.central.store.sealingPublicKey()
        let sealer = try ApplicationSealer(recipientKey: key, signer: .generate())
        let outbox = try Outbox(path: env.dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        var apps: [CreditApplication] = []
        for _ in 0..<3 {
            let app = CreditApplication.sample(deviceID: "kiosk-sync-0001")
            _ = try outbox.enqueue(id: app.id, payload: try sealer.seal(try app.canonicalPayload(), id: app.id))
            apps.append(app)
        }
        try outbox.checkpoint()
        let disk = try Self.outboxBytes(env.dir)
        #expect(disk.count > 0)
        let secrets = ["622202******1234", "A1B2C3", "instalment-consent", "2026.11"] + apps.map(\.payment.transactionRef)
        for secret in secrets {
            #expect(disk.range(of: Data(secret.utf8)) == nil, "\(secret) found in the outbox files")
        }
        // A plain row, for contrast: the scan does find what it looks for.
        let plain = CreditApplication.sample(deviceID: "kiosk-sync-0001")
        _ = try outbox.enqueue(id: plain.id, payload: try plain.canonicalPayload())
        try outbox.checkpoint()
        #expect(try Self.outboxBytes(env.dir).range(of: Data("622202******1234".utf8)) != nil)

        let engine = MutualTLSTests.engine(env, cert: "devices/kiosk-sync-0001.pem", key: "devices/kiosk-sync-0001.key", outbox: outbox)
        #expect(await MutualTLSTests.sync(engine) == .delivered(4))
        for app in apps {
            let stored = try #require(try await env.central.store.application(id: app.id))
            #expect(stored.payload == String(decoding: try app.canonicalPayload(), as: UTF8.self))
            let opened = try CanonicalJSON.decode(CreditApplication.self, from: Data(stored.payload.utf8))
            #expect(opened.payment.maskedPAN == "622202******1234")
            #expect(opened.payment.approvalCode == "A1B2C3")
        }
        await env.central.stop()
    }
}
