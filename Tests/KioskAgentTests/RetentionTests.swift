import Foundation
import KioskCore
import Outbox
import Testing

@testable import KioskAgent

/// The hourly retention purge: old synced applications and old final checkouts go; nothing
/// unsynced and no open checkout ever does.
@Suite struct RetentionTests {
    @Test func purgeRemovesOldSyncedApplicationsAndFinalCheckoutsOnly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("retention-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outbox = try Outbox(path: dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        let old = Date().addingTimeInterval(-100 * 3600)
        let at = Timestamp(wallClockMillis: Int64(old.timeIntervalSince1970 * 1000), bootID: "b", monotonicNanos: 1)
        let context = CheckoutContext(deviceID: "k", merchantID: "m", rules: EligibilityRules(),
                                      consent: ConsentText(id: "c", version: "1", language: "en", text: "t"), requireLiveness: false)
        func payment(_ token: String) -> Payment {
            Payment(transactionRef: "TX-\(token)", amountMinor: 129_900, currency: "CNY", maskedPAN: "411111******1111",
                    terminalToken: token, approvalCode: "A1")
        }
        let open = CheckoutMachine.start(payment: payment("tok-open"), terminalSerial: "T", at: at)
        let closed = try CheckoutMachine.apply(.abandoned(reason: "unplugged", at: at),
                                               to: CheckoutMachine.start(payment: payment("tok-closed"), terminalSerial: "T", at: at),
                                               context: context).0
        #expect(closed.state.isFinal && !open.state.isFinal)
        try outbox.saveCheckout(open, now: old)
        try outbox.saveCheckout(closed, now: old)
        _ = try outbox.enqueue(id: "synced-1", payload: Data(#"{"id":"synced-1"}"#.utf8), now: old)
        _ = try outbox.enqueue(id: "pending-1", payload: Data(#"{"id":"pending-1"}"#.utf8), now: old)
        try outbox.markSynced(ids: ["synced-1"], now: old)

        let purged = try RetentionService.purge(outbox, olderThan: Date().addingTimeInterval(-72 * 3600)).get()
        #expect(purged.applications == 1 && purged.checkouts == 1)
        #expect(try outbox.record(id: "synced-1") == nil)
        #expect(try outbox.record(id: "pending-1") != nil)
        #expect(try outbox.checkout(id: closed.id) == nil)
        #expect(try outbox.checkout(id: open.id) != nil)
    }
}
