import Foundation
import KioskCore
import Synchronization
import Testing
@testable import KioskAgent
@testable import ShopperScreen

/// Hub transitions, consent hashing, access checks, and the server over a real socket (bounded).
@Suite struct ShopperScreenTests {
    static func event(_ kind: String, _ fields: [String: Any]) -> Data {
        var o = fields
        o["event"] = kind
        return try! JSONSerialization.data(withJSONObject: o)
    }

    static func checkout(_ id: String, _ state: String, final: Bool = false, extra: [String: Any] = [:]) -> Data {
        var f: [String: Any] = ["checkout_id": id, "state": state, "final": final, "amount_minor": 129_900, "currency": "CNY",
                                "masked_pan": "411111******1111"]
        f.merge(extra) { $1 }
        return event("checkout", f)
    }

    static func state(_ hub: ScreenHub) -> [String: Any] {
        try! JSONSerialization.jsonObject(with: hub.current.json) as! [String: Any]
    }

    @Test func hubWalksAConfirmedCheckout() {
        let hub = ScreenHub(calculator: InstalmentCalculator(months: [3, 6, 12], monthlyFeeBasisPoints: 60), resultSeconds: 30)
        #expect(hub.current.phase == .idle)
        hub.ingest(Self.checkout("c1", "payment_received"))
        #expect(hub.current.phase == .checking)
        hub.ingest(Self.checkout("c1", "consent_shown", extra: ["request_id": 7, "consent": ["id": "instalment-consent", "version": "v1"]]))
        let offer = hub.current
        #expect(offer.phase == .offer)
        #expect(offer.requestID == 7)
        #expect(offer.plans.map(\.months) == [3, 6, 12])
        #expect(offer.consentVersion == "v1")
        hub.ingest(Self.checkout("c1", "confirmed", extra: ["method": "kiosk_screen"]))
        #expect(hub.current.phase == .liveness)
        hub.ingest(Self.event("liveness_guidance", ["checkout_id": "c1", "text": "Blink"]))
        #expect(hub.current.challenge == "blink")
        hub.ingest(Self.event("liveness_guidance", ["checkout_id": "other", "text": "Look at the camera"]))
        #expect(hub.current.challenge == "blink")
        hub.ingest(Self.checkout("c1", "enqueued", extra: ["application_id": "kiosk-1-01JABCDEF0123456789XYZWVUT"]))
        let done = hub.current
        #expect(done.phase == .result)
        #expect(done.outcome == "completed")
        #expect(done.reference == ScreenHub.shortReference("kiosk-1-01JABCDEF0123456789XYZWVUT"))
        hub.ingest(Self.checkout("c1", "completed", final: true, extra: ["application_id": "kiosk-1-01JABCDEF0123456789XYZWVUT"]))
        #expect(hub.current.reference == done.reference)
        // The page never receives the masked PAN.
        #expect(Self.state(hub)["masked_pan"] == nil)
        #expect(!String(decoding: hub.current.json, as: UTF8.self).contains("1111"))
    }

    @Test func hubShowsReasonsAndIgnoresNoise() {
        let hub = ScreenHub(resultSeconds: 30)
        hub.ingest(Data("not json".utf8))
        hub.ingest(Self.event("terminal", ["state": "connected"]))
        #expect(hub.current.phase == .idle)
        #expect(hub.current.revision == 0)
        // Ineligible with nothing shown: stays idle.
        hub.ingest(Self.checkout("c0", "ineligible", final: true))
        #expect(hub.current.phase == .idle)
        hub.ingest(Self.checkout("c2", "consent_shown", extra: ["request_id": 1]))
        hub.ingest(Self.checkout("c2", "declined", final: true))
        #expect(hub.current.phase == .result)
        #expect(hub.current.outcome == "declined")
        #expect(hub.current.reference == nil)
        // A new checkout replaces the old result entirely.
        hub.ingest(Self.checkout("c3", "consent_shown", extra: ["request_id": 2]))
        #expect(hub.current.checkoutID == "c3")
        #expect(hub.current.outcome == nil)
        hub.ingest(Self.checkout("c3", "timed_out", final: true))
        #expect(hub.current.outcome == "timed_out")
    }

    @Test func listenersGetTheCurrentStateThenChanges() {
        let hub = ScreenHub()
        let got = Mutex<[String]>([])
        let id = hub.addListener { data in
            let o = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
            got.withLock { $0.append(o["phase"] as! String) }
        }
        #expect(hub.isAttached())
        hub.ingest(Self.checkout("c1", "consent_shown", extra: ["request_id": 1]))
        hub.removeListener(id)
        hub.ingest(Self.checkout("c1", "declined", final: true))
        #expect(got.withLock { $0 } == ["idle", "offer"])
        #expect(hub.listenerCount == 0)
        #expect(hub.isAttached(within: .seconds(60)))
        #expect(!hub.isAttached(within: .zero))
    }

    @Test func instalmentPlans() {
        let plans = InstalmentCalculator(months: [3, 12], monthlyFeeBasisPoints: 60).plans(amountMinor: 129_900)
        #expect(plans.count == 2)
        // 12 × 0.60 % of 1299.00 = 93.53 (rounded half up); total 1392.53.
        #expect(plans[1].feeMinor == 9_353)
        #expect(plans[1].totalMinor == 139_253)
        for p in plans { #expect(p.monthlyMinor * Int64(p.months - 1) + p.lastMonthMinor == p.totalMinor) }
        #expect(InstalmentCalculator().plans(amountMinor: 0).isEmpty)
        #expect(InstalmentCalculator(monthlyFeeBasisPoints: 0).plans(amountMinor: 300).allSatisfy { $0.feeMinor == 0 })
    }

    static func consentDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("screen-consent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "Terms — English.\n".write(toFile: dir + "/terms.en.txt", atomically: true, encoding: .utf8)
        try "条款 — 中文。\n".write(toFile: dir + "/terms.zh-Hans.txt", atomically: true, encoding: .utf8)
        try "ignored".write(toFile: dir + "/other.en.txt", atomically: true, encoding: .utf8)
        return dir
    }

    @Test func consentLibraryHashesTheExactText() throws {
        let dir = try Self.consentDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = try ConsentLibrary.load(directory: dir, id: "terms", version: "2026.12", defaultLanguage: "zh-Hans")
        #expect(lib.languages == ["en", "zh-Hans"])
        let zh = try #require(lib.text(language: "zh-Hans"))
        #expect(zh.text == "条款 — 中文。\n")
        #expect(zh.sha256 == sha256Hex(Data("条款 — 中文。\n".utf8)))
        #expect(zh.version == "2026.12")
        #expect(lib.text(language: "fr")?.language == "zh-Hans")
        #expect(lib.verified(language: "en", sha256: lib.text(language: "en")!.sha256)?.language == "en")
        #expect(lib.verified(language: "en", sha256: zh.sha256) == nil)
        #expect(throws: ConsentLibraryError.self) {
            try ConsentLibrary.load(directory: dir, id: "terms", version: "1", defaultLanguage: "de")
        }
    }

    @Test func shippedConsentTextsLoad() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Provisioning/consent").standardized.path
        let lib = try ConsentLibrary.load(directory: dir, id: "instalment-consent", version: "2026.11-sample", defaultLanguage: "zh-Hans")
        #expect(Set(lib.languages).isSuperset(of: ["en", "zh-Hans"]))
        #expect(lib.text(language: "zh-Hans")!.text.contains("样本"))
    }

    @Test func accessPolicy() {
        let a = ScreenAccess(port: 8780)
        #expect(a.refusal(remoteIP: "127.0.0.1", host: "127.0.0.1:8780", origin: nil, isStateChanging: false) == nil)
        #expect(a.refusal(remoteIP: "::1", host: "localhost:8780", origin: "http://localhost:8780", isStateChanging: true) == nil)
        #expect(a.refusal(remoteIP: "192.168.1.20", host: "127.0.0.1:8780", origin: nil, isStateChanging: false) != nil)
        #expect(a.refusal(remoteIP: "127.0.0.1", host: "evil.example:8780", origin: nil, isStateChanging: false) != nil)
        #expect(a.refusal(remoteIP: "127.0.0.1", host: nil, origin: nil, isStateChanging: false) != nil)
        #expect(a.refusal(remoteIP: "127.0.0.1", host: "127.0.0.1:8780", origin: "http://evil.example", isStateChanging: false) != nil)
        #expect(a.refusal(remoteIP: "127.0.0.1", host: "127.0.0.1:8780", origin: "null", isStateChanging: true) != nil)
        #expect(a.refusal(remoteIP: "127.0.0.1", host: "127.0.0.1:8780", origin: nil, isStateChanging: true) == "missing Origin")
        #expect(a.refusal(remoteIP: nil, host: "127.0.0.1:8780", origin: nil, isStateChanging: false) != nil)
        let open = ScreenAccess(port: 8780, allowNonLoopback: true, extraHosts: ["kiosk.lan"])
        #expect(open.refusal(remoteIP: "192.168.1.20", host: "kiosk.lan:8780", origin: "http://kiosk.lan:8780", isStateChanging: true) == nil)
        #expect(ScreenAccess.isLoopback("127.3.4.5"))
        #expect(ScreenAccess.isLoopback("::ffff:127.0.0.1"))
        #expect(!ScreenAccess.isLoopback("10.0.0.1"))
    }

    @Test func answersFirstWins() {
        let answers = ScreenAnswers(attached: { true })
        let text = ConsentText(id: "t", version: "1", language: "en", text: "x")
        #expect(answers.consentAnswered(.init(checkoutID: "c", requestID: 1, answer: .confirmed, consent: text)) == .stale)
        answers.open(checkoutID: "c", requestID: 1)
        #expect(answers.consentAnswered(.init(checkoutID: "c", requestID: 2, answer: .confirmed, consent: text)) == .stale)
        #expect(answers.consentAnswered(.init(checkoutID: "d", requestID: 1, answer: .confirmed, consent: text)) == .stale)
        #expect(answers.consentAnswered(.init(checkoutID: "c", requestID: 1, answer: .confirmed, consent: text)) == .accepted)
        #expect(!answers.offerTerminal(.answered(.declined), requestID: 1))
        #expect(answers.consentAnswered(.init(checkoutID: "c", requestID: 1, answer: .declined, consent: text)) == .stale)
        #expect(answers.wait(until: .now) == .screen(.confirmed, text))
        answers.close()
        answers.open(checkoutID: "e", requestID: 5)
        #expect(answers.offerTerminal(.answered(.declined), requestID: 5))
        #expect(answers.consentAnswered(.init(checkoutID: "e", requestID: 5, answer: .confirmed, consent: text)) == .stale)
        #expect(answers.wait(until: .now) == .terminal(.answered(.declined)))
        answers.close()
        #expect(answers.wait(until: .now) == nil)
    }

    @Test func consentLanguageChangeIsRecorded() throws {
        let en = ConsentText(id: "t", version: "1", language: "en", text: "English")
        let zh = ConsentText(id: "t", version: "1", language: "zh-Hans", text: "中文")
        let ctx = CheckoutContext(deviceID: "d", merchantID: "m", rules: EligibilityRules(merchants: ["m"], cooldownSeconds: 0), consent: zh,
                                  requireLiveness: false)
        let ts = Timestamp(wallClockMillis: 1_700_000_000_000, bootID: "b", monotonicNanos: 1)
        var c = CheckoutMachine.start(payment: Payment(transactionRef: "t1", amountMinor: 129_900, currency: "CNY", maskedPAN: "411111******1111",
                                                       terminalToken: "tok", approvalCode: "A1"), terminalSerial: "s", at: ts)
        (c, _) = try CheckoutMachine.apply(.consentShown(zh, requestID: 3, at: ts), to: c, context: ctx)
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.consentLanguageChanged(en, requestID: 4, at: ts), to: c, context: ctx) }
        let other = ConsentText(id: "t", version: "2", language: "en", text: "English v2")
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.consentLanguageChanged(other, requestID: 3, at: ts), to: c, context: ctx) }
        (c, _) = try CheckoutMachine.apply(.consentLanguageChanged(en, requestID: 3, at: ts), to: c, context: ctx)
        let (confirmed, effects) = try CheckoutMachine.apply(.promptAnswered(requestID: 3, answer: .confirmed, method: .kioskScreen, at: ts),
                                                             to: c, context: ctx)
        guard case .enqueue(let app)? = effects.first else { Issue.record("no application"); return }
        #expect(confirmed.method == .kioskScreen)
        #expect(app.authorization.language == "en")
        #expect(app.authorization.consentSHA256 == en.sha256)
        #expect(app.authorization.method == .kioskScreen)
    }
}
