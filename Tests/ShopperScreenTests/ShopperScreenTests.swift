import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KioskCore
import Logging
import Outbox
import PaymentTerminal
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
        hub.ingest(Self.event("liveness", ["checkout_id": "c1", "state": "started", "challenge": "turn_left"]))
        #expect(hub.current.challenge == "turn_left")
        hub.ingest(Self.event("liveness", ["checkout_id": "c1", "state": "guidance", "guidance": "more_light", "message": "More light"]))
        #expect(hub.current.hints == ["more_light"])
        #expect(hub.current.challenge == "turn_left")
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

    @Test func screenConfigTable() throws {
        var c = AgentConfig()
        try c.apply(toml: """
            [screen]
            enabled = true
            listen = "127.0.0.1:9000"
            language = "en"
            result_s = 5
            instalment_months = "6, 12"
            fee_bp_per_month = 0
            """, source: "t")
        try c.validate(source: "t")
        #expect(c.screenEnabled && c.screenListen == "127.0.0.1:9000" && c.screenLanguage == "en" && c.screenResultSeconds == 5)
        #expect(c.screenInstalmentMonthsList == [6, 12])
        var open = c
        open.screenListen = "0.0.0.0:8780"
        #expect(throws: ConfigError.self) { try open.validate(source: "t") }
        open.screenAllowNonLoopback = true
        try open.validate(source: "t")
        var bad = c
        #expect(throws: ConfigError.self) { try bad.apply(toml: "[screen]\nlisten_port = 1\n", source: "t") }
        bad.screenListen = "nonsense"
        #expect(throws: ConfigError.self) { try bad.validate(source: "t") }
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Provisioning/agent.toml").standardized.path
        #expect(try !AgentConfig.load(path: shipped, environment: [:]).screenEnabled)
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

/// A minimal HTTP client over a blocking socket with a receive timeout: every read is bounded.
enum TinyHTTP {
    struct Response { var status: Int; var text: String }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        return fd
    }

    /// Reads until `until` appears, the peer closes, or a 5 s receive timeout (never longer than `limit` reads).
    static func read(_ fd: Int32, until: String? = nil, limit: Int = 200) -> (text: String, closed: Bool) {
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<limit {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return (String(decoding: data, as: UTF8.self), true) }
            if n < 0 { break }
            data += buf[0..<n]
            if let until, String(decoding: data, as: UTF8.self).contains(until) { break }
        }
        return (String(decoding: data, as: UTF8.self), false)
    }

    static func request(port: Int, _ method: String, _ path: String, host: String? = nil, origin: String? = nil, body: String = "") throws -> Response {
        let fd = try connect(port: port)
        defer { close(fd) }
        var req = "\(method) \(path) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\nConnection: close\r\n"
        if let origin { req += "Origin: \(origin)\r\n" }
        if !body.isEmpty { req += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        req += "\r\n" + body
        _ = req.withCString { send(fd, $0, strlen($0), 0) }
        let (text, _) = read(fd)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return Response(status: status, text: text)
    }
}

final class RecordingDelegate: ShopperScreenDelegate {
    let answers = Mutex<[ScreenConsentAnswer]>([])
    func consentAnswered(_ answer: ScreenConsentAnswer) -> ScreenAnswerOutcome {
        answers.withLock { $0.append(answer) }
        return .accepted
    }
}

/// The server over real loopback sockets; each test stops it, and every client read is bounded.
@Suite(.serialized) struct ShopperScreenServerTests {
    func withServer(_ body: (ShopperScreenServer, Int, RecordingDelegate) async throws -> Void) async throws {
        let dir = try ShopperScreenTests.consentDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = try ConsentLibrary.load(directory: dir, id: "terms", version: "1", defaultLanguage: "zh-Hans")
        let delegate = RecordingDelegate()
        let server = ShopperScreenServer(configuration: .init(port: 0), hub: ScreenHub(), consents: lib, delegate: delegate)
        let port = try await server.start()
        do {
            try await body(server, port, delegate)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func refusesNonLoopbackBind() async throws {
        let lib = ConsentLibrary(texts: [ConsentText(id: "t", version: "1", language: "en", text: "x")], defaultLanguage: "en")
        let server = ShopperScreenServer(configuration: .init(host: "0.0.0.0", port: 0), hub: ScreenHub(), consents: lib, delegate: RecordingDelegate())
        await #expect(throws: ShopperScreenError.self) { try await server.start() }
        await server.stop()
    }

    @Test func servesPageConsentAndChecksAccess() async throws {
        try await withServer { server, port, delegate in
            let page = try TinyHTTP.request(port: port, "GET", "/")
            #expect(page.status == 200)
            #expect(page.text.contains("Content-Security-Policy"))
            #expect(!page.text.contains("http://") || !page.text.contains("https://"))
            let consent = try TinyHTTP.request(port: port, "GET", "/consent?lang=en")
            #expect(consent.status == 200)
            let sha = sha256Hex(Data("Terms — English.\n".utf8))
            #expect(consent.text.contains(sha))
            #expect(try TinyHTTP.request(port: port, "GET", "/", host: "evil.example").status == 403)
            #expect(try TinyHTTP.request(port: port, "GET", "/state", origin: "http://evil.example").status == 403)
            let body = #"{"checkout_id":"c1","request_id":4,"answer":"accept","language":"en","text_sha256":"\#(sha)"}"#
            #expect(try TinyHTTP.request(port: port, "POST", "/consent-answer", body: body).status == 403)  // no Origin
            #expect(try TinyHTTP.request(port: port, "POST", "/consent-answer", origin: "http://evil.example", body: body).status == 403)
            let bad = body.replacingOccurrences(of: sha, with: String(repeating: "0", count: 64))
            #expect(try TinyHTTP.request(port: port, "POST", "/consent-answer", origin: "http://127.0.0.1:\(port)", body: bad).status == 400)
            let ok = try TinyHTTP.request(port: port, "POST", "/consent-answer", origin: "http://127.0.0.1:\(port)", body: body)
            #expect(ok.status == 200)
            #expect(ok.text.contains("accepted"))
            let got = delegate.answers.withLock { $0 }
            #expect(got.count == 1)
            #expect(got.first?.requestID == 4)
            #expect(got.first?.answer == .confirmed)
            #expect(got.first?.consent.language == "en")
            #expect(try TinyHTTP.request(port: port, "GET", "/nope").status == 404)
        }
    }

    @Test func eventStreamDeliversAndStopEndsIt() async throws {
        let dir = try ShopperScreenTests.consentDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = try ConsentLibrary.load(directory: dir, id: "terms", version: "1", defaultLanguage: "en")
        let hub = ScreenHub()
        let server = ShopperScreenServer(configuration: .init(port: 0), hub: hub, consents: lib, delegate: RecordingDelegate())
        let port = try await server.start()
        let fd = try TinyHTTP.connect(port: port)
        defer { close(fd) }
        let req = "GET /events HTTP/1.1\r\nHost: localhost:\(port)\r\nAccept: text/event-stream\r\n\r\n"
        _ = req.withCString { send(fd, $0, strlen($0), 0) }
        let first = TinyHTTP.read(fd, until: "\"phase\":\"idle\"")
        #expect(first.text.contains("text/event-stream"))
        #expect(first.text.contains("\"phase\":\"idle\""))
        #expect(hub.listenerCount == 1)
        hub.ingest(ShopperScreenTests.checkout("c9", "consent_shown", extra: ["request_id": 9]))
        let second = TinyHTTP.read(fd, until: "\"phase\":\"offer\"")
        #expect(second.text.contains("\"request_id\":9"))
        // Stopping closes the open stream: the client sees the end, and stop() does not wait for it.
        await server.stop()
        let end = TinyHTTP.read(fd, limit: 50)
        #expect(end.closed)
        #expect(hub.listenerCount == 0)
        #expect(throws: (any Error).self) { try TinyHTTP.connect(port: port) }
    }
}

/// The checkout runner with a screen attached, on the simulated terminal that leaves prompts to
/// the screen: the screen's answer wins (and its language is the one recorded); unanswered, the
/// prompt times out. Bounded: at most 30 s of polling, then the runner is stopped regardless.
@Suite(.serialized) struct ScreenAnswerRunnerTests {
    @Test func screenAnswersWinAndSilenceTimesOut() async throws {
        let zh = ConsentText(id: "instalment-consent", version: "v1", language: "zh-Hans", text: "条款")
        let en = ConsentText(id: "instalment-consent", version: "v1", language: "en", text: "Terms")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("screen-runner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outbox = try Outbox(path: dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        let logger = Logger(label: "test.screen-runner")
        let port = try SimulatedTerminalPort(scenario: .screen, options: TerminalScenarioOptions(payments: 3, paymentInterval: .milliseconds(20)),
                                             logger: logger)
        let context = CheckoutContext(deviceID: "kiosk-test", merchantID: "m-1", rules: EligibilityRules(cooldownSeconds: 0), consent: zh,
                                      requireLiveness: false)
        // 5 s for the shopper: the answering task runs on the shared cooperative pool, which other
        // suites' blocking tests may hold for a while (a bound, not a timing assertion).
        var settings = CheckoutRunner.Settings(context: context, promptTimeout: .seconds(5))
        settings.answerGrace = .milliseconds(300)
        settings.displaySeconds = 1
        let bus = EventBus(replay: 0)
        let answers = ScreenAnswers(attached: { true })
        let runner = CheckoutRunner(port: port, outbox: outbox, settings: settings, signer: .generate(), liveness: SimulatedLiveness(),
                                    bus: bus, logger: logger, screen: answers, onEnqueued: {})
        let results = Mutex<[ScreenAnswerOutcome]>([])
        // The shopper runs on its own thread, not the cooperative pool (which other suites'
        // blocking tests may hold on a 2-core runner): it answers each prompt as soon as it opens.
        let shopperDone = Atomic<Bool>(false)
        let shopper = Thread {
            var seen = Set<UInt32>()
            while !shopperDone.load(ordering: .relaxed) {
                guard let open = answers.openPrompt, !open.answered, !seen.contains(open.requestID) else {
                    Thread.sleep(forTimeInterval: 0.005)
                    continue
                }
                seen.insert(open.requestID)
                // 1: accepted in Chinese; 2: declined after switching to English; 3: no answer.
                let outcome: ScreenAnswerOutcome
                switch seen.count {
                case 1: outcome = answers.consentAnswered(.init(checkoutID: open.checkoutID, requestID: open.requestID, answer: .confirmed, consent: zh,
                                                                plan: ChosenPlanTests.twelve()))
                case 2: outcome = answers.consentAnswered(.init(checkoutID: open.checkoutID, requestID: open.requestID, answer: .declined, consent: en))
                default: continue
                }
                results.withLock { $0.append(outcome) }
                // A second answer for the same prompt is stale.
                let again = answers.consentAnswered(.init(checkoutID: open.checkoutID, requestID: open.requestID, answer: .declined, consent: zh))
                results.withLock { $0.append(again) }
            }
        }
        shopper.start()
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            runner.run()
            finished.signal()
        }
        thread.start()
        for _ in 0..<600 where runner.outcomes.values.reduce(0, +) < 3 {
            try await Task.sleep(for: .milliseconds(50))
        }
        runner.requestStop()
        finished.wait()
        port.stop()
        bus.finish()
        shopperDone.store(true, ordering: .relaxed)

        #expect(runner.outcomes == ["completed": 1, "declined": 1, "timed_out": 1])
        #expect(results.withLock { $0 } == [.accepted, .stale, .accepted, .stale])
        let checkouts = try outbox.recentCheckouts(limit: 10).checkouts
        let completed = try #require(checkouts.first { $0.state == .completed })
        #expect(completed.method == .kioskScreen)
        #expect(completed.consent?.language == "zh-Hans")
        // The plan chosen on the screen is in the checkout record and in the queued application.
        #expect(completed.plan == ChosenPlanTests.twelve())
        let queued = try #require(try outbox.list(states: nil, limit: 10).first)
        #expect(try CanonicalJSON.decode(CreditApplication.self, from: queued.payload).plan == ChosenPlanTests.twelve())
        let declined = try #require(checkouts.first { $0.state == .declined })
        #expect(declined.consent == en)
        let timedOut = try #require(checkouts.first { $0.state == .timedOut })
        #expect(timedOut.method == nil)
        #expect(try outbox.stats().pending == 1)
    }
}
