import Foundation
import Testing
@testable import KioskAgent

@Suite struct ProvisioningFileTests {
    @Test func setTOMLReplacesInsertsAndAppends() throws {
        let original = """
            # packaged default
            [agent]
            device_id = "kiosk-dev-0001"      # the CN
            log_level = "info"

            [outbox]
            max_rows = 10

            """
        var text = Provisioner.setTOML(original, table: "agent", key: "device_id", value: "kiosk-abc")
        text = Provisioner.setTOML(text, table: "agent", key: "merchant_id", value: "m\"1")
        text = Provisioner.setTOML(text, table: "sync", key: "url", value: "https://central.example:8443")
        var config = AgentConfig()
        try config.apply(toml: text, source: "test")
        #expect(config.deviceID == "kiosk-abc")
        #expect(config.merchantID == "m\"1")
        #expect(config.centralURL == "https://central.example:8443")
        #expect(config.logLevel == "info")
        #expect(config.outboxLimits.maxRows == 10)
        #expect(text.contains("# packaged default"))
    }

    @Test func readsAnEnrolFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("enrol-\(UUID().uuidString).env").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            # USB stick
            KIOSK_CENTRAL_URL=https://central.example:8443
            KIOSK_ENROL_TOKEN="ket_abc"

            KIOSK_SITE='mall 7'
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let values = try readEnrolEnvironment(path: path)
        #expect(values["KIOSK_CENTRAL_URL"] == "https://central.example:8443")
        #expect(values["KIOSK_ENROL_TOKEN"] == "ket_abc")
        #expect(values["KIOSK_SITE"] == "mall 7")
        try "NOT A PAIR\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ProvisionError.self) { try readEnrolEnvironment(path: path) }
    }
}
