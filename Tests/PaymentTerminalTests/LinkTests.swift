import Foundation
import KioskCore
import Logging
import Synchronization
import Testing
@testable import PaymentTerminal

// MARK: - Support

/// Runs blocking link calls on a dedicated thread, off Swift's cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
        }
        thread.start()
    }
}

/// Runs a blocking call off the pool and returns the `LinkError` it threw (`nil` if none).
func linkError(_ body: @escaping @Sendable () throws -> Void) async -> LinkError? {
    do {
        try await offPool(body)
        return nil
    } catch let e as LinkError {
        return e
    } catch {
        Issue.record("expected a LinkError, got \(error)")
        return nil
    }
}

/// Every log line, for checking what reaches the logs.
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in CapturingLogHandler(capture: self) }
    }
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.lines.withLock { $0.append("\(event.level) \(event.message) \(event.metadata ?? [:])") }
    }
}

/// A kiosk link and a terminal link over one simulated cable.
struct LinkPair: Sendable {
    let kiosk: TerminalLink
    let terminal: TerminalLink
    let kioskEnd: SimulatedTransport
    let terminalEnd: SimulatedTransport
    let logs = LogCapture()

    init(_ configuration: LinkConfiguration = .init()) {
        let (k, t) = SimulatedTransport.pair()
        kioskEnd = k
        terminalEnd = t
        kiosk = TerminalLink(transport: k, configuration: configuration, logger: logs.logger("kiosk"))
        terminal = TerminalLink(transport: t, configuration: configuration, logger: logs.logger("terminal"))
    }

    func close() {
        kiosk.close()
        terminal.close()
    }

    /// Answers the kiosk's requests on a thread until the terminal link is closed.
    func respond(_ answer: @escaping @Sendable (TerminalEnvelope) -> TerminalMessage?) {
        let terminal = self.terminal
        Thread {
            while true {
                do {
                    guard let e = try terminal.receive(timeout: .milliseconds(200)) else { continue }
                    if let m = answer(e) { try terminal.send(TerminalEnvelope(requestID: e.requestID, message: m)) }
                } catch LinkError.closed {
                    return
                } catch {
                    continue
                }
            }
        }.start()
    }
}

let info = TerminalInfo(serial: "SN-1", firmware: "1.0.0", model: "KT-100")

/// A 1 s ACK timeout: on a loaded 2-core CI machine a 300 ms ACK can be late, which would add a
/// retransmission to tests that count frames. Tests about the timeout itself measure it.
let patient = LinkConfiguration(ackTimeout: .seconds(1))

// MARK: - Tests

@Suite(.serialized) struct LinkTests {
    @Test func defaultsAreTheProtocols() {
        let c = LinkConfiguration()
        #expect(c.ackTimeout == .milliseconds(300))
        #expect(c.maxRetransmissions == 3)
        #expect(c.interByteTimeout < c.ackTimeout)
    }

    @Test func requestGetsItsResponse() async throws {
        let pair = LinkPair(patient)
        defer { pair.close() }
        pair.respond { e in e.message == .ping ? .pong(info) : .status(TerminalStatus(state: .ready, text: "ok")) }
        let a = try await offPool { try pair.kiosk.request(.ping, timeout: .seconds(10)) }
        let b = try await offPool { try pair.kiosk.request(.statusRequest, timeout: .seconds(10)) }
        #expect(a.message == .pong(info))
        #expect(b.message == .status(TerminalStatus(state: .ready, text: "ok")))
        #expect(a.requestID &+ 1 == b.requestID)
        #expect(pair.kioskEnd.framesWritten == 2)
        #expect(pair.terminalEnd.framesWritten == 2)
        #expect(pair.terminalEnd.acksWritten == 2)
        #expect(pair.kioskEnd.acksWritten == 2)
        #expect(pair.kioskEnd.naksWritten == 0)
    }

    @Test func requestIDsAreUniqueAndStartWhereConfigured() {
        let (k, _) = SimulatedTransport.pair()
        let link = TerminalLink(transport: k, configuration: LinkConfiguration(firstRequestID: .max), logger: Logger(label: "t"))
        defer { link.close() }
        #expect([link.nextRequestID(), link.nextRequestID(), link.nextRequestID()] == [.max, 0, 1])
        let random = TerminalLink(transport: SimulatedTransport.pair().0, logger: Logger(label: "t"))
        defer { random.close() }
        let ids = (0..<1000).map { _ in random.nextRequestID() }
        #expect(Set(ids).count == 1000)
    }

    @Test func twoDroppedFramesAreDeliveredOnTheThirdTransmission() async throws {
        let pair = LinkPair(patient)
        defer { pair.close() }
        let e = TerminalEnvelope(requestID: 77, message: .displayText(text: "hello", seconds: 3))
        pair.kioskEnd.dropNextFrames(2)
        let start = ContinuousClock.now
        try await offPool { try pair.kiosk.send(e) }
        #expect(start.duration(to: .now) >= .seconds(2), "two ACK timeouts")
        #expect(pair.kioskEnd.framesWritten == 3)
        #expect(pair.kioskEnd.framesDropped == 2)
        #expect(try await offPool { try pair.terminal.receive(timeout: .seconds(2)) } == e)
        #expect(try await offPool { try pair.terminal.receive(timeout: .milliseconds(300)) } == nil)
    }

    @Test func fourDroppedFramesFailAfterThreeRetransmissions() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        let e = TerminalEnvelope(requestID: 78, message: .displayText(text: "hello", seconds: 3))
        pair.kioskEnd.dropNextFrames(4)
        let start = ContinuousClock.now
        let error = await linkError { try pair.kiosk.send(e) }
        #expect(error == .noAck(type: .displayText, requestID: 78, attempts: 4))
        #expect(start.duration(to: .now) >= .milliseconds(1200), "four ACK timeouts of the default 300 ms")
        #expect(pair.kioskEnd.framesWritten == 4)
        #expect(try await offPool { try pair.terminal.receive(timeout: .milliseconds(300)) } == nil)
        // The link survives: the next frame goes through.
        try await offPool { try pair.kiosk.send(e) }
        #expect(try await offPool { try pair.terminal.receive(timeout: .seconds(2)) } == e)
    }

    @Test func nakTriggersRetransmissionWithoutWaitingForTheTimeout() async throws {
        let pair = LinkPair(LinkConfiguration(ackTimeout: .seconds(3)))
        defer { pair.close() }
        let e = TerminalEnvelope(requestID: 5, message: .statusRequest)
        pair.kioskEnd.corruptNextFrames(2)
        let start = ContinuousClock.now
        try await offPool { try pair.kiosk.send(e) }
        #expect(start.duration(to: .now) < .seconds(3), "NAK, not the ACK timeout, drove both retransmissions")
        #expect(pair.terminalEnd.naksWritten == 2)
        #expect(pair.kioskEnd.framesWritten == 3)
        #expect(try await offPool { try pair.terminal.receive(timeout: .seconds(2)) } == e)
    }

    @Test func lateResponseIsDiscardedNotGivenToTheNextRequest() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        // The terminal sits on the first request, answers it only after the second arrived, then
        // answers the second.
        async let script: Void = offPool {
            guard let first = try pair.terminal.receive(timeout: .seconds(10)),
                  let second = try pair.terminal.receive(timeout: .seconds(10))
            else { throw LinkError.closed }
            try pair.terminal.send(TerminalEnvelope(requestID: first.requestID, message: .status(TerminalStatus(state: .busy, text: "late"))))
            try pair.terminal.send(TerminalEnvelope(requestID: second.requestID, message: .status(TerminalStatus(state: .ready, text: "fresh"))))
        }
        let timedOut = await linkError { _ = try pair.kiosk.request(.statusRequest, timeout: .milliseconds(300)) }
        guard case .responseTimeout(.statusRequest, let firstID)? = timedOut else {
            Issue.record("expected a response timeout, got \(String(describing: timedOut))")
            return
        }
        let answer = try await offPool { try pair.kiosk.request(.statusRequest, timeout: .seconds(10)) }
        try await script
        #expect(answer.requestID == firstID &+ 1)
        #expect(answer.message == .status(TerminalStatus(state: .ready, text: "fresh")))
        // The late answer was ACKed (the terminal's send succeeded) but reaches nobody.
        #expect(try await offPool { try pair.kiosk.receive(timeout: .milliseconds(300)) } == nil)
        #expect(pair.logs.all.contains { $0.contains("late or unknown response") && $0.contains("\(firstID)") })
    }

    @Test func retransmittedPaymentResultIsDeliveredOnce() async throws {
        let pair = LinkPair(patient)
        defer { pair.close() }
        let e = TerminalEnvelope(requestID: 0xDEAD_BEEF, message: .paymentResult(Samples.payment))
        pair.kioskEnd.dropNextControls(1)  // the kiosk's ACK is lost: the terminal retransmits
        try await offPool { try pair.terminal.send(e) }
        #expect(pair.terminalEnd.framesWritten == 2)
        #expect(pair.kioskEnd.acksWritten == 2, "the duplicate is ACKed again")
        #expect(try await offPool { try pair.kiosk.receive(timeout: .seconds(2)) } == e)
        #expect(try await offPool { try pair.kiosk.receive(timeout: .milliseconds(500)) } == nil)
        #expect(e.message.type == .paymentResult)
        if case .paymentResult(let p) = e.message { #expect(p.payment().maskedPAN == "622202******1234") }
    }

    @Test func paymentResultWithFullPANIsAckedThenRefused() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        let pan = "4111111111111111"
        var p = Samples.payment
        p.token = "tok-\(pan)"
        pair.terminalEnd.injectToPeer(try FrameCodec.encode(payload: Samples.unchecked(p, id: 900)))
        let error = await linkError { _ = try pair.kiosk.receive(timeout: .seconds(2)) }
        guard case .refused(let m, let id)? = error else {
            Issue.record("expected a refusal, got \(String(describing: error))")
            return
        }
        #expect(m.isPCIRefusal)
        #expect(id == 900)
        #expect(pair.kioskEnd.acksWritten == 1, "received intact, so ACKed at link level")
        #expect(pair.kioskEnd.naksWritten == 0)
        let text = String(describing: error)
        #expect(text.contains("411111******1111"))
        #expect(!PCIGuard.containsFullPAN(text))
        // Nothing with the PAN reached the logs, even at trace level.
        let logs = pair.logs.all
        #expect(logs.contains { $0.contains("refused") })
        #expect(!logs.contains { PCIGuard.containsFullPAN($0) || $0.contains(pan) })
        // The refusal is reported once; a clean payment after it is delivered.
        let clean = TerminalEnvelope(requestID: 901, message: .paymentResult(Samples.payment))
        try await offPool { try pair.terminal.send(clean) }
        #expect(try await offPool { try pair.kiosk.receive(timeout: .seconds(2)) } == clean)
    }

    @Test func refusedResponseFailsItsRequest() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        async let script: Void = offPool {
            guard let ping = try pair.terminal.receive(timeout: .seconds(10)) else { throw LinkError.closed }
            let pong = TerminalEnvelope(requestID: ping.requestID, message: .pong(TerminalInfo(serial: "4111111111111111", firmware: "1", model: "m")))
            pair.terminalEnd.injectToPeer(try FrameCodec.encode(payload: MessageCodec.encode(pong, validate: false)))
        }
        let error = await linkError { _ = try pair.kiosk.request(.ping, timeout: .seconds(10)) }
        try await script
        guard case .refused(let m, _)? = error else {
            Issue.record("expected a refusal, got \(String(describing: error))")
            return
        }
        #expect(m.isPCIRefusal)
    }

    @Test func wrongResponseTypeAndNonRequestsAreErrors() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        pair.respond { _ in .displayAck }
        let error = await linkError { _ = try pair.kiosk.request(.ping, timeout: .seconds(10)) }
        guard case .unexpectedResponse(_, .pong, .displayAck)? = error else {
            Issue.record("expected an unexpected response, got \(String(describing: error))")
            return
        }
        #expect(await linkError { _ = try pair.kiosk.request(.displayAck, timeout: .seconds(1)) } == .notARequest(.displayAck))
        #expect(await linkError { _ = try pair.kiosk.request(.paymentResult(Samples.payment), timeout: .seconds(1)) } == .notARequest(.paymentResult))
        #expect(pair.kioskEnd.framesWritten == 1)
    }

    @Test func unplugFailsPendingAndLaterCallsWithDisconnected() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        // Nobody answers: the request waits for its response until the cable is cut.
        async let pending = linkError { _ = try pair.kiosk.request(.statusRequest, timeout: .seconds(30)) }
        async let waiting = linkError { _ = try pair.kiosk.receive(timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(500))
        pair.kioskEnd.unplug()
        #expect(await pending == .disconnected)
        #expect(await waiting == .disconnected)
        #expect(await linkError { try pair.kiosk.send(TerminalEnvelope(requestID: 1, message: .ping)) } == .disconnected)
        #expect(await linkError { _ = try pair.kiosk.request(.ping, timeout: .seconds(1)) } == .disconnected)
        // The terminal still hands out what it received before the cut, then reports it.
        #expect(try await offPool { try pair.terminal.receive(timeout: .seconds(5)) }?.message == .statusRequest)
        #expect(await linkError { _ = try pair.terminal.receive(timeout: .seconds(5)) } == .disconnected)
        #expect(!pair.kiosk.isOpen)
    }

    @Test func messagesReceivedBeforeUnplugAreStillDelivered() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        let e = TerminalEnvelope(requestID: 3, message: .paymentResult(Samples.payment))
        try await offPool { try pair.terminal.send(e) }
        pair.kioskEnd.unplug()
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await offPool { try pair.kiosk.receive(timeout: .seconds(1)) } == e)
        #expect(await linkError { _ = try pair.kiosk.receive(timeout: .seconds(1)) } == .disconnected)
    }

    @Test func closeWakesWaitersWithClosed() async throws {
        let pair = LinkPair()
        async let waiting = linkError { _ = try pair.kiosk.receive(timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(200))
        pair.kiosk.close()
        #expect(await waiting == .closed)
        #expect(await linkError { try pair.kiosk.send(TerminalEnvelope(requestID: 1, message: .ping)) } == .closed)
        pair.close()
    }

    @Test func truncatedFrameIsNAKedAfterTheInterByteTimeout() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        let frame = try FrameCodec.encode(payload: MessageCodec.encode(TerminalEnvelope(requestID: 1, message: .displayAck)))
        pair.terminalEnd.injectToPeer(Array(frame.prefix(6)))
        try await Task.sleep(for: .milliseconds(600))
        #expect(pair.kioskEnd.naksWritten == 1)
        #expect(pair.kioskEnd.acksWritten == 0)
        pair.respond { _ in .pong(info) }
        #expect(try await offPool { try pair.kiosk.request(.ping, timeout: .seconds(10)) }.message == .pong(info))
    }

    @Test func noiseAndByteByByteDeliveryDoNotBreakExchanges() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        pair.kioskEnd.setReadChunkLimit(1)
        pair.terminalEnd.setReadChunkLimit(1)
        pair.respond { e in
            guard case .displayText(let text, _) = e.message else { return nil }
            return text.isEmpty ? nil : .displayAck
        }
        var rng = SplitMix64(seed: 7)
        for round in 0..<5 {
            let noise = (0..<200).map { _ in UInt8.random(in: 0...255, using: &rng) }
            pair.kioskEnd.injectToPeer(noise)
            pair.terminalEnd.injectToPeer(noise.reversed())
            // Let both readers chew through the noise (a stray STX ends in a NAK after the inter-byte timeout).
            try await Task.sleep(for: .milliseconds(500))
            let r = try await offPool { try pair.kiosk.request(.displayText(text: "round \(round)", seconds: 1), timeout: .seconds(10)) }
            #expect(r.message == .displayAck)
        }
    }

    @Test func concurrentRequestsEachGetTheirOwnAnswer() async throws {
        let pair = LinkPair()
        defer { pair.close() }
        pair.respond { e in
            guard case .showPrompt(let p) = e.message else { return nil }
            return .promptResult(.confirmed(buttonIndex: UInt8(p.buttons.count - 1)))
        }
        let mismatches = try await offPool {
            let bad = Mutex(0)
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                for k in 0..<8 {
                    let buttons = (0...(worker * 8 + k)).map { "b\($0)" }
                    do {
                        let r = try pair.kiosk.request(.showPrompt(Prompt(text: "w\(worker)", buttons: buttons, timeoutSeconds: 30)), timeout: .seconds(20))
                        if r.message != .promptResult(.confirmed(buttonIndex: UInt8(buttons.count - 1))) { bad.withLock { $0 += 1 } }
                    } catch {
                        bad.withLock { $0 += 1 }
                    }
                }
            }
            return bad.withLock { $0 }
        }
        #expect(mismatches == 0)
        #expect(pair.kioskEnd.framesWritten >= 32)
    }

    @Test func fullInboundQueueNAKsUntilDrained() async throws {
        let pair = LinkPair(LinkConfiguration(ackTimeout: .seconds(1), maxPendingInbound: 2))
        defer { pair.close() }
        @Sendable func payment(_ id: UInt32) -> TerminalEnvelope { TerminalEnvelope(requestID: id, message: .paymentResult(Samples.payment)) }
        try await offPool { try pair.terminal.send(payment(1)) }
        try await offPool { try pair.terminal.send(payment(2)) }
        #expect(await linkError { try pair.terminal.send(payment(3)) } == .noAck(type: .paymentResult, requestID: 3, attempts: 4))
        #expect(pair.kioskEnd.naksWritten == 4)
        #expect(try await offPool { try pair.kiosk.receive(timeout: .seconds(1)) } == payment(1))
        try await offPool { try pair.terminal.send(payment(3)) }
        #expect(try await offPool { try pair.kiosk.receive(timeout: .seconds(1)) } == payment(2))
        #expect(try await offPool { try pair.kiosk.receive(timeout: .seconds(1)) } == payment(3))
    }
}
