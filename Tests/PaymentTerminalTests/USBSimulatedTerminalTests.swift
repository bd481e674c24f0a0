import KioskCore
import Logging
import Testing

@testable import PaymentTerminal

/// Every scenario of the scripted terminal, through a real TerminalLink on the agent's side over
/// the in-memory cable: the same agent-side checks the VM test runs over USB.
@Suite("Simulated terminal scenarios")
struct USBSimulatedTerminalTests {
    let logger = Logger(label: "test.sim-terminal")

    private func run(_ scenario: TerminalScenario, options: TerminalScenarioOptions = .init()) throws -> (summary: String, terminal: SimulatedTerminal) {
        let terminal = try SimulatedTerminal(scenario: scenario, options: options, logger: logger)
        let link = TerminalLink(transport: terminal.hostTransport, configuration: LinkConfiguration(), logger: logger)
        defer { link.close() }
        let summary = try TerminalScenarioCheck.run(scenario, options: options, link: link, answerTimeout: .seconds(5), noAnswerTimeout: .milliseconds(400))
        return (summary, terminal)
    }

    @Test(arguments: TerminalScenario.allCases)
    func scenarioBehavesAsSpecified(_ scenario: TerminalScenario) throws {
        let (summary, terminal) = try run(scenario)
        defer { terminal.stop() }
        #expect(summary.hasPrefix(scenario.rawValue))
    }

    /// Regression (chaos campaign): a terminal session that failed (its ACKs lost) used to leave
    /// the simulated terminal silent for good; a new session now follows and the payments go on.
    @Test func aFailedSessionIsFollowedByANewOne() throws {
        let logger = Logger(label: "test.sim-restart")
        let terminal = try SimulatedTerminal(scenario: .payConfirm, options: TerminalScenarioOptions(payments: 1, paymentInterval: .milliseconds(10)),
                                             logger: logger)
        defer { terminal.stop() }
        let link = TerminalLink(transport: terminal.hostTransport, configuration: LinkConfiguration(), logger: logger)
        defer { link.close() }
        // Every ACK the kiosk sends for the terminal's first frames is lost: the terminal's PONG
        // fails after its retransmissions and its session ends.
        terminal.hostTransport.dropNextControls(LinkConfiguration().maxRetransmissions + 1)
        _ = try? link.request(.ping, timeout: .seconds(3))
        var payment: TerminalEnvelope?
        // The new session goes on paying without waiting for the kiosk to make contact again.
        for _ in 0..<10 where payment == nil {
            payment = try? link.receive(timeout: .seconds(1))
        }
        #expect(terminal.sessionRestarts >= 1)
        guard case .paymentResult? = payment?.message else {
            Issue.record("no payment after the failed session: \(String(describing: payment)); transcript \(terminal.transcript.suffix(5))")
            return
        }
    }

    /// Regression (clean-clone make test): a payment whose send failed (the cable pulled, here its
    /// ACKs lost) was counted as played and never paid again; the next session now pays it again.
    @Test func aPaymentWhoseSendFailedIsPaidAgainInTheNextSession() throws {
        let logger = Logger(label: "test.sim-resend")
        let terminal = try SimulatedTerminal(scenario: .payConfirm, options: TerminalScenarioOptions(payments: 1, paymentInterval: .milliseconds(300)),
                                             logger: logger)
        defer { terminal.stop() }
        let link = TerminalLink(transport: terminal.hostTransport, configuration: LinkConfiguration(), logger: logger)
        defer { link.close() }
        _ = try link.request(.ping, timeout: .seconds(3))  // contact: the terminal pays 300 ms later
        // Every ACK for the payment's frame is lost: its send fails after the retransmissions.
        terminal.hostTransport.dropNextControls(LinkConfiguration().maxRetransmissions + 1)
        for _ in 0..<20 where !terminal.transcript.contains(where: { $0.hasPrefix("sent PAYMENT_RESULT") }) {
            _ = try? link.receive(timeout: .milliseconds(500))
        }
        let transcript = terminal.transcript
        #expect(transcript.contains { $0.hasPrefix("payment 1: PAYMENT_RESULT not delivered") }, "\(transcript.suffix(8))")
        #expect(transcript.filter { $0.hasPrefix("sent PAYMENT_RESULT") }.count == 1, "\(transcript.suffix(8))")
        #expect(terminal.player.paymentsSent == 1)
        #expect(terminal.sessionRestarts >= 1)
    }

    /// Regression (chaos campaign): payment 1012's ref once held 14 digits passing Luhn, the PCI
    /// guard refused the emulated terminal's own message and the run stalled.
    @Test func emulatedTransactionRefsNeverLookLikeAPAN() {
        for n in [1, 999, 1012, 99_999, 1_000_000] + Array(1000...6000) {
            let ref = TerminalScenarioPlayer.transactionRef(payment: n)
            #expect(!PCIGuard.containsFullPAN(ref), "\(ref)")
        }
    }

    @Test func payConfirmPlaysEveryPayment() throws {
        let options = TerminalScenarioOptions(payments: 3, paymentInterval: .milliseconds(10))
        let (summary, terminal) = try run(.payConfirm, options: options)
        defer { terminal.stop() }
        #expect(summary.contains("3 payment(s)"))
        #expect(terminal.player.paymentsSent == 3)
        #expect(terminal.transcript.filter { $0.hasPrefix("answered SHOW_PROMPT") }.count == 3)
    }

    @Test func garbageReallyPutsBytesOnTheLine() throws {
        let (_, terminal) = try run(.garbage, options: TerminalScenarioOptions(payments: 2, paymentInterval: .milliseconds(10)))
        defer { terminal.stop() }
        #expect(terminal.transcript.contains { $0.contains("garbage bytes") })
    }

    @Test func unplugCutsTheCable() throws {
        let (_, terminal) = try run(.unplugMidExchange)
        defer { terminal.stop() }
        #expect(throws: TransportError.disconnected) { try terminal.hostTransport.write([0x06], timeout: .milliseconds(10)) }
        #expect(terminal.transcript.contains { $0.contains("UNPLUG") })
    }

    @Test func fullPANNeverReachesTheAgentInClear() throws {
        let terminal = try SimulatedTerminal(scenario: .fullPAN, logger: logger)
        defer { terminal.stop() }
        let link = TerminalLink(transport: terminal.hostTransport, configuration: LinkConfiguration(), logger: logger)
        defer { link.close() }
        _ = try link.request(.ping, timeout: .seconds(5))
        let error = #expect(throws: LinkError.self) { _ = try link.receive(timeout: .seconds(5)) }
        guard case .refused(let refusal, _)? = error else {
            Issue.record("expected a refusal, got \(String(describing: error))")
            return
        }
        #expect(refusal.isPCIRefusal)
        #expect(!"\(refusal)".contains(TerminalScenarioOptions.testFullPAN))
    }

    @Test func promptDelayIsHonoured() throws {
        let options = TerminalScenarioOptions(promptDelay: .milliseconds(150))
        let terminal = try SimulatedTerminal(scenario: .echo, options: options, logger: logger)
        defer { terminal.stop() }
        let link = TerminalLink(transport: terminal.hostTransport, configuration: LinkConfiguration(), logger: logger)
        defer { link.close() }
        let clock = ContinuousClock()
        let start = clock.now
        let answer = try link.request(.showPrompt(TerminalScenarioCheck.creditPrompt), timeout: .seconds(5))
        #expect(answer.message == .promptResult(.confirmed(buttonIndex: 0)))
        #expect(clock.now - start >= .milliseconds(150))
    }

    @Test func scenarioNamesMatchTheEmulatorsCommandLine() {
        #expect(TerminalScenario.allCases.map(\.rawValue).sorted()
            == ["echo", "full-pan", "garbage", "mixed", "no-answer", "pay-confirm", "pay-decline", "screen", "unplug-mid-exchange"])
    }
}
