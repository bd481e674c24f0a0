import Foundation
import Testing
@testable import KioskAgent

@Suite struct TOMLTests {
    @Test func parsesTheSubset() throws {
        let doc = try TOMLParser.parse("""
        # comment
        top = "x"
        [sync]
        url = "https://c:8443" # trailing comment
        timeout_ms = 15_000
        ratio = 0.5
        on = true
        list = ["a", 'b\\c', 3]
        "quoted key" = "\\u00e9\\n"
        """)
        #expect(doc["top"]?.value == .string("x"))
        #expect(doc["sync.url"]?.value == .string("https://c:8443"))
        #expect(doc["sync.url"]?.line == 4)
        #expect(doc["sync.timeout_ms"]?.value == .integer(15000))
        #expect(doc["sync.ratio"]?.value == .float(0.5))
        #expect(doc["sync.on"]?.value == .boolean(true))
        #expect(doc["sync.list"]?.value == .array([.string("a"), .string("b\\c"), .integer(3)]))
        #expect(doc["sync.quoted key"]?.value == .string("é\n"))
    }

    @Test(arguments: [
        ("a = ", 1), ("[t]\nk = bare", 2), ("k = \"open", 1), ("k = 1\nk = 2", 2), ("[[t]]", 1), ("k = 1 2", 1),
    ])
    func errorsCarryTheLine(_ input: String, _ line: Int) {
        #expect { try TOMLParser.parse(input) } throws: { ($0 as? TOMLError)?.line == line }
    }
}

@Suite struct AgentConfigTests {
    func load(_ text: String, env: [String: String] = [:]) throws -> AgentConfig {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString).toml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        return try AgentConfig.load(path: url.path, environment: env)
    }

    @Test func shippedDefaultConfigLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Provisioning/agent.toml").path
        let c = try AgentConfig.load(path: path, environment: [:])
        #expect(c.controlSocket == "/run/kiosk-agent/control.sock")
        #expect(!c.allowSubmit)
    }

    @Test func valuesAndEnvironmentOverrides() throws {
        let c = try load("""
        [agent]
        device_id = "kiosk-7"
        [sync]
        url = "https://central:8443"
        batch_size = 50
        """, env: ["KIOSK_AGENT_SYNC_BATCH_SIZE": "25", "KIOSK_AGENT_CONTROL_ALLOW_SUBMIT": "true", "PATH": "/bin"])
        #expect(c.deviceID == "kiosk-7")
        #expect(c.batchSize == 25)
        #expect(c.allowSubmit)
        #expect(c.syncConfiguration.centralURL == "https://central:8443")
    }

    @Test func unknownKeyNamesKeyAndLineAndSuggests() {
        #expect {
            try load("[agent]\ndevice_id = \"k\"\n[sync]\nurll = \"https://x\"\n")
        } throws: { e in
            guard let e = e as? ConfigError else { return false }
            return e.line == 4 && e.key == "sync.urll" && e.description.contains("did you mean sync.url")
        }
    }

    @Test func badValuesAreClearErrors() {
        #expect { try load("[sync]\nbatch_size = \"ten\"\n") } throws: {
            ($0 as? ConfigError)?.description.contains("sync.batch_size: expected integer, got string") == true
        }
        #expect { try load("[sync]\nbatch_size = 0\n") } throws: { ($0 as? ConfigError)?.message.contains("out of range") == true }
        #expect { try load("[sync]\nurl = \"http://plain\"\n") } throws: { ($0 as? ConfigError)?.key == "sync.url" }
        #expect { try load("[agent]\nlog_level = \"loud\"\n") } throws: { ($0 as? ConfigError)?.key == "agent.log_level" }
        #expect { try load("", env: ["KIOSK_AGENT_SYNC_TIMEOUT_MS": "soon"]) } throws: { ($0 as? ConfigError)?.source == "environment" }
        #expect { try load("", env: ["KIOSK_AGENT_NOPE": "1"]) } throws: { ($0 as? ConfigError)?.message == "unknown override" }
    }

    @Test func worldReadableKeyIsRefused() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString).pem")
        try "secret".write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        chmod(url.path, 0o644)
        #expect(throws: ConfigError.self) { try AgentDaemon.refuseWorldReadable(url.path) }
        chmod(url.path, 0o600)
        try AgentDaemon.refuseWorldReadable(url.path)
    }
}

@Suite struct SystemdNotifierTests {
    @Test func sendsDatagramsToNotifySocket() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd); unlink(path) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(rc == 0)
        let n = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        #expect(n.isEnabled)
        n.ready(status: "ok")
        var buf = [UInt8](repeating: 0, count: 256)
        let got = recv(fd, &buf, buf.count, 0)
        #expect(String(decoding: buf[..<max(got, 0)], as: UTF8.self) == "READY=1\nSTATUS=ok")
        #expect(!SystemdNotifier(environment: [:]).send("READY=1"))
    }

    @Test func watchdogIntervalHonoursPID() {
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"]) == .seconds(30))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]) == nil)
    }
}
