import KioskCore
import Testing
@testable import PaymentTerminal

/// Sample messages shared by the codec and link tests.
enum Samples {
    static let payment = TerminalPayment(
        transactionRef: "TX-000123", amountMinor: 129_900, currency: "CNY", maskedPAN: "622202******1234",
        token: "tok_9f8e7d6c", approvalCode: "A1B2C3", time: "2025-11-23T10:15:00+08:00")

    static let messages: [TerminalMessage] = [
        .ping,
        .pong(TerminalInfo(serial: "SN-0042", firmware: "4.2.1", model: "KT-100")),
        .paymentResult(payment),
        .paymentResult(TerminalPayment(
            transactionRef: "r", amountMinor: Int64.max, currency: "EUR", maskedPAN: "411111XXXXXX1111",
            token: "t", approvalCode: "0", time: "2024-02-29T23:59:60.123456Z")),
        .showPrompt(Prompt(text: "Apply for credit? 申请分期？", buttons: ["Yes", "No", "Later"], timeoutSeconds: 120)),
        .showPrompt(Prompt(text: "", buttons: Array(repeating: "b", count: 255), timeoutSeconds: .max)),
        .promptResult(.confirmed(buttonIndex: 0)),
        .promptResult(.confirmed(buttonIndex: 255)),
        .promptResult(.declined),
        .promptResult(.timedOut),
        .displayText(text: "Thank you — 谢谢", seconds: 5),
        .displayText(text: "", seconds: 0),
        .displayAck,
        .statusRequest,
        .status(TerminalStatus(state: .ready, text: "")),
        .status(TerminalStatus(state: .busy, text: "transaction in progress")),
        .status(TerminalStatus(state: .error, text: "printer out of paper")),
    ]

    /// A raw TLV: tag, u16 BE length, value.
    static func tlv(_ tag: UInt8, _ value: [UInt8]) -> [UInt8] {
        [tag, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
    }

    /// A raw payload header: type, u32 BE request id.
    static func header(_ type: UInt8, _ id: UInt32) -> [UInt8] {
        [type, UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)]
    }

    /// A payment result payload without the encoder's checks (to build refused messages).
    static func unchecked(_ p: TerminalPayment, id: UInt32 = 7) throws -> [UInt8] {
        try MessageCodec.encode(TerminalEnvelope(requestID: id, message: .paymentResult(p)), validate: false)
    }
}

@Suite struct CodecMessageTests {
    @Test(arguments: Samples.messages)
    func everyMessageRoundTrips(_ message: TerminalMessage) throws {
        for id: UInt32 in [0, 1, 0x0102_0304, .max] {
            let e = TerminalEnvelope(requestID: id, message: message)
            let bytes = try MessageCodec.encode(e)
            #expect(bytes[0] == message.type.rawValue)
            #expect(Array(bytes[1...4]) == [UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)])
            #expect(try MessageCodec.decode(bytes) == e)
            // Framed and deframed too.
            var d = FrameDecoder()
            #expect(d.feed(try FrameCodec.encode(payload: bytes)) == [.frame(bytes)])
        }
    }

    @Test func everyMessageTypeIsSampled() {
        #expect(Set(Samples.messages.map(\.type)) == Set(MessageType.allCases))
        for t in MessageType.allCases {
            if let r = t.responseType { #expect(r.rawValue == t.rawValue | 0x80 && r.isResponse) }
        }
    }

    @Test func wireLayoutIsBigEndianTLV() throws {
        let text = try MessageCodec.encode(TerminalEnvelope(requestID: 0x0102_0304, message: .displayText(text: "Hi", seconds: 0x0105)))
        #expect(text == [0x30, 0x01, 0x02, 0x03, 0x04, 0x01, 0x00, 0x02, 0x48, 0x69, 0x02, 0x00, 0x02, 0x01, 0x05])

        var p = Samples.payment
        p.amountMinor = 0x0102_0304_0506_0708
        let bytes = try MessageCodec.encode(TerminalEnvelope(requestID: 9, message: .paymentResult(p)))
        let amountTLV: [UInt8] = [0x02, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]
        #expect(bytes.indices.contains { Array(bytes[$0...].prefix(11)) == amountTLV })

        let confirmed = try MessageCodec.encode(TerminalEnvelope(requestID: 1, message: .promptResult(.confirmed(buttonIndex: 2))))
        #expect(confirmed == [0xA0, 0, 0, 0, 1, 0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x02])
    }

    /// The byte examples of Devices/terminal-protocol.md §5.
    @Test func documentedExamples() throws {
        func hexBytes(_ s: String) -> [UInt8] { s.split(whereSeparator: \.isWhitespace).compactMap { UInt8($0, radix: 16) } }
        func frame(_ id: UInt32, _ m: TerminalMessage) throws -> [UInt8] {
            try FrameCodec.encode(payload: MessageCodec.encode(TerminalEnvelope(requestID: id, message: m)))
        }
        #expect(try frame(42, .ping) == hexBytes("02 00 05 01 00 00 00 2A 03 2D"))
        #expect(try frame(42, .pong(TerminalInfo(serial: "SN1", firmware: "1.0", model: "KT")))
            == hexBytes("02 00 16 81 00 00 00 2A 01 00 03 53 4E 31 02 00 03 31 2E 30 03 00 02 4B 54 03 A0"))
        let payment = TerminalPayment(
            transactionRef: "TX1", amountMinor: 129_900, currency: "CNY", maskedPAN: "622202******1234",
            token: "tok", approvalCode: "A1B2C3", time: "2025-11-23T10:15:00+08:00")
        #expect(try frame(0x8000_0001, .paymentResult(payment)) == hexBytes("""
            02 00 5A 10 80 00 00 01 01 00 03 54 58 31 02 00 08 00 00 00 00 00 01 FB 6C 03 00 03 43 4E 59
            04 00 10 36 32 32 32 30 32 2A 2A 2A 2A 2A 2A 31 32 33 34 05 00 03 74 6F 6B 06 00 06 41 31 42 32 43 33
            07 00 19 32 30 32 35 2D 31 31 2D 32 33 54 31 30 3A 31 35 3A 30 30 2B 30 38 3A 30 30 03 7D
            """))
    }

    @Test func unknownTagsAreSkipped() throws {
        let payload = Samples.header(0x30, 5) + Samples.tlv(0x7F, [1, 2, 3]) + Samples.tlv(0x01, Array("ok".utf8))
            + Samples.tlv(0xEE, []) + Samples.tlv(0x02, [0x00, 0x03]) + Samples.tlv(0x99, Array(repeating: 0xFF, count: 300))
        #expect(try MessageCodec.decode(payload) == TerminalEnvelope(requestID: 5, message: .displayText(text: "ok", seconds: 3)))
        // Unknown tags in a message without fields are skipped as well.
        #expect(try MessageCodec.decode(Samples.header(0x01, 6) + Samples.tlv(0x42, [0])) == TerminalEnvelope(requestID: 6, message: .ping))
    }

    @Test func buttonsKeepTheirOrder() throws {
        let payload = Samples.header(0x20, 1) + Samples.tlv(0x02, Array("b".utf8)) + Samples.tlv(0x01, Array("q".utf8))
            + Samples.tlv(0x02, Array("a".utf8)) + Samples.tlv(0x03, [0, 9]) + Samples.tlv(0x02, Array("c".utf8))
        #expect(try MessageCodec.decode(payload).message == .showPrompt(Prompt(text: "q", buttons: ["b", "a", "c"], timeoutSeconds: 9)))
    }

    @Test func duplicateAndMissingFieldsAreErrors() {
        let dup = Samples.header(0x30, 1) + Samples.tlv(0x01, [0x41]) + Samples.tlv(0x02, [0, 1]) + Samples.tlv(0x01, [0x42])
        #expect(throws: MessageError.duplicateField(type: .displayText, field: "text")) { try MessageCodec.decode(dup) }
        let missing = Samples.header(0x30, 1) + Samples.tlv(0x01, [0x41])
        #expect(throws: MessageError.missingField(type: .displayText, field: "seconds")) { try MessageCodec.decode(missing) }
        let noButtons = Samples.header(0x20, 1) + Samples.tlv(0x01, [0x41]) + Samples.tlv(0x03, [0, 1])
        #expect(throws: MessageError.invalidValue(type: .showPrompt, field: "button", reason: "count 0 outside 1...255")) {
            try MessageCodec.decode(noButtons)
        }
        let pongMissingModel = Samples.header(0x81, 1) + Samples.tlv(0x01, [0x41]) + Samples.tlv(0x02, [0x41])
        #expect(throws: MessageError.missingField(type: .pong, field: "model")) { try MessageCodec.decode(pongMissingModel) }
    }

    @Test func malformedPayloadsAreTypedErrors() {
        #expect(throws: MessageError.truncatedHeader(length: 0)) { try MessageCodec.decode([]) }
        #expect(throws: MessageError.truncatedHeader(length: 4)) { try MessageCodec.decode([0x01, 0, 0, 0]) }
        #expect(throws: MessageError.unknownType(0x55)) { try MessageCodec.decode(Samples.header(0x55, 1)) }
        #expect(throws: MessageError.truncatedField(type: .displayText, tag: 0x01)) {
            try MessageCodec.decode(Samples.header(0x30, 1) + [0x01, 0x00, 0x05, 0x41])
        }
        #expect(throws: MessageError.truncatedField(type: .ping, tag: 0x09)) { try MessageCodec.decode(Samples.header(0x01, 1) + [0x09, 0x00]) }
        #expect(throws: MessageError.badFieldLength(type: .displayText, field: "seconds", expected: 2, actual: 3)) {
            try MessageCodec.decode(Samples.header(0x30, 1) + Samples.tlv(0x01, []) + Samples.tlv(0x02, [0, 0, 1]))
        }
        #expect(throws: MessageError.invalidUTF8(type: .displayText, field: "text")) {
            try MessageCodec.decode(Samples.header(0x30, 1) + Samples.tlv(0x01, [0x41, 0xC3, 0x28]) + Samples.tlv(0x02, [0, 1]))
        }
        #expect(throws: MessageError.invalidUTF8(type: .showPrompt, field: "button")) {
            try MessageCodec.decode(Samples.header(0x20, 1) + Samples.tlv(0x01, []) + Samples.tlv(0x02, [0xED, 0xA0, 0x80]) + Samples.tlv(0x03, [0, 1]))
        }
        #expect(throws: MessageError.invalidValue(type: .status, field: "state", reason: "is not 0, 1 or 2")) {
            try MessageCodec.decode(Samples.header(0xC0, 1) + Samples.tlv(0x01, [3]) + Samples.tlv(0x02, []))
        }
        #expect(throws: MessageError.payloadTooLarge(4097)) { try MessageCodec.decode(Samples.header(0x01, 1) + Array(repeating: 0, count: 4092)) }
    }

    @Test func promptResultCombinations() {
        func result(_ fields: [UInt8]) throws -> TerminalMessage { try MessageCodec.decode(Samples.header(0xA0, 3) + fields).message }
        #expect(throws: MessageError.missingField(type: .promptResult, field: "button_index")) { try result(Samples.tlv(1, [0])) }
        #expect(throws: MessageError.invalidValue(type: .promptResult, field: "button_index", reason: "present although the outcome is not confirmed")) {
            try result(Samples.tlv(1, [1]) + Samples.tlv(2, [0]))
        }
        #expect(throws: MessageError.invalidValue(type: .promptResult, field: "outcome", reason: "is not 0, 1 or 2")) { try result(Samples.tlv(1, [7])) }
        #expect(throws: MessageError.missingField(type: .promptResult, field: "outcome")) { try result([]) }
    }

    @Test func paymentFieldRules() throws {
        func refused(_ change: (inout TerminalPayment) -> Void) throws -> MessageError? {
            var p = Samples.payment
            change(&p)
            do {
                _ = try MessageCodec.decode(try Samples.unchecked(p))
                return nil
            } catch let error as MessageError {
                // Encoding with checks refuses the same message with the same error.
                #expect(throws: error) { try MessageCodec.encode(TerminalEnvelope(requestID: 7, message: .paymentResult(p))) }
                return error
            }
        }
        #expect(try refused { $0.currency = "cny" } == .invalidValue(type: .paymentResult, field: "currency", reason: "is not an ISO 4217 code (3 uppercase letters)"))
        #expect(try refused { $0.currency = "CNYY" } != nil)
        // A negative amount cannot be encoded; its bit pattern on the wire is above 2^63-1.
        var negative = Samples.payment
        negative.amountMinor = -1
        #expect(throws: MessageError.invalidValue(type: .paymentResult, field: "amount_minor", reason: "is negative")) {
            try MessageCodec.encode(TerminalEnvelope(requestID: 1, message: .paymentResult(negative)))
        }
        #expect(throws: MessageError.invalidValue(type: .paymentResult, field: "amount_minor", reason: "exceeds 2^63-1")) {
            try MessageCodec.decode(try Samples.unchecked(negative))
        }
        #expect(try refused { $0.token = "" } == .invalidValue(type: .paymentResult, field: "token", reason: "is empty"))
        #expect(try refused { $0.time = "2025-02-29T10:00:00Z" } == .invalidValue(type: .paymentResult, field: "time", reason: "is not an RFC 3339 date-time"))
        #expect(try refused { $0.time = "yesterday" } != nil)
        #expect(try refused { $0.amountMinor = 0 } == nil)

        // u64 above Int64.max on the wire.
        var payload = try Samples.unchecked(Samples.payment)
        let at = try #require(payload.indices.first { Array(payload[$0...].prefix(3)) == [0x02, 0x00, 0x08] })
        payload[at + 3] = 0x80
        #expect(throws: MessageError.invalidValue(type: .paymentResult, field: "amount_minor", reason: "exceeds 2^63-1")) { try MessageCodec.decode(payload) }
    }

    @Test(arguments: [
        ("2025-11-23T10:15:00Z", true), ("2025-11-23t10:15:00z", true), ("2025-11-23T10:15:00.5+08:00", true),
        ("2024-02-29T00:00:00-00:00", true), ("1990-12-31T23:59:60Z", true),
        ("2025-11-23 10:15:00Z", false), ("2025-13-01T00:00:00Z", false), ("2025-11-31T00:00:00Z", false),
        ("2025-11-23T24:00:00Z", false), ("2025-11-23T10:15:00", false), ("2025-11-23T10:15:00.Z", false),
        ("2025-11-23T10:15:00+0800", false), ("2025-11-23T10:15:00+24:00", false), ("2025-11-23T10:15:00Zx", false),
    ])
    func rfc3339(_ text: String, _ valid: Bool) {
        #expect(RFC3339.isValid(text) == valid)
    }

    @Test func paymentMapsToKioskCorePayment() {
        #expect(Samples.payment.payment() == Payment(
            transactionRef: "TX-000123", amountMinor: 129_900, currency: "CNY", maskedPAN: "622202******1234",
            terminalToken: "tok_9f8e7d6c", approvalCode: "A1B2C3"))
    }

    @Test func encodeRefusesOversizedMessages() {
        #expect(throws: MessageError.payloadTooLarge(5 + 3 + 4200 + 5)) {
            try MessageCodec.encode(TerminalEnvelope(requestID: 1, message: .displayText(text: String(repeating: "x", count: 4200), seconds: 1)))
        }
        let largest = TerminalEnvelope(requestID: 1, message: .displayText(text: String(repeating: "x", count: 4096 - 13), seconds: 1))
        #expect((try? MessageCodec.encode(largest))?.count == 4096)
    }
}

@Suite struct CodecPCITests {
    static let pans = ["4111111111111111", "4111 1111 1111 1111", "5555555555554444", "378282246310005", "6221261111113245"]

    /// Every way of writing an error down must be free of the full PAN.
    func expectNoPAN(_ error: MessageError, _ pan: String) {
        let digits = pan.filter(\.isNumber)
        for text in [String(describing: error), "\(error)", String(reflecting: error), LinkError.refused(error, requestID: 1).description] {
            #expect(!PCIGuard.containsFullPAN(text), "\(text)")
            #expect(!text.contains(digits))
            #expect(!text.contains(pan))
        }
    }

    @Test(arguments: pans)
    func fullPANInAnyPaymentFieldIsRefused(_ pan: String) throws {
        let fields: [(String, WritableKeyPath<TerminalPayment, String>)] = [
            ("masked_pan", \.maskedPAN), ("token", \.token), ("approval_code", \.approvalCode), ("transaction_ref", \.transactionRef),
        ]
        for (name, path) in fields {
            var p = Samples.payment
            p[keyPath: path] = name == "masked_pan" ? pan : "x \(pan) y"
            let payload = try Samples.unchecked(p)
            let error = try #require(throws: MessageError.self) { try MessageCodec.decode(payload) }
            guard case .pciViolation(let v) = error else {
                Issue.record("expected a PCI violation for \(name), got \(error)")
                continue
            }
            #expect(error.isPCIRefusal)
            #expect(v.kind == .fullPAN)
            #expect(v.path == "payment_result.\(name)")
            let digits = pan.filter(\.isNumber)
            #expect(v.maskedValue.filter(\.isNumber) == String(digits.prefix(6)) + String(digits.suffix(4)))
            expectNoPAN(error, pan)
            // The encoder refuses it too (the kiosk never sends card data either).
            #expect(throws: MessageError.self) { try MessageCodec.encode(TerminalEnvelope(requestID: 1, message: .paymentResult(p))) }
        }
    }

    @Test func fullPANInOtherMessagesIsRefused() throws {
        let pan = "4111111111111111"
        let messages: [TerminalMessage] = [
            .pong(TerminalInfo(serial: pan, firmware: "1", model: "m")),
            .showPrompt(Prompt(text: "ok", buttons: ["a", "card \(pan)"], timeoutSeconds: 1)),
            .displayText(text: pan, seconds: 1),
            .status(TerminalStatus(state: .error, text: "bad card \(pan)")),
        ]
        for m in messages {
            let payload = try MessageCodec.encode(TerminalEnvelope(requestID: 1, message: m), validate: false)
            let error = try #require(throws: MessageError.self) { try MessageCodec.decode(payload) }
            #expect(error.isPCIRefusal, "\(m.type)")
            expectNoPAN(error, pan)
        }
    }

    @Test func trackDataIsRefused() throws {
        for track in ["%B4111111111111111^DOE/JOHN^2512101", ";4111111111111111=25121010000000000?"] {
            var p = Samples.payment
            p.token = track
            let error = try #require(throws: MessageError.self) { try MessageCodec.decode(try Samples.unchecked(p)) }
            guard case .pciViolation(let v) = error else {
                Issue.record("expected a PCI violation, got \(error)")
                continue
            }
            #expect(v.kind == .trackData)
            expectNoPAN(error, "4111111111111111")
            // Neither expiry, service code, discretionary data nor the name are shown.
            let text = String(describing: error)
            #expect(text.contains("411111******1111"))
            #expect(!text.contains("2512") && !text.contains("DOE"), "\(text)")
        }
    }

    @Test(arguments: ["4111111*****1111", "411111******11111", "41111111111*1111", "4111111111111111X", "4111111111"])
    func maskedPANRevealingTooMuchIsRefused(_ masked: String) throws {
        var p = Samples.payment
        p.maskedPAN = masked
        let error = try #require(throws: MessageError.self) { try MessageCodec.decode(try Samples.unchecked(p)) }
        #expect(error.isPCIRefusal)
        let text = String(describing: error)
        #expect(!text.contains(masked))
        // Whatever is shown has at most 6 + 4 digits in clear.
        #expect(text.filter(\.isNumber).count <= 10 + "6 4".filter(\.isNumber).count)
    }

    @Test(arguments: ["622202******1234", "411111XXXXXX1111", "4111********", "************1234"])
    func acceptableMaskedPANsPass(_ masked: String) throws {
        var p = Samples.payment
        p.maskedPAN = masked
        #expect(try MessageCodec.decode(try Samples.unchecked(p)).message == .paymentResult(p))
    }

    @Test func unknownTagsAreNotScanned() throws {
        // An unknown tag's value is skipped unread: it is neither stored nor put into an error.
        let payload = try Samples.unchecked(Samples.payment) + Samples.tlv(0x70, Array("4111111111111111".utf8))
        #expect(try MessageCodec.decode(payload).message == .paymentResult(Samples.payment))
    }
}
