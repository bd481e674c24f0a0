import Foundation
import GRDB
import KioskCore
import Testing

@testable import Outbox

/// The checkout table beside the outbox: durable transitions, the enqueue that records both in
/// one transaction, recovery reads, the cool-down query, PCI refusal and damaged rows.
@Suite struct CheckoutStoreTests {
    static let consent = ConsentText(id: "instalment-consent", version: "2026.11", language: "zh-CN", text: "分期付款条款 …")
    static let context = CheckoutContext(deviceID: "kiosk-1", merchantID: "m-1", rules: EligibilityRules(), consent: consent, requireLiveness: false)

    static func ts(_ s: Int64) -> Timestamp {
        Timestamp(wallClockMillis: 1_763_900_000_000 + s * 1000, bootID: "b", monotonicNanos: UInt64(s) * 1_000_000_000)
    }

    static func payment(token: String = "tok-1", ref: String = "TX-1") -> Payment {
        Payment(transactionRef: ref, amountMinor: 129_900, currency: "CNY", maskedPAN: "411111******1111", terminalToken: token, approvalCode: "A1")
    }

    /// A checkout confirmed on the terminal (liveness not required by the context).
    static func confirmed(token: String = "tok-1", at start: Int64 = 0) throws -> (Checkout, CreditApplication) {
        var c = CheckoutMachine.start(payment: payment(token: token), terminalSerial: "T-1", at: ts(start))
        (c, _) = try CheckoutMachine.apply(.eligibilityChecked(lastOfferForToken: nil, now: Date(), at: ts(start + 1)), to: c, context: context)
        (c, _) = try CheckoutMachine.apply(.consentShown(consent, requestID: 7, at: ts(start + 2)), to: c, context: context)
        let effects: [CheckoutEffect]
        (c, effects) = try CheckoutMachine.apply(.promptAnswered(requestID: 7, answer: .confirmed, method: .terminalButton, at: ts(start + 3)), to: c, context: context)
        guard case let .enqueue(app)? = effects.first else { throw CheckoutTestFailure("no enqueue effect: \(effects)") }
        return (c, app)
    }

    @Test func aSavedCheckoutReadsBackIdenticallyAndOpenOnesAreListedForRecovery() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath)
            let (c, _) = try Self.confirmed()
            try outbox.saveCheckout(c)
            #expect(try outbox.checkout(id: c.id) == c)
            #expect(try outbox.checkout(id: "nope") == nil)
            let open = try outbox.openCheckouts()
            #expect(open.checkouts == [c] && open.corrupt.isEmpty)
            #expect(try outbox.checkoutCounts() == ["confirmed": 1])
        }
    }

    @Test func enqueueRecordsTheApplicationAndTheCheckoutInOneTransaction() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath)
            let (c, app) = try Self.confirmed()
            try outbox.saveCheckout(c)
            let (enqueued, _) = try CheckoutMachine.apply(.applicationEnqueued(id: app.id, at: Self.ts(5)), to: c, context: Self.context)
            let seq = try outbox.enqueue(id: app.id, payload: try app.canonicalPayload(), recording: enqueued)
            #expect(seq > 0)
            #expect(try outbox.checkout(id: c.id)?.state == .enqueued)
            #expect(try outbox.checkout(id: c.id)?.applicationID == app.id)
            #expect(try outbox.stats().pending == 1)

            // The same application id again is refused, and the checkout row is left as it was.
            var other = enqueued
            other.id = "another-checkout"
            #expect(throws: OutboxError.self) { try outbox.enqueue(id: app.id, payload: Data("{}".utf8), recording: other) }
            #expect(try outbox.checkout(id: "another-checkout") == nil)
        }
    }

    @Test func aFullOutboxRefusesTheApplicationAndDoesNotMoveTheCheckout() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath, limits: OutboxLimits(maxRows: 1, maxBytes: 1 << 20, minFreeDiskBytes: 0))
            _ = try outbox.enqueue(id: "filler", payload: Data("{}".utf8))
            let (c, app) = try Self.confirmed()
            try outbox.saveCheckout(c)
            let (enqueued, _) = try CheckoutMachine.apply(.applicationEnqueued(id: app.id, at: Self.ts(5)), to: c, context: Self.context)
            #expect { try outbox.enqueue(id: app.id, payload: try app.canonicalPayload(), recording: enqueued) } throws: { error in
                guard case .full? = error as? OutboxError else { return false }
                return true
            }
            #expect(try outbox.checkout(id: c.id)?.state == .confirmed)
            #expect(try outbox.stats().pending == 1)
        }
    }

    @Test func aCheckoutHoldingAFullPANIsRefusedAndNothingIsStored() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath)
            var p = Self.payment()
            p.maskedPAN = "4111111111111111"
            let c = CheckoutMachine.start(payment: p, terminalSerial: "T-1", at: Self.ts(0))
            #expect(throws: PCIViolation.self) { try outbox.saveCheckout(c) }
            #expect(try outbox.checkout(id: c.id) == nil)
            #expect(try outbox.checkoutCounts().isEmpty)
            // Nothing of the number is in the database file either.
            try outbox.close()
            let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.dbPath))
            #expect(bytes.range(of: Data("4111111111111111".utf8)) == nil)
        }
    }

    @Test func theCoolDownQuerySeesTheLatestStartForATokenButNotTheCurrentCheckout() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath)
            let (a, _) = try Self.confirmed(token: "tok-A", at: 0)
            let (b, _) = try Self.confirmed(token: "tok-A", at: 100)
            let (x, _) = try Self.confirmed(token: "tok-X", at: 50)
            for c in [a, b, x] { try outbox.saveCheckout(c) }
            let latest = try outbox.lastCheckoutStart(token: "tok-A")
            #expect(latest == Date(timeIntervalSince1970: Double(Self.ts(100).wallClockMillis) / 1000))
            let excludingB = try outbox.lastCheckoutStart(token: "tok-A", excluding: b.id)
            #expect(excludingB == Date(timeIntervalSince1970: Double(Self.ts(0).wallClockMillis) / 1000))
            #expect(try outbox.lastCheckoutStart(token: "tok-none") == nil)
        }
    }

    @Test func aDamagedRowIsReportedNotDroppedAndTheOthersStillLoad() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath)
            let (good, _) = try Self.confirmed(token: "tok-1", at: 0)
            let (bad, _) = try Self.confirmed(token: "tok-2", at: 10)
            try outbox.saveCheckout(good)
            try outbox.saveCheckout(bad)
            try outbox.write { db in
                try db.execute(sql: "UPDATE checkout SET document = ? WHERE id = ?", arguments: [Data("{\"id\": 3".utf8), bad.id])
            }
            let open = try outbox.openCheckouts()
            #expect(open.checkouts.map(\.id) == [good.id])
            #expect(open.corrupt.map(\.id) == [bad.id])
            #expect(open.corrupt.first?.state == "confirmed")
            #expect(throws: OutboxError.self) { try outbox.checkout(id: bad.id) }
        }
    }

    @Test func purgeRemovesOnlyOldFinalCheckouts() throws {
        try withTempDir { dir in
            let outbox = try Outbox(path: dir.dbPath)
            let (open, _) = try Self.confirmed(token: "tok-1", at: 0)
            var (closed, _) = try Self.confirmed(token: "tok-2", at: 10)
            (closed, _) = CheckoutMachine.recover(closed, at: Self.ts(20), context: Self.context)
            #expect(closed.state.isFinal)
            let old = Date(timeIntervalSince1970: 1_000_000)
            try outbox.saveCheckout(open, now: old)
            try outbox.saveCheckout(closed, now: old)
            #expect(try outbox.purgeCheckouts(olderThan: Date()) == 1)
            #expect(try outbox.checkout(id: closed.id) == nil)
            #expect(try outbox.checkout(id: open.id) != nil)
        }
    }
}

struct CheckoutTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension CheckoutStoreTests {
    @Test func withARedactorNothingIdentifyingTheShopperIsStoredAndTheCoolDownStillWorks() throws {
        try withTempDir { dir in
            let saltPath = dir.url.appendingPathComponent("redaction.salt").path
            let redactor = try CheckoutRedactor.loadOrCreate(path: saltPath)
            #expect(try permissions(saltPath) == 0o600)
            #expect(try CheckoutRedactor.loadOrCreate(path: saltPath) == redactor, "the salt is kept")
            let outbox = try Outbox(path: dir.dbPath, redactor: redactor)
            var (c, app) = try Self.confirmed(token: "tok-secret-77")
            _ = app
            c.liveness = LivenessResult(decision: .pass, score: 0.9, checks: [.init(name: "blink", value: 0.8, threshold: 0.5, passed: true)])
            try outbox.saveCheckout(c)
            let enqueued = try CheckoutMachine.apply(.applicationEnqueued(id: app.id, at: Self.ts(5)), to: c, context: Self.context).0
            _ = try outbox.enqueue(id: app.id, payload: Data("{\"sealed\":1}".utf8), recording: enqueued)

            let stored = try #require(try outbox.checkout(id: c.id))
            #expect(stored.state == enqueued.state)
            #expect(stored.payment.amountMinor == 129_900)
            #expect(stored.liveness?.decision == .pass && stored.liveness?.checks == [])
            #expect(try outbox.checkout(id: c.id).map(redactor.redact) == stored, "redaction is idempotent")
            let raw = try rawConnection(dir.dbPath, readonly: true).read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM checkout").map { "\($0)" }.joined()
            }
            for secret in ["tok-secret-77", "411111******1111", "TX-1", "\"A1\"", "blink"] {
                #expect(!raw.contains(secret), "\(secret) stored in clear")
            }
            // The cool-down looks the token up by its hash.
            #expect(try outbox.lastCheckoutStart(token: "tok-secret-77") != nil)
            #expect(try outbox.lastCheckoutStart(token: "tok-other") == nil)
            // The hash never holds a digit run the PAN guard could mistake for a card number.
            for i in 0..<2000 {
                let key = CheckoutRedactor(salt: Data("salt-\(i)".utf8) + Data(count: 16)).tokenKey("tok-\(i)")
                #expect(key.hasPrefix("sha256:") && key.dropFirst(7).allSatisfy { $0.isLetter }, "\(key)")
            }
            // Another kiosk (another salt) hashes the same token differently.
            #expect(CheckoutRedactor(salt: Data(repeating: 7, count: 32)).tokenKey("tok-secret-77") != redactor.tokenKey("tok-secret-77"))
        }
    }
}
