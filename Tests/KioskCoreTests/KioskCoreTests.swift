import Foundation
import Testing
@testable import KioskCore

@Suite struct ApplicationIDTests {
    @Test func idsAreUUIDv7AndTimeOrdered() {
        var previous = ""
        for ms in stride(from: UInt64(1_700_000_000_000), to: 1_700_000_000_100, by: 7) {
            var rng = SystemRandomNumberGenerator()
            let id = ApplicationID.make(millis: ms, using: &rng)
            #expect(id.count == 36)
            #expect(Array(id)[14] == "7")
            #expect(ApplicationID.isValid(id))
            #expect(id > previous)
            previous = id
        }
    }

    @Test func idsAreUnique() {
        let ids = (0..<10_000).map { _ in ApplicationID.make() }
        #expect(Set(ids).count == ids.count)
    }

    @Test(arguments: ["", String(repeating: "a", count: 65), "a b", "x/y", "é"])
    func invalidIDs(_ s: String) { #expect(!ApplicationID.isValid(s)) }
}

@Suite struct CanonicalJSONTests {
    @Test func encodingIsStableAndSorted() throws {
        let app = CreditApplication.sample(id: "0190aaaa-0000-7000-8000-000000000001", now: Date(timeIntervalSince1970: 1_763_900_000))
        let a = try app.canonicalPayload()
        let b = try CanonicalJSON.encode(try CanonicalJSON.decode(CreditApplication.self, from: a))
        #expect(a == b)
        let text = String(decoding: a, as: UTF8.self)
        #expect(text.hasPrefix("{\"authorization\":{"))
        #expect(!text.contains(" "))
        #expect(text.contains("\"schema_version\":1"))
        #expect(text.contains("\"amount_minor\":129900"))
    }

    @Test func validationNamesTheField() {
        var app = CreditApplication.sample()
        app.payment.currency = "yuan"
        #expect(throws: ApplicationValidationError(field: "payment.currency", reason: "must be an ISO 4217 code such as CNY")) {
            try app.canonicalPayload()
        }
        app = .sample()
        app.payment.maskedPAN = "6222021234561234"
        #expect(throws: ApplicationValidationError.self) { try app.canonicalPayload() }
        app = .sample()
        app.liveness.score = .nan
        #expect(throws: ApplicationValidationError.self) { try app.canonicalPayload() }
    }
}

@Suite struct PCIGuardTests {
    static let pans = ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "6221261111113245", "5555555555554444"]

    @Test(arguments: pans)
    func fullPANAnywhereIsRefused(_ pan: String) throws {
        var app = CreditApplication.sample()
        app.payment.terminalToken = "tok \(pan) end"
        do {
            _ = try app.canonicalPayload()
            Issue.record("a full PAN passed the guard")
        } catch let v as PCIViolation {
            #expect(v.kind == .fullPAN)
            #expect(v.path == "payment.terminal_token")
            let digits = pan.filter(\.isNumber)
            #expect(!v.description.contains(digits))
            #expect(!v.maskedValue.filter(\.isNumber).contains(digits))
            #expect(v.maskedValue.filter(\.isNumber).hasPrefix(String(digits.prefix(6))))
            #expect(v.maskedValue.filter(\.isNumber).hasSuffix(String(digits.suffix(4))))
        }
    }

    @Test func trackDataIsRefused() {
        #expect(PCIGuard.containsTrackData(";4111111111111111=25121010000000000000?"))
        #expect(PCIGuard.containsTrackData("%B4111111111111111^DOE/JOHN^2512101"))
        var app = CreditApplication.sample()
        app.payment.approvalCode = ";4111111111111111=2512"
        #expect(throws: PCIViolation.self) { try app.canonicalPayload() }
    }

    @Test func luhnFailuresAndShortRunsPass() throws {
        #expect(!PCIGuard.containsFullPAN("4111111111111112"))
        #expect(!PCIGuard.containsFullPAN("123456789012"))  // 12 digits
        #expect(!PCIGuard.containsFullPAN("622202******1234"))
        var app = CreditApplication.sample()
        app.payment.transactionRef = "TX-4111111111111112"
        _ = try app.canonicalPayload()
    }

    @Test func uuidsNeverTripTheGuard() throws {
        // Regression: a UUIDv7 whose dash-separated digit groups passed Luhn was refused as a PAN.
        #expect(!PCIGuard.containsFullPAN("01a209c5-2150-7123-8124-95f46ddde131"))
        #expect(!PCIGuard.containsFullPAN("01a209c5-2150-7123-8124-951234567890"))
        for _ in 0..<20_000 {
            let id = ApplicationID.make()
            #expect(!PCIGuard.containsFullPAN(id), "\(id)")
        }
        // A PAN next to a UUID is still found.
        #expect(PCIGuard.containsFullPAN("01a209c5-2150-7123-8124-95f46ddde131 4111111111111111"))
    }

    @Test func keyIdsAndHashesNeverTripTheGuard() throws {
        // Regression: a device key id (16 hex characters) holding a Luhn-valid digit run made
        // the guard refuse every authorization that key signed (seen in CI: "4cb416193…6617").
        #expect(!PCIGuard.containsFullPAN("c4111111111111111"))
        #expect(!PCIGuard.containsFullPAN(#"{"key_id":"4111111111111111ab"}"#))
        var rng = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef")
        for _ in 0..<20_000 {
            var id = String((0..<16).map { _ in hex[Int.random(in: 0..<16, using: &rng)] })
            if id.allSatisfy(\.isNumber) { id.removeLast(); id.append("a") }
            #expect(!PCIGuard.containsFullPAN(id), "\(id)")
        }
        // A PAN printed as a number, or glued to a non-hex word, is still found.
        #expect(PCIGuard.containsFullPAN("key 4cb4161930046617 pan 4111111111111111"))
        #expect(PCIGuard.containsFullPAN("pan=4111111111111111"))
    }

    @Test func cardGroupingsAreRecognisedOtherGroupingsAreNot() {
        #expect(PCIGuard.containsFullPAN("3782 822463 10005"))  // Amex 4-6-5
        #expect(PCIGuard.containsFullPAN("tok4111111111111111"))  // glued to letters
        #expect(!PCIGuard.containsFullPAN("41-11111111111111"))  // not a card grouping: 2 + 14 digits
    }

    @Test func numbersAreNotScanned() throws {
        // 13–19 digit integers (timestamps) are numbers, not strings: they must not trip the guard.
        try PCIGuard.check(json: Data("{\"wall_clock_ms\":4111111111111111}".utf8))
    }

    @Test func masking() {
        #expect(PANMask.mask("4111111111111111") == "411111******1111")
        #expect(PANMask.maskAll(in: "card 4111 1111 1111 1111 ok") == "card 4111 11** **** 1111 ok")
        #expect(PANMask.isAcceptableMaskedPAN("622202******1234"))
        #expect(PANMask.isAcceptableMaskedPAN("************1234"))
        #expect(!PANMask.isAcceptableMaskedPAN("6222021******234"))  // 7 leading digits
        #expect(!PANMask.isAcceptableMaskedPAN("622202*12*****34"))  // digits inside the mask
    }
}
