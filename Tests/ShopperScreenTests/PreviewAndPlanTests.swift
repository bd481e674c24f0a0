import Camera
import Foundation
import KioskCore
import Synchronization
import Testing
@testable import KioskAgent
@testable import ShopperScreen

/// The live camera preview (encoder, downscale, the liveness step's frames, the endpoint served
/// only during a session) and the chosen instalment plan (answer → checkout → application JSON).
@Suite struct PreviewTests {
    static func le32(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 | Int(b[at + 2]) << 16 | Int(b[at + 3]) << 24 }
    static func le16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }

    @Test func bmpEncodesGreyBottomUpWithPaddedRows() throws {
        // 3×2: rows padded to 4 bytes, stored bottom row first.
        let frame = try #require(PreviewFrame(width: 3, height: 2, pixels: [1, 2, 3, 10, 20, 30]))
        let b = [UInt8](BMPEncoder.encode(frame))
        #expect(b[0] == 0x42 && b[1] == 0x4D)
        let offset = Self.le32(b, 10)
        #expect(offset == 14 + 40 + 1024)
        #expect(Self.le32(b, 2) == b.count)
        #expect(b.count == offset + 2 * 4)
        #expect(Self.le32(b, 14) == 40)
        #expect(Self.le32(b, 18) == 3 && Self.le32(b, 22) == 2)
        #expect(Self.le16(b, 26) == 1 && Self.le16(b, 28) == 8)
        #expect(Self.le32(b, 30) == 0)
        // Grey palette: entry g is (g, g, g, 0).
        #expect(Array(b[54 + 4 * 200..<54 + 4 * 201]) == [200, 200, 200, 0])
        #expect(Array(b[offset...]) == [10, 20, 30, 0, 1, 2, 3, 0])
        #expect(PreviewFrame(width: 3, height: 2, pixels: [1]) == nil)
    }

    @Test func downscaleAveragesBlocksToAtMost320Wide() throws {
        // 640×480 with 2×2 blocks of 0 and 100 alternating rows → 320×240 of 50.
        var px = [UInt8](repeating: 0, count: 640 * 480)
        for y in stride(from: 1, to: 480, by: 2) { for x in 0..<640 { px[y * 640 + x] = 100 } }
        let small = try #require(PreviewFrame.downscaled(width: 640, height: 480, pixels: px))
        #expect(small.width == 320 && small.height == 240)
        #expect(small.pixels.allSatisfy { $0 == 50 })
        let odd = try #require(PreviewFrame.downscaled(width: 1280, height: 721, pixels: [UInt8](repeating: 7, count: 1280 * 721)))
        #expect(odd.width == 320 && odd.height == 180 && odd.pixels.allSatisfy { $0 == 7 })
        let tiny = try #require(PreviewFrame.downscaled(width: 200, height: 100, pixels: [UInt8](repeating: 9, count: 200 * 100)))
        #expect(tiny.width == 200 && tiny.height == 100)
        #expect(PreviewFrame.downscaled(width: 10, height: 10, pixels: [1, 2]) == nil)
    }

    static func frame(_ value: UInt8, width: Int = 640, height: Int = 480) -> Frame {
        Frame(width: width, height: height, format: .grey, data: [UInt8](repeating: value, count: width * height))
    }

    @Test func livePreviewServesTheSlotsFramesOnlyDuringASession() throws {
        let slot = FrameSlot()
        let preview = LivePreview(slot: slot)
        slot.put(Self.frame(40))
        #expect(preview.previewFrame() == nil)  // no session
        preview.sessionStarted()
        let first = try #require(preview.previewFrame())
        #expect(first.width == 320 && first.height == 240 && first.pixels.first == 40)
        // YUYV from a real camera: its luma, downscaled.
        var yuyv = [UInt8](repeating: 128, count: 640 * 480 * 2)
        for i in stride(from: 0, to: yuyv.count, by: 2) { yuyv[i] = 90 }
        slot.put(Frame(width: 640, height: 480, format: .yuyv, data: yuyv))
        #expect(preview.previewFrame()?.pixels.allSatisfy { $0 == 90 } == true)
        preview.sessionEnded()
        #expect(preview.previewFrame() == nil)
        #expect(!preview.isActive)
    }

    @Test func previewEndpointOnlyDuringASessionNeverCachedLoopbackOnly() async throws {
        let dir = try ShopperScreenTests.consentDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = try ConsentLibrary.load(directory: dir, id: "terms", version: "1", defaultLanguage: "en")
        let slot = FrameSlot()
        let preview = LivePreview(slot: slot)
        let server = ShopperScreenServer(configuration: .init(port: 0), hub: ScreenHub(), consents: lib, delegate: RecordingDelegate(), preview: preview)
        let port = try await server.start()
        do {
            slot.put(Self.frame(77))
            let idle = try TinyHTTP.request(port: port, "GET", "/preview.bmp")
            #expect(idle.status == 404)
            preview.sessionStarted()
            let live = try TinyHTTP.request(port: port, "GET", "/preview.bmp?n=1")
            #expect(live.status == 200)
            #expect(live.text.lowercased().contains("content-type: image/bmp"))
            #expect(live.text.lowercased().contains("cache-control: no-store"))
            #expect(live.text.contains("\r\n\r\nBM"))
            #expect(live.text.lowercased().contains("content-length: \(14 + 40 + 1024 + 320 * 240)"))
            #expect(try TinyHTTP.request(port: port, "GET", "/preview.bmp", host: "evil.example").status == 403)
            #expect(try TinyHTTP.request(port: port, "GET", "/preview.bmp", origin: "http://evil.example").status == 403)
            #expect(try TinyHTTP.request(port: port, "POST", "/preview.bmp", origin: "http://127.0.0.1:\(port)", body: "{}").status == 405)
            preview.sessionEnded()
            #expect(try TinyHTTP.request(port: port, "GET", "/preview.bmp").status == 404)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        // A server without a camera has no preview.
        let bare = ShopperScreenServer(configuration: .init(port: 0), hub: ScreenHub(), consents: lib, delegate: RecordingDelegate())
        let p2 = try await bare.start()
        let none = try TinyHTTP.request(port: p2, "GET", "/preview.bmp")
        await bare.stop()
        #expect(none.status == 404)
    }

    @Test func hubFollowsTheCameraStepsChallengeAndHints() {
        let hub = ScreenHub(resultSeconds: 30)
        hub.ingest(ShopperScreenTests.checkout("c1", "consent_shown", extra: ["request_id": 1]))
        hub.ingest(ShopperScreenTests.checkout("c1", "confirmed", extra: ["method": "kiosk_screen"]))
        hub.ingest(ShopperScreenTests.event("liveness", ["checkout_id": "c1", "state": "started", "challenge": "blink"]))
        #expect(hub.current.challenge == "blink")
        // The runner's English display text repeats the step's guidance: ignored with the camera.
        hub.ingest(ShopperScreenTests.event("liveness_guidance", ["checkout_id": "c1", "text": "Please face the camera"]))
        hub.ingest(ShopperScreenTests.event("liveness", ["checkout_id": "c1", "state": "guidance", "guidance": "face_the_camera"]))
        #expect(hub.current.challenge == "blink")
        #expect(hub.current.hints == ["face_the_camera"])
        hub.ingest(ShopperScreenTests.event("liveness", ["checkout_id": "c1", "state": "guidance", "guidance": "blink"]))
        #expect(hub.current.challenge == "blink")
        #expect(hub.current.hints.isEmpty)
        hub.ingest(ShopperScreenTests.event("liveness", ["checkout_id": "c1", "state": "guidance", "guidance": "done"]))
        #expect(hub.current.hints.isEmpty)
        #expect(!String(decoding: hub.current.json, as: UTF8.self).contains("camera_guided"))
        // The next checkout starts without the flag: the simulated step's texts count again.
        hub.ingest(ShopperScreenTests.checkout("c2", "consent_shown", extra: ["request_id": 2]))
        hub.ingest(ShopperScreenTests.checkout("c2", "confirmed"))
        hub.ingest(ShopperScreenTests.event("liveness_guidance", ["checkout_id": "c2", "text": "Blink"]))
        #expect(hub.current.challenge == "blink")
    }
}

@Suite struct ChosenPlanTests {
    static let payment = Payment(transactionRef: "t1", amountMinor: 129_900, currency: "CNY", maskedPAN: "411111******1111",
                                 terminalToken: "tok", approvalCode: "A1")
    static let ts = Timestamp(wallClockMillis: 1_700_000_000_000, bootID: "b", monotonicNanos: 1)

    static func twelve() -> ChosenPlan {
        let p = InstalmentCalculator().plans(amountMinor: 129_900).first { $0.months == 12 }!
        return ChosenPlan(p, currency: "CNY", lender: "Sample Lender")
    }

    @Test func thePlanGoesFromTheAnswerIntoTheApplication() throws {
        let zh = ConsentText(id: "t", version: "1", language: "zh-Hans", text: "中文")
        let ctx = CheckoutContext(deviceID: "d", merchantID: "m", rules: EligibilityRules(cooldownSeconds: 0), consent: zh, requireLiveness: false)
        var c = CheckoutMachine.start(payment: Self.payment, terminalSerial: "s", at: Self.ts)
        (c, _) = try CheckoutMachine.apply(.consentShown(zh, requestID: 3, at: Self.ts), to: c, context: ctx)
        let plan = Self.twelve()
        #expect(plan.instalments == 12 && plan.totalMinor == 139_253 && plan.feeMinor == 9_353)
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.planChosen(plan, requestID: 4, at: Self.ts), to: c, context: ctx) }
        var wrong = plan
        wrong.totalMinor += 1
        #expect(throws: CheckoutError.self) { try CheckoutMachine.apply(.planChosen(wrong, requestID: 3, at: Self.ts), to: c, context: ctx) }
        (c, _) = try CheckoutMachine.apply(.planChosen(plan, requestID: 3, at: Self.ts), to: c, context: ctx)
        #expect(c.plan == plan)
        let (_, effects) = try CheckoutMachine.apply(.promptAnswered(requestID: 3, answer: .confirmed, method: .kioskScreen, at: Self.ts), to: c, context: ctx)
        guard case .enqueue(let app)? = effects.first else { Issue.record("no application"); return }
        #expect(app.plan == plan)
        let json = try JSONSerialization.jsonObject(with: app.canonicalPayload()) as! [String: Any]
        let p = try #require(json["plan"] as? [String: Any])
        #expect(p["instalments"] as? Int == 12)
        #expect(p["instalment_minor"] as? Int == 11_604)
        #expect(p["last_instalment_minor"] as? Int == 11_609)
        #expect(p["total_minor"] as? Int == 139_253)
        #expect(p["lender"] as? String == "Sample Lender")
        #expect(json["schema_version"] as? Int == 1)
        // The checkout record keeps it too (kioskctl checkouts).
        let record = try JSONSerialization.jsonObject(with: CanonicalJSON.encode(c)) as! [String: Any]
        #expect((record["plan"] as? [String: Any])?["instalments"] as? Int == 12)
    }

    @Test func withoutAPlanTheDocumentIsUnchangedAndOldOnesDecode() throws {
        var app = CreditApplication.sample()
        #expect(app.plan == nil)
        let bytes = try app.canonicalPayload()
        #expect(!String(decoding: bytes, as: UTF8.self).contains("\"plan\""))
        #expect(try CanonicalJSON.decode(CreditApplication.self, from: bytes) == app)
        // A stored checkout from before the field decodes with no plan.
        let checkout = CheckoutMachine.start(payment: Self.payment, terminalSerial: "s", at: Self.ts)
        var old = try JSONSerialization.jsonObject(with: CanonicalJSON.encode(checkout)) as! [String: Any]
        old.removeValue(forKey: "plan")
        #expect(try CanonicalJSON.decode(Checkout.self, from: JSONSerialization.data(withJSONObject: old)).plan == nil)
        // A plan that does not add up to the payment is refused by validation.
        app.plan = ChosenPlan(instalments: 3, instalmentMinor: 1, lastInstalmentMinor: 1, feeMinor: 0, totalMinor: 3, currency: "CNY", lender: "L")
        #expect(throws: ApplicationValidationError.self) { try app.canonicalPayload() }
    }

    @Test func theServerResolvesTheSelectedMonthsFromTheOffer() async throws {
        let dir = try ShopperScreenTests.consentDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = try ConsentLibrary.load(directory: dir, id: "terms", version: "1", defaultLanguage: "en")
        let hub = ScreenHub()
        let delegate = RecordingDelegate()
        let server = ShopperScreenServer(configuration: .init(port: 0, lender: "Sample Lender"), hub: hub, consents: lib, delegate: delegate)
        let port = try await server.start()
        hub.ingest(ShopperScreenTests.checkout("c1", "consent_shown", extra: ["request_id": 4]))
        let sha = sha256Hex(Data("Terms — English.\n".utf8))
        func post(_ extra: String, checkout: String = "c1") throws -> Int {
            let body = #"{"checkout_id":"\#(checkout)","request_id":4,"answer":"accept","language":"en","text_sha256":"\#(sha)"\#(extra)}"#
            return try TinyHTTP.request(port: port, "POST", "/consent-answer", origin: "http://127.0.0.1:\(port)", body: body).status
        }
        let statuses = try [post(#","plan_months":5"#), post(#","plan_months":"12""#), post(#","plan_months":12"#, checkout: "c0"),
                            post(#","plan_months":12"#), post("")]
        await server.stop()
        #expect(statuses == [400, 400, 409, 200, 200])
        let got = delegate.answers.withLock { $0 }
        #expect(got.count == 2)
        #expect(got.first?.plan == Self.twelve())
        #expect(got.last?.plan == nil)
    }
}
