import Foundation
import Testing

@testable import PaymentTerminal

/// The repository's Devices/ folder (tests run from any directory).
private let devicesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/PaymentTerminalTests/this.swift
    return url.appendingPathComponent("Devices").path
}()

private let goodProfile = """
    {
      "name": "test-terminal",
      "description": "a test",
      "protocol": "kiosk-terminal-link/1",
      "usb": {
        "vendor_id": "0x1209", "product_id": 19265, "interface": 1, "alt_setting": 2,
        "in_endpoint": { "address": "0x83", "type": "interrupt" },
        "out_endpoint": { "address": 4, "type": "bulk" }
      },
      "timeouts_ms": { "ack": 250, "answer": 45000 }
    }
    """

/// `goodProfile` with one substitution applied.
private func variant(_ from: String, _ to: String) -> String {
    precondition(goodProfile.contains(from), "fixture lacks \(from)")
    return goodProfile.replacingOccurrences(of: from, with: to)
}

@Suite("Device profiles")
struct USBDeviceProfileTests {
    @Test func parsesEveryField() throws {
        let p = try DeviceProfile.parse(Data(goodProfile.utf8), source: "test.json")
        #expect(p.name == "test-terminal")
        #expect(p.description == "a test")
        #expect(p.protocolName == "kiosk-terminal-link/1")
        #expect(p.vendorID == 0x1209 && p.productID == 0x4b41)
        #expect(p.usbID == "1209:4b41")
        #expect(p.interfaceNumber == 1 && p.alternateSetting == 2)
        #expect(p.inEndpoint == .init(address: 0x83, type: .interrupt))
        #expect(p.inEndpoint.isIn && !p.outEndpoint.isIn)
        #expect(p.outEndpoint == .init(address: 0x04, type: .bulk))
        #expect(p.timeouts == .init(write: .milliseconds(1000), ack: .milliseconds(250), answer: .milliseconds(45000)))
    }

    @Test func theEmulatedTerminalProfileLoads() throws {
        let p = try DeviceProfile.load(path: devicesDirectory + "/profiles/kiosk-emulated-terminal.json")
        #expect(p.vendorID == 0x1209 && p.productID == 0x4b41)
        #expect(p.inEndpoint == .init(address: 0x81, type: .bulk))
        #expect(p.outEndpoint == .init(address: 0x02, type: .bulk))
        #expect(DeviceProfile.knownProtocols.contains(p.protocolName))
    }

    @Test func everyShippedProfileLoadsAndHasItsUdevRule() throws {
        let profiles = try DeviceProfile.loadAll(directory: devicesDirectory + "/profiles")
        #expect(!profiles.isEmpty)
        let rules = try String(contentsOfFile: devicesDirectory + "/udev/70-kiosk-agent.rules", encoding: .utf8)
        var ruleIDs: Set<String> = []
        func value(_ key: String, in line: Substring) -> Substring? {
            guard let r = line.range(of: "ATTR{\(key)}==\"") else { return nil }
            return line[r.upperBound...].prefix { $0 != "\"" }
        }
        for line in rules.split(separator: "\n") where !line.hasPrefix("#") {
            guard let v = value("idVendor", in: line), let p = value("idProduct", in: line) else { continue }
            ruleIDs.insert("\(v):\(p)")
        }
        #expect(ruleIDs == Set(profiles.map(\.usbID)), "70-kiosk-agent.rules lists \(ruleIDs.sorted()), the profiles \(profiles.map(\.usbID).sorted())")
        #expect(rules.contains(#"SYMLINK+="kiosk/terminal-%s{serial}""#))
        #expect(rules.contains(#"GROUP="kiosk-agent", MODE="0660""#))
    }

    /// Broken documents: each error names the source and the field, and says what is wrong.
    @Test(arguments: [
        ("{", "", "is not valid JSON"),
        ("[1]", "", "top level must be a JSON object"),
        (variant(#""name": "test-terminal","#, ""), "name", "is missing"),
        (variant(#""test-terminal""#, #""Test Terminal""#), "name", "lower-case"),
        (variant(#""kiosk-terminal-link/1""#, #""ecr-9000""#), "protocol", "not a protocol this build speaks"),
        (variant(#""vendor_id": "0x1209""#, #""vendor_id": "1209""#), "usb.vendor_id", "is not a number"),
        (variant(#""vendor_id": "0x1209""#, #""vendor_id": 70000"#), "usb.vendor_id", "out of range"),
        (variant(#""vendor_id": "0x1209""#, #""vendor_id": true"#), "usb.vendor_id", "expected a number"),
        (variant(#""product_id": 19265"#, #""product_id": null"#), "usb.product_id", "expected a number"),
        (variant(#""address": "0x83""#, #""address": "0x03""#), "usb.in_endpoint.address", "is an OUT endpoint"),
        (variant(#""address": 4"#, #""address": "0x84""#), "usb.out_endpoint.address", "is an IN endpoint"),
        (variant(#""address": "0x83""#, #""address": "0x80""#), "usb.in_endpoint.address", "not an endpoint address"),
        (variant(#""type": "interrupt""#, #""type": "isochronous""#), "usb.in_endpoint.type", "not bulk or interrupt"),
        (variant(#""out_endpoint": { "address": 4, "type": "bulk" }"#, #""out_endpoint": 4"#), "usb.out_endpoint", "expected an object"),
        (variant(#", "alt_setting": 2"#, #", "alt_settings": 2"#), "usb.alt_settings", "unknown field"),
        (variant(#""answer": 45000"#, #""answer": 0"#), "timeouts_ms.answer", "out of range"),
        (variant(#""ack": 250, "#, ""), "timeouts_ms.ack", "is missing"),
        (variant(#""timeouts_ms": { "ack": 250, "answer": 45000 }"#, #""timeouts_ms": 5"#), "timeouts_ms", "expected an object"),
    ])
    func brokenProfilesNameTheFieldAndTheProblem(_ document: String, field: String, message: String) {
        do {
            _ = try DeviceProfile.parse(Data(document.utf8), source: "broken.json")
            Issue.record("parsed a broken profile")
        } catch {
            #expect(error.file == "broken.json")
            #expect(error.field == field, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect("\(error)".hasPrefix("broken.json: "))
        }
    }

    @Test func fileNameMustMatchTheProfileName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("profiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("other.json").path
        try Data(goodProfile.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: DeviceProfileError(file: path, field: "name", message: "is \"test-terminal\" but the file is named other.json; name the file test-terminal.json")) {
            try DeviceProfile.load(path: path)
        }
    }

    @Test func twoProfilesForOneDeviceAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("profiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(goodProfile.utf8).write(to: dir.appendingPathComponent("test-terminal.json"))
        try Data(variant(#""test-terminal""#, #""zz-terminal""#).utf8).write(to: dir.appendingPathComponent("zz-terminal.json"))
        do {
            _ = try DeviceProfile.loadAll(directory: dir.path)
            Issue.record("two profiles for 1209:4b41 were accepted")
        } catch {
            #expect(error.file.hasSuffix("zz-terminal.json"))
            #expect(error.message == "1209:4b41 is already claimed by test-terminal.json")
        }
    }

    @Test func missingFilesSayWhich() {
        do {
            _ = try DeviceProfile.load(path: "/nonexistent/x.json")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.file == "/nonexistent/x.json")
            #expect(error.message.hasPrefix("cannot be read"))
        }
    }
}
