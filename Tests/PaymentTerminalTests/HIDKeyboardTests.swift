import Foundation
import Testing
@testable import PaymentTerminal

/// Keyboard-wedge decoding of HID scanner reports, per layout, and the scanner profiles.
@Suite struct HIDKeyboardTests {
    static let samples: [String] = ["281234567890123456", "https://pay.example/q?c=AbZ-19_x", "Kiosk 42!"]

    static func decode(_ reports: [[UInt8]], layout: KeyboardLayout, maxLength: Int = 512) throws -> [HIDScanEvent] {
        var d = HIDKeyboardDecoder(layout: layout, maxLength: maxLength)
        var out: [HIDScanEvent] = []
        for r in reports { out += try d.feed(r) }
        return out
    }

    @Test(arguments: KeyboardLayout.allCases)
    func whatALayoutTypesDecodesBackWithTheSameLayout(_ layout: KeyboardLayout) throws {
        for text in Self.samples {
            guard let reports = HIDKeyboardDecoder.reports(typing: text, layout: layout) else {
                Issue.record("\(layout) cannot type \(text)")
                continue
            }
            #expect(try Self.decode(reports, layout: layout) == [.code(text)], "\(layout): \(text)")
        }
    }

    @Test func aFrenchScannerShiftsItsDigitsAndAUSReadingOfItIsWrong() throws {
        let fr = try #require(HIDKeyboardDecoder.reports(typing: "1234", layout: .fr))
        #expect(fr[0] == [0x02, 0, 0x1E, 0, 0, 0, 0, 0])
        #expect(try Self.decode(fr, layout: .us) == [.code("!@#$")])
        let us = try #require(HIDKeyboardDecoder.reports(typing: "1234", layout: .us))
        #expect(try Self.decode(us, layout: .fr) == [.code("&é\"'")])
        let de = try #require(HIDKeyboardDecoder.reports(typing: "zy", layout: .de))
        #expect(try Self.decode(de, layout: .us) == [.code("yz")])
    }

    @Test func aHeldKeyTypesOnceAndRolloverIsIgnored() throws {
        let reports: [[UInt8]] = [
            [0, 0, 0x1E, 0, 0, 0, 0, 0],   // 1 down
            [0, 0, 0x1E, 0, 0, 0, 0, 0],   // still down
            [0, 0, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],  // ErrorRollOver
            [0, 0, 0x1E, 0x1F, 0, 0, 0, 0],  // 2 down too
            [0, 0, 0x1F, 0, 0, 0, 0, 0],   // 1 up
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0x1E, 0, 0, 0, 0, 0],   // 1 again
            [0, 0, 0x2B, 0, 0, 0, 0, 0],   // Tab ends the code
        ]
        #expect(try Self.decode(reports, layout: .us) == [.code("121")])
    }

    @Test func backspaceUnknownKeysAndEmptyCodes() throws {
        var d = HIDKeyboardDecoder(layout: .us)
        #expect(try d.feed([0, 0, 0x28, 0, 0, 0, 0, 0]).isEmpty)  // Enter with nothing typed
        _ = try d.feed([0, 0, 0x04, 0, 0, 0, 0, 0])  // a
        _ = try d.feed([0, 0, 0x3A, 0, 0, 0, 0, 0])  // F1: types nothing
        _ = try d.feed([0, 0, 0x05, 0, 0, 0, 0, 0])  // b
        _ = try d.feed([0, 0, 0x2A, 0, 0, 0, 0, 0])  // Backspace
        _ = try d.feed([0x20, 0, 0x06, 0, 0, 0, 0, 0])  // right Shift + c
        #expect(try d.feed([0, 0, 0x58, 0, 0, 0, 0, 0]) == [.code("aC")])  // keypad Enter
        #expect(d.unknownKeys == 1)
    }

    @Test func anOverlongCodeIsDiscardedWholeAndTheNextOneIsRead() throws {
        let long = try #require(HIDKeyboardDecoder.reports(typing: "12345678", layout: .us))
        let short = try #require(HIDKeyboardDecoder.reports(typing: "99", layout: .us))
        #expect(try Self.decode(long + short, layout: .us, maxLength: 5) == [.overflow(length: 8), .code("99")])
    }

    @Test func malformedReportsAreRefusedAndReportIDsStripped() throws {
        var d = HIDKeyboardDecoder(layout: .us)
        #expect(throws: HIDReportError(length: 3)) { try d.feed([0, 0, 4]) }
        #expect(throws: HIDReportError(length: 9)) { try d.feed([1, 0, 0, 4, 0, 0, 0, 0, 0]) }
        var withID = HIDKeyboardDecoder(layout: .us, hasReportID: true)
        _ = try withID.feed([1, 0, 0, 0x04, 0, 0, 0, 0, 0])
        #expect(withID.flush() == .code("a"))
        #expect(withID.flush() == nil)
    }

    @Test func maskedCodesKeepNoMoreThanTwoCharacters() {
        let m = HIDKeyboardDecoder.masked("281234567890123456")
        #expect(m == "18 chars …56")
        #expect(!m.contains("2812"))
    }

    @Test func theShippedScannerProfileLoadsAndBrokenOnesNameTheField() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Devices/scanners")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".json") {
            let p = try ScannerProfile.load(path: dir.appendingPathComponent(name).path)
            #expect(p.name + ".json" == name)
        }
        let base = #"{"name": "s", "kind": "hid-keyboard-scanner", "usb": {"vendor_id": "0x1209", "product_id": 1}"#
        let cases: [(String, String)] = [
            (base + #", "layout": "dvorak"}"#, "layout"),
            (base + #", "colour": "red"}"#, "colour"),
            (#"{"name": "s", "kind": "camera", "usb": {"vendor_id": 1, "product_id": 1}}"#, "kind"),
            (#"{"name": "s", "kind": "hid-keyboard-scanner", "usb": {"vendor_id": 1, "product_id": 1, "in_endpoint": "0x02"}}"#, "usb.in_endpoint"),
        ]
        for (doc, field) in cases {
            #expect { try ScannerProfile.parse(Data(doc.utf8), source: "t.json") } throws: { ($0 as? DeviceProfileError)?.field == field }
        }
        #expect(try ScannerProfile.parse(Data((base + "}").utf8), source: "t.json").layout == .us)
    }
}
