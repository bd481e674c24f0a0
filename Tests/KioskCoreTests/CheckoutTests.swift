import Foundation
import Testing
@testable import KioskCore

@Suite struct CheckoutMachineTests {
    static let consent = ConsentText(id: "instalment-consent", version: "2026.11", language: "zh-CN", text: "分期付款条款 …")
    static let context = CheckoutContext(deviceID: "kiosk-1", merchantID: "m-1", rules: EligibilityRules(), consent: consent)
    static func ts(_ s: Int64) -> Timestamp { Timestamp(wallClockMillis: 1_763_900_000_000 + s * 1000, bootID: "b", monotonicNanos: UInt64(s) * 1_000_000_000) }
    static let payment = CreditApplication.sample().payment

    /// Drives a checkout to `consentShown` with request id 42.
    static func shown(context: CheckoutContext = context) throws -> Checkout {
        var c = CheckoutMachine.start(payment: payment, terminalSerial: "T-1", at: ts(0))
        let (c1, e1) = try CheckoutMachine.apply(.eligibilityChecked(lastOfferForToken: nil, now: Date(), at: ts(1)), to: c, context: context)
        #expect(e1 == [.showConsent(consent)])
        c = c1
        let (c2, e2) = try CheckoutMachine.apply(.consentShown(consent, requestID: 42, at: ts(2)), to: c, context: context)
        #expect(e2.isEmpty && c2.state == .consentShown)
        return c2
    }

    @Test func confirmedAndLiveCheckoutEnqueuesAnApplicationBuiltFromTheRecordedConsent() throws {
        var c = try Self.shown()
        var effects: [CheckoutEffect]
        (c, effects) = try CheckoutMachine.apply(.promptAnswered(requestID: 42, answer: .confirmed, method: .terminalButton, at: Self.ts(3)), to: c, context: Self.context)
        #expect(effects == [.runLiveness])
        let pass = LivenessResult(decision: .pass, score: 0.9, checks: [])
        (c, effects) = try CheckoutMachine.apply(.livenessCompleted(pass, at: Self.ts(5)), to: c, context: Self.context)
        guard case let .enqueue(app)? = effects.first else { Issue.record("no enqueue effect: \(effects)"); return }
        #expect(app.authorization.consentSHA256 == sha256Hex(Data(Self.consent.text.utf8)))
        #expect(app.authorization.shownAt == Self.ts(2) && app.authorization.confirmedAt == Self.ts(3))
        #expect(app.payment == Self.payment && app.liveness == pass)
        _ = try app.canonicalPayload()
        (c, effects) = try CheckoutMachine.apply(.applicationEnqueued(id: app.id, at: Self.ts(6)), to: c, context: Self.context)
        #expect(effects == [.showReference(app.id)])
        (c, effects) = try CheckoutMachine.apply(.referenceShown(at: Self.ts(7)), to: c, context: Self.context)
        #expect(c.state == .completed && effects.isEmpty)
        #expect(c.history.map(\.state) == [.paymentReceived, .consentShown, .confirmed, .enqueued, .completed])
    }

    @Test(arguments: [(PromptAnswer.declined, CheckoutState.declined), (.timedOut, .timedOut)])
    func declinedOrUnansweredCreatesNoApplication(_ answer: PromptAnswer, _ final: CheckoutState) throws {
        let (c, effects) = try CheckoutMachine.apply(.promptAnswered(requestID: 42, answer: answer, method: .terminalButton, at: Self.ts(3)),
                                                     to: try Self.shown(), context: Self.context)
        #expect(c.state == final)
        #expect(!effects.contains { if case .enqueue = $0 { return true } else { return false } })
    }

    @Test(arguments: [LivenessResult.Decision.fail, .inconclusive])
    func failedLivenessCreatesNoApplication(_ decision: LivenessResult.Decision) throws {
        var (c, _) = try CheckoutMachine.apply(.promptAnswered(requestID: 42, answer: .confirmed, method: .kioskScreen, at: Self.ts(3)), to: try Self.shown(), context: Self.context)
        let effects: [CheckoutEffect]
        (c, effects) = try CheckoutMachine.apply(.livenessCompleted(LivenessResult(decision: decision, score: 0.1, checks: []), at: Self.ts(4)), to: c, context: Self.context)
        #expect(c.state == .livenessFailed)
        #expect(effects == [.showMessage("liveness_\(decision.rawValue)")])
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.applicationEnqueued(id: "x", at: Self.ts(5)), to: c, context: Self.context) }
    }

    @Test func aLateAnswerForAnotherRequestNeverChangesTheCheckout() throws {
        let c = try Self.shown()
        #expect(throws: CheckoutError.staleAnswer(expected: 42, received: 41)) {
            try CheckoutMachine.apply(.promptAnswered(requestID: 41, answer: .confirmed, method: .terminalButton, at: Self.ts(3)), to: c, context: Self.context)
        }
    }

    @Test func noApplicationWithoutConsentEvenIfEventsArriveOutOfOrder() throws {
        let c = CheckoutMachine.start(payment: Self.payment, terminalSerial: "T-1", at: Self.ts(0))
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.applicationEnqueued(id: "x", at: Self.ts(1)), to: c, context: Self.context) }
        #expect(throws: CheckoutError.self) {
            try CheckoutMachine.apply(.livenessCompleted(LivenessResult(decision: .pass, score: 1, checks: []), at: Self.ts(1)), to: c, context: Self.context)
        }
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.promptAnswered(requestID: 42, answer: .confirmed, method: .terminalButton, at: Self.ts(1)), to: c, context: Self.context) }
    }

    @Test func eligibilityRules() throws {
        let rules = EligibilityRules(minAmountMinor: 10_000, maxAmountMinor: 100_000, currencies: ["CNY"], merchants: ["m-1"], cooldownSeconds: 3600)
        var p = Self.payment
        let now = Date()
        p.amountMinor = 50_000
        #expect(rules.refusal(for: p, merchantID: "m-1", lastOfferForToken: nil, now: now) == nil)
        #expect(rules.refusal(for: p, merchantID: "m-2", lastOfferForToken: nil, now: now)?.contains("merchant") == true)
        #expect(rules.refusal(for: p, merchantID: "m-1", lastOfferForToken: now.addingTimeInterval(-60), now: now)?.contains("cool-down") == true)
        p.amountMinor = 5
        #expect(rules.refusal(for: p, merchantID: "m-1", lastOfferForToken: nil, now: now)?.contains("below") == true)
        p.amountMinor = 50_000
        p.currency = "USD"
        #expect(rules.refusal(for: p, merchantID: "m-1", lastOfferForToken: nil, now: now)?.contains("currency") == true)
        var ctx = Self.context
        ctx.rules = rules
        let c = CheckoutMachine.start(payment: p, terminalSerial: "T-1", at: Self.ts(0))
        let (c1, effects) = try CheckoutMachine.apply(.eligibilityChecked(lastOfferForToken: nil, now: now, at: Self.ts(1)), to: c, context: ctx)
        #expect(c1.state == .ineligible && effects.isEmpty)
    }

    @Test func suspendedOffersMakeAnEligiblePaymentIneligibleWithTheReason() throws {
        let c = CheckoutMachine.start(payment: Self.payment, terminalSerial: "T-1", at: Self.ts(0))
        let (c1, effects) = try CheckoutMachine.apply(
            .eligibilityChecked(lastOfferForToken: nil, now: Date(), at: Self.ts(1), suspended: "camera unavailable: unplugged"),
            to: c, context: Self.context)
        #expect(c1.state == .ineligible && effects.isEmpty)
        #expect(c1.history.last?.reason == "offers suspended: camera unavailable: unplugged")
    }

    @Test func restartClosesUnfinishedCheckoutsAndCompletesQueuedOnes() throws {
        let shown = try Self.shown()
        let (a, _) = CheckoutMachine.recover(shown, at: Self.ts(9), context: Self.context)
        #expect(a.state == .abandoned && a.history.last?.reason == "restart before the shopper's consent")
        var (c, _) = try CheckoutMachine.apply(.promptAnswered(requestID: 42, answer: .confirmed, method: .terminalButton, at: Self.ts(3)), to: shown, context: Self.context)
        let (b, _) = CheckoutMachine.recover(c, at: Self.ts(9), context: Self.context)
        #expect(b.state == .abandoned && b.confirmedAt == Self.ts(3), "the confirmed consent stays on record")
        (c, _) = try CheckoutMachine.apply(.livenessCompleted(LivenessResult(decision: .pass, score: 1, checks: []), at: Self.ts(4)), to: c, context: Self.context)
        (c, _) = try CheckoutMachine.apply(.applicationEnqueued(id: "app-1", at: Self.ts(5)), to: c, context: Self.context)
        let (d, _) = CheckoutMachine.recover(c, at: Self.ts(9), context: Self.context)
        #expect(d.state == .completed && d.applicationID == "app-1")
        let (e, effects) = CheckoutMachine.recover(d, at: Self.ts(10), context: Self.context)
        #expect(e == d && effects.isEmpty)
    }

    @Test func checkoutRoundTripsThroughJSON() throws {
        let c = try Self.shown()
        #expect(try CanonicalJSON.decode(Checkout.self, from: CanonicalJSON.encode(c)) == c)
    }
}
