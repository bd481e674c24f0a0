import Foundation
import Testing

/// The agent's sd_notify protocol, observed on a NOTIFY_SOCKET the test owns (as systemd would).
@Suite(.serialized) struct SystemdNotifyTests {
    /// A bound datagram socket collecting notifications.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        let fd: Int32
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8)).sock").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard rc == 0 else { throw HarnessError("bind \(path): errno \(errno)") }
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit { close(fd); unlink(path) }
        /// Messages received until `until` matches one or the deadline passes.
        func collect(for seconds: Double, until: (String) -> Bool = { _ in false }) -> [String] {
            var got: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            var buf = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline {
                let n = recv(fd, &buf, buf.count, 0)
                if n > 0 {
                    let m = String(decoding: buf[..<n], as: UTF8.self)
                    got.append(m)
                    if until(m) { break }
                }
            }
            return got
        }
    }

    @Test func readyWatchdogAndStopping() async throws {
        let dir = try Harness.tempDir("notify")
        let device = "kiosk-e2e-0001"
        let pki = try Harness.makePKI(in: dir, devices: [device])
        let (central, port) = try await Harness.startCentral(pki: pki, dir: dir)
        let agent = try AgentProcess(dir: dir, deviceID: device, centralPort: port, pki: pki)
        let notify = try NotifySocket()
        try await agent.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        let early = notify.collect(for: 5) { $0.hasPrefix("WATCHDOG=1") }
        #expect(early.first?.hasPrefix("READY=1") == true, "READY=1 must be the first notification: \(early)")
        #expect(early.contains("WATCHDOG=1"), "no watchdog ping while the sync loop runs: \(early)")
        let pings = notify.collect(for: 1.5).filter { $0 == "WATCHDOG=1" }.count
        #expect(pings >= 3, "watchdog pings should arrive every WATCHDOG_USEC/2 (got \(pings) in 1.5 s)")
        kill(agent.process!.processIdentifier, SIGTERM)
        let late = notify.collect(for: 10) { $0 == "STOPPING=1" }
        #expect(late.contains("STOPPING=1"))
        #expect(agent.terminate() == 0)
        await central.stop()
    }
}
