import Foundation
import KioskCentral
import KioskCore
import Synchronization
import Testing

/// The product's promise, tested on the real binaries: nothing lost, nothing duplicated.
@Suite(.serialized) struct ReliabilityTests {
    /// Applications acknowledged by the agent, and all ids ever submitted.
    final class Ledger: Sendable {
        let state = Mutex<(acked: Set<String>, submitted: Set<String>)>(([], []))
        func submitted(_ id: String) { _ = state.withLock { $0.submitted.insert(id) } }
        func acked(_ id: String) { _ = state.withLock { $0.acked.insert(id) } }
        var acked: Set<String> { state.withLock { $0.acked } }
        var submitted: Set<String> { state.withLock { $0.submitted } }
    }

    static func waitUntilDrained(_ agent: AgentProcess, central: CentralServer, expected: Set<String>, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let status = try agent.status()
            let q = status["queue"] as? [String: Any] ?? [:]
            let pending = (q["pending"] as? Int ?? 1) + (q["in_flight"] as? Int ?? 1)
            if pending == 0 {
                let ids = Set(try await central.store.all().map(\.id))
                if expected.isSubset(of: ids) { return }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("not drained in time; agent status: \(try agent.status()); log: \(agent.tail())")
    }

    static func integrityCheck(_ db: URL) throws -> String {
        let (_, out, err) = try Harness.run("/usr/bin/sqlite3", [db.path, "PRAGMA integrity_check;"])
        return (out + err).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func sigkillAtRandomMomentsLosesNothingAndDuplicatesNothing() async throws {
        let dir = try Harness.tempDir("crash")
        let device = "kiosk-e2e-0001"
        let pki = try Harness.makePKI(in: dir, devices: [device])
        let (central, port) = try await Harness.startCentral(pki: pki, dir: dir)
        let agent = try AgentProcess(dir: dir, deviceID: device, centralPort: port, pki: pki)
        let ledger = Ledger()
        var rng = SystemRandomNumberGenerator()
        let rounds = Int(ProcessInfo.processInfo.environment["KIOSK_CRASH_ROUNDS"] ?? "") ?? 20
        for _ in 0..<rounds {
            try await agent.start()
            let feeder = Task.detached {
                while !Task.isCancelled {
                    let app = CreditApplication.sample(deviceID: device)
                    ledger.submitted(app.id)
                    do {
                        if try agent.submit(app) { ledger.acked(app.id) }
                    } catch {
                        return  // the agent died under us: this submission is unacknowledged
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...700, using: &rng)))
            agent.kill9()
            feeder.cancel()
            _ = await feeder.value
        }
        try await agent.start()
        try await Self.waitUntilDrained(agent, central: central, expected: ledger.acked, timeout: .seconds(120))
        #expect(agent.terminate() == 0)

        let stored = try await central.store.all()
        let ids = stored.map(\.id)
        let acked = ledger.acked
        #expect(acked.count >= rounds, "too few acknowledged submissions to mean anything")
        #expect(Set(ids).count == ids.count, "an application is stored twice at central")
        #expect(acked.subtracting(ids).isEmpty, "acknowledged applications missing at central: \(acked.subtracting(ids).count)")
        #expect(Set(ids).subtracting(ledger.submitted).isEmpty, "central holds an application nobody submitted")
        #expect(try Self.integrityCheck(dir.appendingPathComponent("state/outbox.sqlite")) == "ok")
        print("crash test: \(rounds) SIGKILLs, \(acked.count) acknowledged, \(ids.count) at central (\(ids.count - acked.count) unacknowledged but delivered), 0 lost, 0 duplicated")
        await central.stop()
    }

    @Test func faultyCentralStillGetsEveryApplicationExactlyOnce() async throws {
        let dir = try Harness.tempDir("faults")
        let device = "kiosk-e2e-0001"
        let pki = try Harness.makePKI(in: dir, devices: [device])
        let faults = FaultConfiguration(rate: 0.35, kinds: FaultKind.allCases, seed: 20261123, slowDelay: .milliseconds(50))
        let (central, port) = try await Harness.startCentral(pki: pki, dir: dir, faults: faults)
        let agent = try AgentProcess(dir: dir, deviceID: device, centralPort: port, pki: pki)
        try await agent.start()
        let n = Int(ProcessInfo.processInfo.environment["KIOSK_FAULT_N"] ?? "") ?? 2000
        var acked = Set<String>()
        for i in 0..<n {
            let app = CreditApplication.sample(deviceID: device, amountMinor: 1000 + Int64(i))
            if try agent.submit(app) { acked.insert(app.id) }
        }
        #expect(acked.count == n, "refused: \(agent.lastSubmitError ?? "-")")
        try await Self.waitUntilDrained(agent, central: central, expected: acked, timeout: .seconds(300))
        let status = try agent.status()
        #expect(agent.terminate() == 0)
        let stored = try await central.store.all()
        let stats = try await central.store.stats()
        #expect(stored.count == n)
        #expect(Set(stored.map(\.id)) == acked)
        let sync = status["sync"] as? [String: Any] ?? [:]
        #expect((sync["failures"] as? Int ?? 0) > 0, "no fault reached the agent: the test did not test anything")
        print("fault test: \(n) applications, \(stats.faultsInjected) faults injected over \(stats.requests) requests, agent saw \(sync["failures"] ?? 0) failed attempts and \(sync["duplicates"] ?? 0) duplicates; at central \(stored.count), lost 0, duplicated 0")
        await central.stop()
    }
}
