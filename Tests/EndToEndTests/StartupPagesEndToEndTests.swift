import Foundation
import KioskCore
import Testing

/// The real agent gives back the pages only its start-up touched (`StartupPages`), once after
/// initialisation and once its services are up, and goes on working on what it maps again.
@Suite(.serialized) struct StartupPagesEndToEndTests {
    /// The `kib=` of the "released start-up pages" line logged after `phase`, if any.
    static func releasedKiB(after phase: String, in log: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains("released start-up pages") && line.contains("after=\(phase)") {
            guard let range = line.range(of: #"kib=\d+"#, options: .regularExpression) else { continue }
            return Int(line[range].dropFirst(4))
        }
        return nil
    }

    @Test func theAgentReleasesItsStartUpPagesAndKeepsWorking() async throws {
        let dir = try Harness.tempDir("startup-pages")
        let device = "kiosk-e2e-0001"
        let pki = try Harness.makePKI(in: dir, devices: [device])
        let (central, port) = try await Harness.startCentral(pki: pki, dir: dir)
        let agent = try AgentProcess(dir: dir, deviceID: device, centralPort: port, pki: pki)
        try await agent.start()
        var log = ""
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            log = (try? String(contentsOf: agent.logPath, encoding: .utf8)) ?? ""
            if Self.releasedKiB(after: "\"services started\"", in: log) != nil { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect((Self.releasedKiB(after: "initialisation", in: log) ?? 0) > 0, "log: \(agent.tail())")
        #expect(Self.releasedKiB(after: "\"services started\"", in: log) != nil, "log: \(agent.tail())")
        #expect(!log.contains("start-up pages not released"), "log: \(agent.tail())")

        // With its start-up pages gone, the agent still queues and delivers.
        var acked = Set<String>()
        for i in 0..<3 {
            let app = CreditApplication.sample(deviceID: device, amountMinor: 4200 + Int64(i))
            if try agent.submit(app) { acked.insert(app.id) }
        }
        #expect(acked.count == 3, "refused: \(agent.lastSubmitError ?? "-")")
        try await ReliabilityTests.waitUntilDrained(agent, central: central, expected: acked, timeout: .seconds(60))
        #expect(agent.terminate() == 0)
        await central.stop()
    }
}
