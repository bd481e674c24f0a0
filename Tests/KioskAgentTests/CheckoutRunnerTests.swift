import Foundation
import KioskCore
import Logging
import Outbox
import PaymentTerminal
import Synchronization
import Testing
@testable import KioskAgent

/// The checkout runner against the in-process simulated terminal: many payments with every
/// answer, the outbox and checkout table afterwards, signatures, and restart recovery.
@Suite(.serialized) struct CheckoutRunnerTests {
    static let consent = ConsentText(id: "instalment-consent", version: "2026.11", language: "zh-CN", text: "分期付款条款 …")

    static func settings(requireLiveness: Bool = true) -> CheckoutRunner.Settings {
        let context = CheckoutContext(deviceID: "kiosk-test", merchantID: "m-1", rules: EligibilityRules(cooldownSeconds: 0),
                                      consent: consent, requireLiveness: requireLiveness)
        var s = CheckoutRunner.Settings(context: context, promptTimeout: .seconds(1))
        s.answerGrace = .milliseconds(300)
        s.displaySeconds = 1
        return s
    }

    struct Run {
        var outcomes: [String: Int]
        var outbox: Outbox
        var signer: AuthorizationSigner
        var dir: URL
        var events: [[String: Any]]
    }

    /// Plays `payments` payments of `scenario` through a runner and waits until each is final.
    static func run(_ scenario: TerminalScenario, payments: Int, liveness: any LivenessStep,
                    requireLiveness: Bool = true, untilEvent: String? = nil, until: (@Sendable () -> Bool)? = nil,
                    limits: OutboxLimits = OutboxLimits(minFreeDiskBytes: 0), offerWait: Duration = .seconds(10),
                    prepare: (Outbox) throws -> Void = { _ in }) async throws -> Run {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let outbox = try Outbox(path: dir.appendingPathComponent("outbox.sqlite").path, limits: limits)
        try prepare(outbox)
        let logger = Logger(label: "test.runner")
        var options = TerminalScenarioOptions(payments: payments, paymentInterval: .milliseconds(20))
        options.offerWait = offerWait
        let port = try SimulatedTerminalPort(scenario: scenario, options: options, logger: logger)
        let signer = AuthorizationSigner.generate()
        let bus = EventBus(replay: 0, bufferPerSubscriber: 100_000)
        let stream = bus.subscribe(replay: false)
        let seen = SeenEvents()
        let watcher = bus.subscribe(replay: false)
        let watching = Task {
            for await line in watcher {
                if let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let kind = obj["event"] as? String {
                    seen.kinds.withLock { _ = $0.insert(kind) }
                }
            }
        }
        let runner = CheckoutRunner(port: port, outbox: outbox, settings: settings(requireLiveness: requireLiveness), signer: signer,
                                    liveness: liveness, bus: bus, logger: logger, onEnqueued: {})
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            runner.run()
            finished.signal()
        }
        thread.start()
        // Bounded wait for every payment to reach a final state (not a timing assertion: the
        // bound only keeps a broken runner from hanging the suite).
        func done() -> Bool {
            if let until { return until() }
            if let untilEvent { return seen.kinds.withLock { $0.contains(untilEvent) } }
            return runner.outcomes.values.reduce(0, +) >= payments
        }
        for _ in 0..<600 where !done() {
            try await Task.sleep(for: .milliseconds(50))
        }
        runner.requestStop()
        finished.wait()
        port.stop()
        bus.finish()
        await watching.value
        var events: [[String: Any]] = []
        for await line in stream {
            if let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any] { events.append(obj) }
        }
        return Run(outcomes: runner.outcomes, outbox: outbox, signer: signer, dir: dir, events: events)
    }

    @Test func mixedAnswersGiveOneSignedApplicationPerConfirmedCheckout() async throws {
        let payments = 12
        let r = try await Self.run(.mixed, payments: payments, liveness: SimulatedLiveness())
        defer { try? FileManager.default.removeItem(at: r.dir) }
        // n % 5 declines (5, 10), n % 7 answers "timed out" (7), n % 11 never answers (11).
        #expect(r.outcomes == ["completed": 8, "declined": 2, "timed_out": 2])
        #expect(try r.outbox.checkoutCounts() == ["completed": 8, "declined": 2, "timed_out": 2])

        let batch = try r.outbox.nextBatch(limit: 100, maxBytes: 10 << 20)
        #expect(batch.count == 8)
        let completed = try r.outbox.recentCheckouts(limit: 100).checkouts.filter { $0.state == .completed }
        #expect(Set(completed.compactMap(\.applicationID)) == Set(batch.map(\.id)))
        for record in batch {
            let app = try JSONDecoder().decode(CreditApplication.self, from: record.payload)
            #expect(try AuthorizationSigner.verify(app.authorization) == r.signer.keyID)
            #expect(app.authorization.method == .terminalButton)
            #expect(app.authorization.consentSHA256 == Self.consent.sha256)
            #expect(app.authorization.requestID != nil && app.authorization.terminalSerial == "EMU-0001")
            #expect(app.liveness.decision == .pass)
            #expect(app.deviceID == "kiosk-test")
        }
        // Every checkout's transitions were published, ending in its final state.
        let finals = r.events.filter { ($0["final"] as? Bool) == true }.compactMap { $0["state"] as? String }
        #expect(finals.sorted() == (Array(repeating: "completed", count: 8) + ["declined", "declined", "timed_out", "timed_out"]).sorted())
        #expect(!r.events.contains { String(describing: $0).contains("4111111111111111") })
    }

    @Test func withoutACameraNothingIsOfferedAndNoApplicationIsCreated() async throws {
        // No prompt is shown, so the scripted terminal (which waits for one) plays one payment.
        let r = try await Self.run(.payConfirm, payments: 1, liveness: UnavailableLiveness(reason: "camera unavailable: unplugged"))
        defer { try? FileManager.default.removeItem(at: r.dir) }
        #expect(r.outcomes == ["ineligible": 1])
        #expect(try r.outbox.stats().pending == 0)
        let checkouts = try r.outbox.recentCheckouts().checkouts
        #expect(checkouts.allSatisfy { $0.consent == nil && $0.history.last?.reason == "offers suspended: camera unavailable: unplugged" })
    }

    /// Regression (chaos campaign, full disk): a full outbox used to be found only after the
    /// shopper had consented and passed liveness ("Service unavailable" at the end). Now no offer
    /// is made, the reason is recorded, and the queued backlog is kept untouched.
    @Test func aFullOutboxSuspendsOffersBeforeTheShopperIsAsked() async throws {
        let backlog = Data(#"{"backlog":true}"#.utf8)
        // No prompt is shown: the terminal treats each payment as done without an offer after
        // offerWait and plays the next one.
        let r = try await Self.run(.payConfirm, payments: 2, liveness: SimulatedLiveness(), limits: OutboxLimits(maxRows: 2, minFreeDiskBytes: 0),
                                   offerWait: .milliseconds(500)) {
            _ = try $0.enqueue(id: "backlog-1", payload: backlog)
            _ = try $0.enqueue(id: "backlog-2", payload: backlog)
        }
        defer { try? FileManager.default.removeItem(at: r.dir) }
        #expect(r.outcomes == ["ineligible": 2])
        let checkouts = try r.outbox.recentCheckouts().checkouts
        #expect(checkouts.count == 2)
        #expect(checkouts.allSatisfy { $0.consent == nil && $0.applicationID == nil })
        #expect(checkouts.allSatisfy { ($0.history.last?.reason ?? "").hasPrefix("offers suspended: outbox full: rows: 2 unsynced rows") })
        let kept = try r.outbox.nextBatch(limit: 10, maxBytes: 1 << 20)
        #expect(kept.map(\.id) == ["backlog-1", "backlog-2"] && kept.allSatisfy { $0.payload == backlog })
        // With room again (one row synced), the next checkout would be offered.
        try r.outbox.markSynced(ids: ["backlog-1"])
        #expect(try r.outbox.admissionProblem() == nil)
    }

    /// A step that is available but whose check never passes (a camera seeing a photo).
    struct FailingLiveness: LivenessStep {
        func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult {
            guide("Please blink")
            return LivenessResult(decision: .fail, score: 0.1, checks: [.init(name: "micro_motion", value: 0, threshold: 0.15, passed: false)])
        }
    }

    /// A check still running when the agent stops (the shopper in front of the camera).
    final class StoppedLiveness: LivenessStep {
        let started = Synchronization.Atomic<Bool>(false)
        func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult {
            LivenessResult(decision: .pass, score: 1, checks: [])
        }
        func check(checkout: Checkout, guide: (String) -> Void, isStopping: () -> Bool) -> LivenessResult {
            started.store(true, ordering: .relaxed)
            while !isStopping() { usleep(5_000) }
            return LivenessResult(decision: .inconclusive, score: 0, checks: [.init(name: "frames", value: 3, threshold: 8, passed: false)])
        }
    }

    @Test func aStopDuringTheLivenessCheckAbandonsTheCheckoutInsteadOfFailingIt() async throws {
        let step = StoppedLiveness()
        let r = try await Self.run(.payConfirm, payments: 1, liveness: step, until: { step.started.load(ordering: .relaxed) })
        defer { try? FileManager.default.removeItem(at: r.dir) }
        let sawTheCheck = step.started.load(ordering: .relaxed)
        #expect(sawTheCheck)
        #expect(r.outcomes == ["abandoned": 1])
        #expect(try r.outbox.stats().pending == 0)
    }

    @Test func aFailedLivenessCheckCreatesNoApplication() async throws {
        let r = try await Self.run(.payConfirm, payments: 2, liveness: FailingLiveness())
        defer { try? FileManager.default.removeItem(at: r.dir) }
        #expect(r.outcomes == ["liveness_failed": 2])
        #expect(try r.outbox.stats().pending == 0)
        let checkouts = try r.outbox.recentCheckouts().checkouts
        #expect(checkouts.allSatisfy { $0.confirmedAt != nil && $0.liveness?.decision == .fail && $0.applicationID == nil })
    }

    @Test func aFullPANFromTheTerminalIsRefusedAndLeavesNoTrace() async throws {
        let dirRun = try await Self.run(.fullPAN, payments: 1, liveness: SimulatedLiveness(), untilEvent: "terminal_refused")
        defer { try? FileManager.default.removeItem(at: dirRun.dir) }
        #expect(dirRun.outcomes.isEmpty)
        #expect(try dirRun.outbox.checkoutCounts().isEmpty)
        #expect(dirRun.events.contains { ($0["event"] as? String) == "terminal_refused" })
        try dirRun.outbox.close()
        for name in try FileManager.default.contentsOfDirectory(atPath: dirRun.dir.path) {
            let bytes = try Data(contentsOf: dirRun.dir.appendingPathComponent(name))
            #expect(bytes.range(of: Data("4111111111111111".utf8)) == nil, "\(name)")
        }
    }

    @Test func aRestartClosesUnfinishedCheckoutsWithoutDroppingAConsent() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recover-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outbox = try Outbox(path: dir.appendingPathComponent("outbox.sqlite").path, limits: OutboxLimits(minFreeDiskBytes: 0))
        let context = Self.settings().context
        let payment = CreditApplication.sample().payment
        let t = CheckoutRunner.now()

        var shown = CheckoutMachine.start(payment: payment, terminalSerial: "T", at: t)
        (shown, _) = try CheckoutMachine.apply(.eligibilityChecked(lastOfferForToken: nil, now: Date(), at: t), to: shown, context: context)
        (shown, _) = try CheckoutMachine.apply(.consentShown(Self.consent, requestID: 1, at: t), to: shown, context: context)
        var confirmed = shown
        confirmed.id = ApplicationID.make()
        (confirmed, _) = try CheckoutMachine.apply(.promptAnswered(requestID: 1, answer: .confirmed, method: .terminalButton, at: t), to: confirmed, context: context)
        var queued = confirmed
        queued.id = ApplicationID.make()
        let (afterLiveness, effects) = try CheckoutMachine.apply(.livenessCompleted(LivenessResult(decision: .pass, score: 1, checks: []), at: t), to: queued, context: context)
        guard case let .enqueue(app)? = effects.first else { Issue.record("no enqueue: \(effects)"); return }
        (queued, _) = try CheckoutMachine.apply(.applicationEnqueued(id: app.id, at: t), to: afterLiveness, context: context)
        try outbox.saveCheckout(shown)
        try outbox.saveCheckout(confirmed)
        _ = try outbox.enqueue(id: app.id, payload: try app.canonicalPayload(), recording: queued)

        let port = try SimulatedTerminalPort(scenario: .echo, options: TerminalScenarioOptions(payments: 0), logger: Logger(label: "t"))
        defer { port.stop() }
        let runner = CheckoutRunner(port: port, outbox: outbox, settings: Self.settings(), signer: .generate(),
                                    liveness: SimulatedLiveness(), bus: EventBus(), logger: Logger(label: "t"), onEnqueued: {})
        #expect(runner.recover() == 3)
        #expect(try outbox.openCheckouts().checkouts.isEmpty)
        #expect(try outbox.checkout(id: shown.id)?.state == .abandoned)
        let closedConfirmed = try outbox.checkout(id: confirmed.id)
        #expect(closedConfirmed?.state == .abandoned)
        #expect(closedConfirmed?.confirmedAt != nil, "the confirmed consent stays on record")
        #expect(closedConfirmed?.applicationID == nil, "no application without the liveness check")
        #expect(try outbox.checkout(id: queued.id)?.state == .completed)
        #expect(try outbox.stats().pending == 1)
        #expect(runner.recover() == 0)
    }
}

/// Event kinds seen on the bus (shared with the watching task).
final class SeenEvents: Sendable {
    let kinds = Mutex<Set<String>>([])
}
