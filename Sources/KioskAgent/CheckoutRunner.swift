import Foundation
import KioskCore
import Logging
import Outbox
import PaymentTerminal
import ServiceLifecycle
import Synchronization

/// The liveness step between a confirmed consent and the application (issue 5 plugs the camera in).
public protocol LivenessStep: Sendable {
    /// Runs the check for `checkout` (blocking, on the checkout thread); `guide` shows the shopper
    /// an instruction (on the terminal's display and the screen).
    func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult
    /// As ``check(checkout:guide:)``, ending early (inconclusive) once `isStopping` says the agent
    /// is shutting down.
    func check(checkout: Checkout, guide: (String) -> Void, isStopping: () -> Bool) -> LivenessResult
    /// Why the check cannot run now (camera unavailable); nil when it can. While it is non-nil
    /// and liveness is required, no credit is offered.
    var unavailableReason: String? { get }
}

extension LivenessStep {
    /// Available by default.
    public var unavailableReason: String? { nil }
    /// A step that returns promptly anyway ignores `isStopping`.
    public func check(checkout: Checkout, guide: (String) -> Void, isStopping: () -> Bool) -> LivenessResult {
        check(checkout: checkout, guide: guide)
    }
}

/// No camera configured: every check is inconclusive, so no application is created when the
/// config requires liveness.
public struct UnavailableLiveness: LivenessStep {
    /// Why there is no check (shown in the result's evidence).
    public var reason: String
    /// Creates the step.
    public init(reason: String = "no camera configured") { self.reason = reason }
    /// Always unavailable.
    public var unavailableReason: String? { reason }
    /// Always inconclusive.
    public func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult {
        LivenessResult(decision: .inconclusive, score: 0, checks: [.init(name: "camera_available", value: 0, threshold: 1, passed: false)])
    }
}

/// The demo's stand-in: passes, and says so in its evidence (never for production configs).
public struct SimulatedLiveness: LivenessStep {
    /// How long the simulated check takes (0: instant); with a pause it also asks for a blink.
    public var pause: Duration
    /// Creates the step.
    public init(pause: Duration = .zero) { self.pause = pause }
    /// Always passes, with a single "simulated" check.
    public func check(checkout: Checkout, guide: (String) -> Void) -> LivenessResult {
        guide("Look at the camera")
        if pause > .zero {
            Thread.sleep(forTimeInterval: Double(pause.components.seconds) / 2 + Double(pause.components.attoseconds) / 2e18)
            guide("Blink")
            Thread.sleep(forTimeInterval: Double(pause.components.seconds) / 2 + Double(pause.components.attoseconds) / 2e18)
        }
        return LivenessResult(decision: .pass, score: 1, checks: [.init(name: "simulated", value: 1, threshold: 1, passed: true)])
    }
}

/// Drives checkouts from the payment terminal through the ``KioskCore/CheckoutMachine``.
///
/// Runs on a thread of its own (terminal and database calls block). Every transition is written
/// to the database (durably) before its effect is carried out, and published on the ``EventBus``:
/// the consent is recorded as shown before the prompt goes out, the answer is recorded before
/// anything else happens, and the application is enqueued in the same transaction as the
/// checkout's `enqueued` state. A restart finds unfinished checkouts and closes them (see
/// ``recover()``).
public final class CheckoutRunner: Sendable {
    /// Knobs of the flow.
    public struct Settings: Sendable {
        /// Device, merchant, rules, consent text, whether liveness is required.
        public var context: CheckoutContext
        /// How long the shopper has to answer on the terminal.
        public var promptTimeout: Duration
        /// Extra wait beyond the prompt's own timeout for the terminal's answer.
        public var answerGrace: Duration = .seconds(5)
        /// How long texts (reference, messages) stay on the terminal's display.
        public var displaySeconds: UInt16 = 8
        /// Creates settings.
        public init(context: CheckoutContext, promptTimeout: Duration) {
            self.context = context
            self.promptTimeout = promptTimeout
        }
    }

    private let port: any TerminalPort
    private let outbox: Outbox
    private let settings: Settings
    private let signer: AuthorizationSigner
    /// Seals payloads to central before they reach the outbox (nil: plaintext, dev/demo).
    private let sealer: ApplicationSealer?
    private let liveness: any LivenessStep
    private let bus: EventBus
    private let logger: Logger
    private let onEnqueued: @Sendable () -> Void
    /// The shopper's screen as a second answer source (nil: the terminal only).
    private let screen: ScreenAnswers?
    private let stopFlag = Atomic<Bool>(false)
    private let counters = Mutex<[String: Int]>([:])

    /// Creates the runner; nothing runs until ``run()``.
    public init(port: any TerminalPort, outbox: Outbox, settings: Settings, signer: AuthorizationSigner, liveness: any LivenessStep,
                bus: EventBus, logger: Logger, screen: ScreenAnswers? = nil, sealer: ApplicationSealer? = nil,
                onEnqueued: @escaping @Sendable () -> Void) {
        self.screen = screen
        self.sealer = sealer
        self.port = port
        self.outbox = outbox
        self.settings = settings
        self.signer = signer
        self.liveness = liveness
        self.bus = bus
        self.logger = logger
        self.onEnqueued = onEnqueued
    }

    /// Why the liveness step cannot run now (offers are suspended while liveness is required).
    public var livenessUnavailableReason: String? { liveness.unavailableReason }

    /// Why no offer may be made now, or `nil`: the outbox could not keep the application (full
    /// disk, row or byte limit) or liveness is required and unavailable.
    public var offersSuspendedReason: String? {
        do {
            if let full = try outbox.admissionProblem() { return "outbox full: \(full)" }
        } catch {
            return "outbox unavailable: \(error)"
        }
        return settings.context.requireLiveness ? liveness.unavailableReason : nil
    }

    /// Outcomes since start (final states → count), for status.
    public var outcomes: [String: Int] { counters.withLock { $0 } }

    /// Asks ``run()`` to return (within about a quarter of a second, or after the exchange in progress).
    public func requestStop() { stopFlag.store(true, ordering: .relaxed) }

    private var shouldStop: Bool { stopFlag.load(ordering: .relaxed) }

    static func now() -> Timestamp {
        Timestamp(wallClockMillis: Int64((Date().timeIntervalSince1970 * 1000).rounded()), bootID: DeviceClock.bootID,
                  monotonicNanos: DeviceClock.bootTimeNanos())
    }

    // MARK: Recovery

    /// Closes the checkouts a restart interrupted: queued ones become completed, the others are
    /// closed as abandoned with their consent (if any) on record. Returns how many were recovered.
    @discardableResult
    public func recover() -> Int {
        let open: (checkouts: [Checkout], corrupt: [CorruptCheckout])
        do {
            open = try outbox.openCheckouts()
        } catch {
            logger.error("cannot read unfinished checkouts", metadata: ["error": "\(error)"])
            return 0
        }
        for bad in open.corrupt {
            logger.critical("a checkout row cannot be read; kept in the database for an operator", metadata: ["checkout": "\(bad)"])
            bus.publish("checkout_corrupt", ["checkout_id": bad.id, "state": bad.state, "reason": bad.reason])
        }
        for c in open.checkouts {
            let (closed, _) = CheckoutMachine.recover(c, at: Self.now(), context: settings.context)
            do {
                try outbox.saveCheckout(closed)
                logger.notice("checkout recovered after restart", metadata: ["checkout": "\(c.id)", "from": "\(c.state.rawValue)", "to": "\(closed.state.rawValue)"])
                publish(closed)
            } catch {
                logger.error("cannot record a recovered checkout", metadata: ["checkout": "\(c.id)", "error": "\(error)"])
            }
        }
        return open.checkouts.count
    }

    // MARK: Main loop

    /// Waits for payments and runs a checkout for each, until ``requestStop()``. Blocking.
    public func run() {
        var contacted: ObjectIdentifier?
        var serial = "unknown"
        var connected = false
        // The link of the last exchange: what it received (and ACKed) before it went down is still
        // the terminal's word. Found by test-checkout-usb: a payment queued while a checkout ran
        // was lost with the link at an unplug, leaving a payment without a checkout.
        var previous: TerminalLink?
        while !shouldStop {
            do {
                let envelope = try port.withLink { link -> TerminalEnvelope? in
                    if let old = previous, old !== link {
                        if let queued = try? old.receive(timeout: .zero) {
                            logger.notice("taking a message the previous terminal link received before it went down",
                                          metadata: ["type": "\(queued.message.type)"])
                            return queued
                        }
                        previous = nil
                    }
                    previous = link
                    if contacted != ObjectIdentifier(link) {
                        // First contact on this link: PING tells the terminal the kiosk is there
                        // and says which terminal it is.
                        let pong = try link.request(.ping, timeout: .seconds(3))
                        if case .pong(let info) = pong.message { serial = info.serial }
                        contacted = ObjectIdentifier(link)
                        connected = true
                        logger.notice("payment terminal answering", metadata: ["terminal": "\(port.name)", "serial": "\(serial)"])
                        bus.publish("terminal", ["state": "connected", "serial": serial, "terminal": port.name])
                    }
                    return try link.receive(timeout: .milliseconds(250))
                }
                guard let envelope else { continue }
                if case .paymentResult(let payment) = envelope.message {
                    runCheckout(payment: payment.payment(), serial: serial)
                } else {
                    logger.debug("ignored a terminal message", metadata: ["type": "\(envelope.message.type)"])
                }
            } catch let error as LinkError {
                switch error {
                case .refused(let why, let id):
                    // The refusal text is already masked (PCI): no PAN reaches the log.
                    logger.error("refused a terminal message", metadata: ["reason": "\(why)", "request_id": "\(id.map(String.init) ?? "-")"])
                    bus.publish("terminal_refused", ["reason": "\(why)"])
                case .disconnected, .closed:
                    if connected {
                        connected = false
                        contacted = nil
                        bus.publish("terminal", ["state": "disconnected", "serial": serial, "terminal": port.name])
                    }
                    Thread.sleep(forTimeInterval: 0.2)
                default:
                    logger.warning("terminal exchange failed", metadata: ["error": "\(error)"])
                    contacted = nil
                    Thread.sleep(forTimeInterval: 0.2)
                }
            } catch {
                logger.warning("terminal exchange failed", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    // MARK: One checkout

    /// Applies an event, persists the result (durably) and publishes it; returns the effects.
    private func step(_ c: inout Checkout, _ event: CheckoutEvent) throws -> [CheckoutEffect] {
        let (next, effects) = try CheckoutMachine.apply(event, to: c, context: settings.context)
        try outbox.saveCheckout(next)
        let changed = next.state != c.state
        c = next
        if changed { publish(c) }
        return effects
    }

    /// Runs one checkout to a final state. Never throws: failures close the checkout with a reason.
    func runCheckout(payment: Payment, serial: String) {
        var c = CheckoutMachine.start(payment: payment, terminalSerial: serial, at: Self.now())
        // The checkout id only: the transaction reference identifies the shopper's payment.
        let log = logger.with(["checkout": "\(c.id)"])
        // Asked first: on a full disk even the checkout's own record may not be writable.
        let suspended = offersSuspendedReason
        do {
            try outbox.saveCheckout(c)
            publish(c)
            let last = try outbox.lastCheckoutStart(token: payment.terminalToken, excluding: c.id)
            var effects = try step(&c, .eligibilityChecked(lastOfferForToken: last, now: Date(), at: Self.now(), suspended: suspended))
            if c.state == .ineligible {
                log.info("payment not eligible for credit", metadata: ["reason": "\(c.history.last?.reason ?? "")"])
                display(suspended == nil ? "Instalments not available for this payment" : "Instalments not available right now")
                finish(c)
                return
            }
            while !effects.isEmpty {
                let effect = effects.removeFirst()
                effects += try perform(effect, &c, log: log)
            }
        } catch {
            log.error("checkout failed", metadata: ["error": "\(error)", "state": "\(c.state.rawValue)", "offers_suspended": "\(suspended ?? "no")"])
            if suspended != nil, c.consent == nil { display("Instalments not available right now") }
            close(&c, reason: "\(error)", log: log)
        }
        finish(c)
    }

    private func perform(_ effect: CheckoutEffect, _ c: inout Checkout, log: Logger) throws -> [CheckoutEffect] {
        switch effect {
        case .showConsent(let text):
            let requestID = try port.withLink { $0.nextRequestID() }
            // With a page attached, answers for this request id are taken from the moment the
            // event announcing it can reach the page; they are read only after the record below.
            let onScreen = screen.flatMap { $0.isAttached ? $0 : nil }
            onScreen?.open(checkoutID: c.id, requestID: requestID)
            defer { onScreen?.close() }
            // Recorded before the prompt goes out: a late answer is matched by this id or discarded.
            _ = try step(&c, .consentShown(text, requestID: requestID, at: Self.now()))
            if let onScreen {
                return try askScreenOrTerminal(onScreen, &c, text: text, requestID: requestID, log: log)
            }
            let answer = askOnTerminal(c, text: text, requestID: requestID, log: log)
            switch answer {
            case .answered(let a):
                return try step(&c, .promptAnswered(requestID: requestID, answer: a, method: .terminalButton, at: Self.now()))
            case .lost(let reason):
                // Unplugged mid-exchange: the checkout is closed, never half-written; the driver
                // reconnects when the terminal returns and the next payment starts afresh.
                return try step(&c, .abandoned(reason: reason, at: Self.now()))
            }
        case .runLiveness:
            let id = c.id
            let result = liveness.check(checkout: c, guide: { text in
                bus.publish("liveness_guidance", ["checkout_id": id, "text": text])
                display(text)
            }, isStopping: { [self] in shouldStop })
            // Stopped mid-check (SIGTERM, a power-off by the operator): the shopper did not fail
            // the check; the checkout is closed as abandoned, not as a failed face check.
            if shouldStop, result.decision != .pass {
                return try step(&c, .abandoned(reason: "the agent stopped during the liveness check", at: Self.now()))
            }
            return try step(&c, .livenessCompleted(result, at: Self.now()))
        case .enqueue(let application):
            var app = application
            app.authorization = try signer.sign(app.authorization)
            let plain = try app.canonicalPayload()
            let payload = try sealer.map { try $0.seal(plain, id: app.id) } ?? plain
            let (enqueued, next) = try CheckoutMachine.apply(.applicationEnqueued(id: app.id, at: Self.now()), to: c, context: settings.context)
            do {
                _ = try outbox.enqueue(id: app.id, payload: payload, recording: enqueued)
            } catch let e as OutboxError {
                if case .full = e { display("Service unavailable, sorry") }
                throw e
            }
            c = enqueued
            publish(c)
            onEnqueued()
            log.notice("application enqueued", metadata: ["application": "\(app.id)"])
            return next
        case .showReference(let id):
            display("Application \(Self.shortReference(id))")
            return try step(&c, .referenceShown(at: Self.now()))
        case .showMessage(let key):
            display(Self.messages[key] ?? key)
            return []
        }
    }

    private enum TerminalAnswer: Sendable { case answered(PromptAnswer), lost(String) }

    /// The consent answer from the screen or the terminal, whichever comes first for this request
    /// id (the terminal prompt runs on a helper thread as the fallback; when the screen wins, the
    /// prompt is replaced on the terminal's display and its late answer is discarded).
    private func askScreenOrTerminal(_ screen: ScreenAnswers, _ c: inout Checkout, text: ConsentText, requestID: UInt32,
                                     log: Logger) throws -> [CheckoutEffect] {
        let shown = c
        let helper = Thread { [self] in
            switch askOnTerminal(shown, text: text, requestID: requestID, log: log) {
            case .answered(let a): screen.offerTerminal(.answered(a), requestID: requestID)
            case .lost(let why): screen.offerTerminal(.lost(why), requestID: requestID)
            }
        }
        helper.name = "kiosk-prompt"
        helper.start()
        let deadline = ContinuousClock.now + settings.promptTimeout + settings.answerGrace + .seconds(1)
        switch screen.wait(until: deadline) {
        case .screen(let answer, let displayed, let plan)?:
            log.info("consent answered on the screen", metadata: ["answer": "\(answer.rawValue)", "language": "\(displayed.language)",
                                                                  "plan_instalments": "\(plan.map { String($0.instalments) } ?? "none")"])
            if displayed != c.consent {
                _ = try step(&c, .consentLanguageChanged(displayed, requestID: requestID, at: Self.now()))
            }
            if answer == .confirmed, let plan {
                // Recorded with the consent: the application carries the plan the shopper accepted.
                _ = try step(&c, .planChosen(plan, requestID: requestID, at: Self.now()))
            }
            let effects = try step(&c, .promptAnswered(requestID: requestID, answer: answer, method: .kioskScreen, at: Self.now()))
            display(answer == .confirmed ? "Accepted on the screen" : "Declined on the screen")
            return effects
        case .terminal(.answered(let a))?:
            return try step(&c, .promptAnswered(requestID: requestID, answer: a, method: .terminalButton, at: Self.now()))
        case .terminal(.lost(let reason))?:
            return try step(&c, .abandoned(reason: reason, at: Self.now()))
        case nil:
            return try step(&c, .promptAnswered(requestID: requestID, answer: .timedOut, method: .terminalButton, at: Self.now()))
        }
    }

    private func askOnTerminal(_ c: Checkout, text: ConsentText, requestID: UInt32, log: Logger) -> TerminalAnswer {
        let seconds = UInt16(clamping: settings.promptTimeout.components.seconds)
        let amount = Self.formatAmount(c.payment.amountMinor, currency: c.payment.currency)
        let prompt = Prompt(text: "Pay \(amount) in instalments? Terms \(text.id) v\(text.version)", buttons: ["Yes", "No"], timeoutSeconds: seconds)
        do {
            let response = try port.withLink { link in
                try link.request(.showPrompt(prompt), requestID: requestID, timeout: settings.promptTimeout + settings.answerGrace)
            }
            guard case .promptResult(let outcome) = response.message else { return .answered(.timedOut) }
            switch outcome {
            case .confirmed(let button): return .answered(button == 0 ? .confirmed : .declined)
            case .declined: return .answered(.declined)
            case .timedOut: return .answered(.timedOut)
            }
        } catch let error as LinkError {
            switch error {
            case .responseTimeout: return .answered(.timedOut)
            case .disconnected, .closed: return .lost("terminal disconnected during the consent prompt")
            default:
                log.warning("consent prompt failed", metadata: ["error": "\(error)"])
                return .lost("consent prompt failed: \(error)")
            }
        } catch {
            return .lost("consent prompt failed: \(error)")
        }
    }

    /// Closes a checkout that failed (best effort: it is recovered at the next start otherwise).
    private func close(_ c: inout Checkout, reason: String, log: Logger) {
        guard !c.state.isFinal else { return }
        do {
            _ = try step(&c, .abandoned(reason: reason, at: Self.now()))
        } catch {
            log.error("cannot record the closed checkout; it will be closed at the next start", metadata: ["error": "\(error)"])
        }
    }

    private func finish(_ c: Checkout) {
        counters.withLock { $0[c.state.rawValue, default: 0] += 1 }
    }

    private func display(_ text: String) {
        do {
            _ = try port.withLink { link in
                try link.request(.displayText(text: text, seconds: settings.displaySeconds), timeout: .seconds(3))
            }
        } catch {
            logger.debug("cannot show a text on the terminal", metadata: ["error": "\(error)"])
        }
    }

    private func publish(_ c: Checkout) {
        var fields: [String: Any] = [
            "checkout_id": c.id, "state": c.state.rawValue, "final": c.state.isFinal,
            "terminal_serial": c.terminalSerial, "transaction_ref": c.payment.transactionRef,
            "amount_minor": c.payment.amountMinor, "currency": c.payment.currency, "masked_pan": c.payment.maskedPAN,
        ]
        if let r = c.history.last?.reason { fields["reason"] = r }
        if let id = c.promptRequestID { fields["request_id"] = id }
        if let id = c.applicationID { fields["application_id"] = id }
        if let m = c.method { fields["method"] = m.rawValue }
        if let t = c.consent { fields["consent"] = ["id": t.id, "version": t.version, "language": t.language, "sha256": t.sha256] }
        if let l = c.liveness { fields["liveness"] = ["decision": l.decision.rawValue, "score": l.score] }
        if let p = c.plan {
            fields["plan"] = ["instalments": p.instalments, "instalment_minor": p.instalmentMinor, "total_minor": p.totalMinor, "lender": p.lender]
        }
        bus.publish("checkout", fields)
    }

    static let messages = [
        "declined": "No instalments. Thank you!",
        "timed_out": "No answer: no instalments",
        "interrupted": "Sorry, please ask staff",
        "liveness_fail": "Face check failed: no application",
        "liveness_inconclusive": "Face check unavailable: no application",
    ]

    /// The last 8 characters of an application id, grouped for reading aloud.
    static func shortReference(_ id: String) -> String {
        let tail = String(id.replacingOccurrences(of: "-", with: "").suffix(8)).uppercased()
        return tail.prefix(4) + "-" + tail.suffix(4)
    }

    /// 129900 CNY → "1299.00 CNY" (two decimals; currencies without minor units are not offered credit).
    static func formatAmount(_ minor: Int64, currency: String) -> String {
        let sign = minor < 0 ? "-" : ""
        let m = minor.magnitude
        let cents = m % 100
        return "\(sign)\(m / 100).\(cents < 10 ? "0" : "")\(cents) \(currency)"
    }
}

/// Runs a ``CheckoutRunner`` on its own thread as a service: recovery first, then the loop until
/// graceful shutdown (the exchange in progress finishes, bounded by the group's shutdown limit).
struct CheckoutService: Service {
    let runner: CheckoutRunner
    let logger: Logger

    func run() async throws {
        let runner = self.runner
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    let thread = Thread {
                        runner.recover()
                        runner.run()
                        done.resume()
                    }
                    thread.name = "kiosk-checkout"
                    thread.start()
                }
            } onGracefulShutdown: {
                runner.requestStop()
            }
        } onCancel: {
            runner.requestStop()
        }
        logger.info("checkout loop stopped", metadata: ["outcomes": "\(runner.outcomes)"])
    }
}

extension Logger {
    /// A copy with extra metadata.
    func with(_ metadata: Logger.Metadata) -> Logger {
        var l = self
        for (k, v) in metadata { l[metadataKey: k] = v }
        return l
    }
}
