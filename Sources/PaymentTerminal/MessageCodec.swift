// Message codec: payload = type (u8) | request_id (u32 BE) | TLV fields, each
// tag (u8) | len (u16 BE) | value. Big-endian, byte by byte (no unaligned loads).

// Without KioskCore, this file builds into the standalone fuzzer (Devices/fuzz-terminal.sh) with
// KioskCore/PCIGuard.swift beside it.
#if canImport(KioskCore)
import KioskCore
#endif

/// Why a payload could not be decoded, or a message could not be encoded.
///
/// Descriptions never carry raw field values: PCI refusals show the value masked, other errors
/// name the message type and field only.
public enum MessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The payload is shorter than the 5-byte header (type, request id).
    case truncatedHeader(length: Int)
    /// The payload (or an encoded message) exceeds ``FrameCodec/maxPayload`` bytes.
    case payloadTooLarge(Int)
    /// The type byte names no message of this protocol version.
    case unknownType(UInt8)
    /// A TLV's header or value runs past the end of the payload.
    case truncatedField(type: MessageType, tag: UInt8)
    /// A field that may appear once appeared twice.
    case duplicateField(type: MessageType, field: String)
    /// A required field is absent.
    case missingField(type: MessageType, field: String)
    /// A fixed-size field has the wrong length.
    case badFieldLength(type: MessageType, field: String, expected: Int, actual: Int)
    /// A string field is not valid UTF-8.
    case invalidUTF8(type: MessageType, field: String)
    /// A field's value is out of range or malformed (the value itself is not shown).
    case invalidValue(type: MessageType, field: String, reason: String)
    /// A field value is longer than a TLV can carry (65535 bytes).
    case fieldTooLong(type: MessageType, field: String, length: Int)
    /// PCI refusal: a string field holds a full PAN or track data (the value is masked).
    case pciViolation(PCIViolation)
    /// PCI refusal: the masked PAN shows more than the first 6 and last 4 digits (shown re-masked).
    case unacceptableMaskedPAN(field: String, masked: String)

    /// Whether this is a PCI refusal (the message carried card data it must not).
    public var isPCIRefusal: Bool {
        switch self {
        case .pciViolation, .unacceptableMaskedPAN: true
        default: false
        }
    }

    /// A message naming what failed; card data appears masked only.
    public var description: String {
        switch self {
        case .truncatedHeader(let n): "message header truncated (\(n) of 5 bytes)"
        case .payloadTooLarge(let n): "message payload of \(n) bytes exceeds \(FrameCodec.maxPayload)"
        case .unknownType(let t): "unknown message type 0x\(hex(t))"
        case .truncatedField(let t, let tag): "\(t): field with tag 0x\(hex(tag)) runs past the end of the payload"
        case .duplicateField(let t, let f): "\(t): duplicate field \(f)"
        case .missingField(let t, let f): "\(t): missing required field \(f)"
        case .badFieldLength(let t, let f, let e, let a): "\(t): field \(f) has \(a) bytes, expected \(e)"
        case .invalidUTF8(let t, let f): "\(t): field \(f) is not valid UTF-8"
        case .invalidValue(let t, let f, let r): "\(t): field \(f) \(r)"
        case .fieldTooLong(let t, let f, let n): "\(t): field \(f) of \(n) bytes exceeds 65535"
        case .pciViolation(let v): "PCI: message \(v.description)"
        case .unacceptableMaskedPAN(let f, let m): "PCI: refused: masked PAN in field \(f) shows more than the first 6 and last 4 digits (\(m))"
        }
    }
}

/// Field tags, per message type (tags are scoped to their message type).
public enum FieldTag {
    /// PONG: serial number (string).
    public static let pongSerial: UInt8 = 0x01
    /// PONG: firmware version (string).
    public static let pongFirmware: UInt8 = 0x02
    /// PONG: model (string).
    public static let pongModel: UInt8 = 0x03
    /// PAYMENT_RESULT: transaction reference (string).
    public static let paymentTransactionRef: UInt8 = 0x01
    /// PAYMENT_RESULT: amount in minor units (u64 BE).
    public static let paymentAmountMinor: UInt8 = 0x02
    /// PAYMENT_RESULT: ISO 4217 currency (string, 3 uppercase letters).
    public static let paymentCurrency: UInt8 = 0x03
    /// PAYMENT_RESULT: masked PAN (string).
    public static let paymentMaskedPAN: UInt8 = 0x04
    /// PAYMENT_RESULT: card token (string).
    public static let paymentToken: UInt8 = 0x05
    /// PAYMENT_RESULT: approval code (string).
    public static let paymentApprovalCode: UInt8 = 0x06
    /// PAYMENT_RESULT: completion time, RFC 3339 (string).
    public static let paymentTime: UInt8 = 0x07
    /// SHOW_PROMPT: question text (string).
    public static let promptText: UInt8 = 0x01
    /// SHOW_PROMPT: one button label (string; repeatable, in display order).
    public static let promptButton: UInt8 = 0x02
    /// SHOW_PROMPT: timeout in seconds (u16 BE).
    public static let promptTimeout: UInt8 = 0x03
    /// PROMPT_RESULT: outcome (u8: 0 confirmed, 1 declined, 2 timed out).
    public static let resultOutcome: UInt8 = 0x01
    /// PROMPT_RESULT: pressed button's index (u8; present iff confirmed).
    public static let resultButtonIndex: UInt8 = 0x02
    /// DISPLAY_TEXT: text (string).
    public static let displayText: UInt8 = 0x01
    /// DISPLAY_TEXT: seconds to show it (u16 BE; 0 = until replaced).
    public static let displaySeconds: UInt8 = 0x02
    /// STATUS: state (u8: 0 ready, 1 busy, 2 error).
    public static let statusState: UInt8 = 0x01
    /// STATUS: detail text (string, may be empty).
    public static let statusText: UInt8 = 0x02
}

/// Encodes and decodes message payloads.
public enum MessageCodec {
    /// Bytes before the fields: type (1) and request id (4).
    public static let headerLength = 5

    /// Encodes an envelope into a frame payload; refuses card data and invalid fields like `decode`.
    public static func encode(_ e: TerminalEnvelope) throws(MessageError) -> [UInt8] {
        try encode(e, validate: true)
    }

    /// Encodes without validation when `validate` is false (tests build refused payloads with it).
    static func encode(_ e: TerminalEnvelope, validate: Bool) throws(MessageError) -> [UInt8] {
        if validate { try Validation.check(e.message) }
        var w = PayloadWriter(type: e.message.type, requestID: e.requestID)
        switch e.message {
        case .ping, .displayAck, .statusRequest:
            break
        case .pong(let info):
            try w.string(FieldTag.pongSerial, "serial", info.serial)
            try w.string(FieldTag.pongFirmware, "firmware", info.firmware)
            try w.string(FieldTag.pongModel, "model", info.model)
        case .paymentResult(let p):
            try w.string(FieldTag.paymentTransactionRef, "transaction_ref", p.transactionRef)
            try w.u64(FieldTag.paymentAmountMinor, UInt64(bitPattern: p.amountMinor))
            try w.string(FieldTag.paymentCurrency, "currency", p.currency)
            try w.string(FieldTag.paymentMaskedPAN, "masked_pan", p.maskedPAN)
            try w.string(FieldTag.paymentToken, "token", p.token)
            try w.string(FieldTag.paymentApprovalCode, "approval_code", p.approvalCode)
            try w.string(FieldTag.paymentTime, "time", p.time)
        case .showPrompt(let prompt):
            try w.string(FieldTag.promptText, "text", prompt.text)
            for b in prompt.buttons { try w.string(FieldTag.promptButton, "button", b) }
            try w.u16(FieldTag.promptTimeout, prompt.timeoutSeconds)
        case .promptResult(let outcome):
            switch outcome {
            case .confirmed(let index):
                try w.u8(FieldTag.resultOutcome, 0)
                try w.u8(FieldTag.resultButtonIndex, index)
            case .declined:
                try w.u8(FieldTag.resultOutcome, 1)
            case .timedOut:
                try w.u8(FieldTag.resultOutcome, 2)
            }
        case .displayText(let text, let seconds):
            try w.string(FieldTag.displayText, "text", text)
            try w.u16(FieldTag.displaySeconds, seconds)
        case .status(let s):
            try w.u8(FieldTag.statusState, s.state.rawValue)
            try w.string(FieldTag.statusText, "text", s.text)
        }
        guard w.bytes.count <= FrameCodec.maxPayload else { throw .payloadTooLarge(w.bytes.count) }
        return w.bytes
    }

    /// The type byte and request id of a payload, without decoding (or checking) the fields.
    public static func header(of payload: [UInt8]) -> (type: UInt8, requestID: UInt32)? {
        guard payload.count >= headerLength else { return nil }
        return (payload[0], readU32(payload, at: 1))
    }

    /// Decodes a frame payload. Throws ``MessageError``; card data is refused (``MessageError/isPCIRefusal``).
    public static func decode(_ payload: [UInt8]) throws(MessageError) -> TerminalEnvelope {
        guard payload.count <= FrameCodec.maxPayload else { throw .payloadTooLarge(payload.count) }
        guard payload.count >= headerLength else { throw .truncatedHeader(length: payload.count) }
        guard let type = MessageType(rawValue: payload[0]) else { throw .unknownType(payload[0]) }
        let requestID = readU32(payload, at: 1)
        let f = try FieldReader(type: type, payload: payload)
        let message: TerminalMessage
        switch type {
        case .ping: message = .ping
        case .displayAck: message = .displayAck
        case .statusRequest: message = .statusRequest
        case .pong:
            message = .pong(TerminalInfo(
                serial: try f.string(FieldTag.pongSerial, "serial"),
                firmware: try f.string(FieldTag.pongFirmware, "firmware"),
                model: try f.string(FieldTag.pongModel, "model")))
        case .paymentResult:
            let amount = try f.u64(FieldTag.paymentAmountMinor, "amount_minor")
            guard amount <= UInt64(Int64.max) else {
                throw .invalidValue(type: type, field: "amount_minor", reason: "exceeds 2^63-1")
            }
            message = .paymentResult(TerminalPayment(
                transactionRef: try f.string(FieldTag.paymentTransactionRef, "transaction_ref"),
                amountMinor: Int64(amount),
                currency: try f.string(FieldTag.paymentCurrency, "currency"),
                maskedPAN: try f.string(FieldTag.paymentMaskedPAN, "masked_pan"),
                token: try f.string(FieldTag.paymentToken, "token"),
                approvalCode: try f.string(FieldTag.paymentApprovalCode, "approval_code"),
                time: try f.string(FieldTag.paymentTime, "time")))
        case .showPrompt:
            message = .showPrompt(Prompt(
                text: try f.string(FieldTag.promptText, "text"),
                buttons: try f.strings(FieldTag.promptButton, "button"),
                timeoutSeconds: try f.u16(FieldTag.promptTimeout, "timeout_seconds")))
        case .promptResult:
            let outcome = try f.u8(FieldTag.resultOutcome, "outcome")
            let index = try f.optionalU8(FieldTag.resultButtonIndex, "button_index")
            switch (outcome, index) {
            case (0, let i?): message = .promptResult(.confirmed(buttonIndex: i))
            case (0, nil): throw .missingField(type: type, field: "button_index")
            case (1, nil): message = .promptResult(.declined)
            case (2, nil): message = .promptResult(.timedOut)
            case (1, _?), (2, _?):
                throw .invalidValue(type: type, field: "button_index", reason: "present although the outcome is not confirmed")
            default:
                throw .invalidValue(type: type, field: "outcome", reason: "is not 0, 1 or 2")
            }
        case .displayText:
            message = .displayText(
                text: try f.string(FieldTag.displayText, "text"),
                seconds: try f.u16(FieldTag.displaySeconds, "seconds"))
        case .status:
            let raw = try f.u8(FieldTag.statusState, "state")
            guard let state = TerminalStatus.State(rawValue: raw) else {
                throw .invalidValue(type: type, field: "state", reason: "is not 0, 1 or 2")
            }
            message = .status(TerminalStatus(state: state, text: try f.string(FieldTag.statusText, "text")))
        }
        try Validation.check(message)
        return TerminalEnvelope(requestID: requestID, message: message)
    }
}

// MARK: - Byte order helpers (big-endian, byte by byte)

func readU16<C: RandomAccessCollection>(_ b: C, at i: C.Index) -> UInt16 where C.Element == UInt8 {
    UInt16(b[i]) << 8 | UInt16(b[b.index(after: i)])
}

func readU32<C: RandomAccessCollection>(_ b: C, at i: C.Index) -> UInt32 where C.Element == UInt8 {
    var v: UInt32 = 0
    var j = i
    for _ in 0..<4 {
        v = v << 8 | UInt32(b[j])
        j = b.index(after: j)
    }
    return v
}

func readU64<C: RandomAccessCollection>(_ b: C, at i: C.Index) -> UInt64 where C.Element == UInt8 {
    var v: UInt64 = 0
    var j = i
    for _ in 0..<8 {
        v = v << 8 | UInt64(b[j])
        j = b.index(after: j)
    }
    return v
}

/// Appends big-endian integers and TLVs to a payload.
struct PayloadWriter {
    let type: MessageType
    var bytes: [UInt8]

    init(type: MessageType, requestID: UInt32) {
        self.type = type
        bytes = [type.rawValue]
        bytes.reserveCapacity(64)
        appendBE(UInt64(requestID), width: 4)
    }

    mutating func appendBE(_ v: UInt64, width: Int) {
        for k in stride(from: width - 1, through: 0, by: -1) {
            bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))))
        }
    }

    mutating func tlv(_ tag: UInt8, _ name: String, _ value: some Collection<UInt8>) throws(MessageError) {
        guard value.count <= Int(UInt16.max) else { throw .fieldTooLong(type: type, field: name, length: value.count) }
        bytes.append(tag)
        appendBE(UInt64(value.count), width: 2)
        bytes.append(contentsOf: value)
    }

    mutating func string(_ tag: UInt8, _ name: String, _ s: String) throws(MessageError) {
        try tlv(tag, name, s.utf8)
    }

    mutating func u8(_ tag: UInt8, _ v: UInt8) throws(MessageError) {
        try tlv(tag, "", [v])
    }

    mutating func u16(_ tag: UInt8, _ v: UInt16) throws(MessageError) {
        try tlv(tag, "", [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)])
    }

    mutating func u64(_ tag: UInt8, _ v: UInt64) throws(MessageError) {
        var b: [UInt8] = []
        for k in stride(from: 7, through: 0, by: -1) { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
        try tlv(tag, "", b)
    }
}

/// Splits a payload's TLVs and hands out known fields; unknown tags are skipped.
struct FieldReader {
    let type: MessageType
    private var fields: [UInt8: [ArraySlice<UInt8>]] = [:]

    init(type: MessageType, payload: [UInt8]) throws(MessageError) {
        self.type = type
        let known = FieldReader.knownTags(type)
        var i = MessageCodec.headerLength
        while i < payload.count {
            let tag = payload[i]
            guard payload.count - i >= 3 else { throw .truncatedField(type: type, tag: tag) }
            let length = Int(readU16(payload, at: i + 1))
            let start = i + 3
            guard payload.count - start >= length else { throw .truncatedField(type: type, tag: tag) }
            if let spec = known[tag] {
                if !spec.repeatable, fields[tag] != nil { throw .duplicateField(type: type, field: spec.name) }
                fields[tag, default: []].append(payload[start..<(start + length)])
            }
            i = start + length
        }
    }

    /// Tags each type understands: name and whether the tag may repeat.
    static func knownTags(_ type: MessageType) -> [UInt8: (name: String, repeatable: Bool)] {
        switch type {
        case .ping, .displayAck, .statusRequest: [:]
        case .pong: [FieldTag.pongSerial: ("serial", false), FieldTag.pongFirmware: ("firmware", false), FieldTag.pongModel: ("model", false)]
        case .paymentResult: [
            FieldTag.paymentTransactionRef: ("transaction_ref", false), FieldTag.paymentAmountMinor: ("amount_minor", false),
            FieldTag.paymentCurrency: ("currency", false), FieldTag.paymentMaskedPAN: ("masked_pan", false),
            FieldTag.paymentToken: ("token", false), FieldTag.paymentApprovalCode: ("approval_code", false),
            FieldTag.paymentTime: ("time", false),
        ]
        case .showPrompt: [FieldTag.promptText: ("text", false), FieldTag.promptButton: ("button", true), FieldTag.promptTimeout: ("timeout_seconds", false)]
        case .promptResult: [FieldTag.resultOutcome: ("outcome", false), FieldTag.resultButtonIndex: ("button_index", false)]
        case .displayText: [FieldTag.displayText: ("text", false), FieldTag.displaySeconds: ("seconds", false)]
        case .status: [FieldTag.statusState: ("state", false), FieldTag.statusText: ("text", false)]
        }
    }

    private func one(_ tag: UInt8, _ name: String) throws(MessageError) -> ArraySlice<UInt8> {
        guard let v = fields[tag]?.first else { throw .missingField(type: type, field: name) }
        return v
    }

    private func fixed(_ tag: UInt8, _ name: String, _ width: Int) throws(MessageError) -> ArraySlice<UInt8> {
        let v = try one(tag, name)
        guard v.count == width else { throw .badFieldLength(type: type, field: name, expected: width, actual: v.count) }
        return v
    }

    private func utf8(_ v: ArraySlice<UInt8>, _ name: String) throws(MessageError) -> String {
        guard let s = String(validating: v, as: UTF8.self) else { throw .invalidUTF8(type: type, field: name) }
        return s
    }

    func string(_ tag: UInt8, _ name: String) throws(MessageError) -> String {
        try utf8(try one(tag, name), name)
    }

    func strings(_ tag: UInt8, _ name: String) throws(MessageError) -> [String] {
        var out: [String] = []
        for v in fields[tag] ?? [] { out.append(try utf8(v, name)) }
        return out
    }

    func u8(_ tag: UInt8, _ name: String) throws(MessageError) -> UInt8 {
        try fixed(tag, name, 1).first ?? 0
    }

    func optionalU8(_ tag: UInt8, _ name: String) throws(MessageError) -> UInt8? {
        guard fields[tag] != nil else { return nil }
        return try u8(tag, name)
    }

    func u16(_ tag: UInt8, _ name: String) throws(MessageError) -> UInt16 {
        let v = try fixed(tag, name, 2)
        return readU16(v, at: v.startIndex)
    }

    func u64(_ tag: UInt8, _ name: String) throws(MessageError) -> UInt64 {
        let v = try fixed(tag, name, 8)
        return readU64(v, at: v.startIndex)
    }
}

// MARK: - Validation (shared by encode and decode)

enum Validation {
    /// Every string field of a message with its protocol path, for the PCI scan.
    static func strings(of m: TerminalMessage) -> [(path: String, value: String)] {
        switch m {
        case .ping, .displayAck, .statusRequest, .promptResult: []
        case .pong(let i): [("pong.serial", i.serial), ("pong.firmware", i.firmware), ("pong.model", i.model)]
        case .paymentResult(let p): [
            ("payment_result.transaction_ref", p.transactionRef), ("payment_result.currency", p.currency),
            ("payment_result.masked_pan", p.maskedPAN), ("payment_result.token", p.token),
            ("payment_result.approval_code", p.approvalCode), ("payment_result.time", p.time),
        ]
        case .showPrompt(let p):
            [("show_prompt.text", p.text)] + p.buttons.enumerated().map { ("show_prompt.button[\($0.offset)]", $0.element) }
        case .displayText(let text, _): [("display_text.text", text)]
        case .status(let s): [("status.text", s.text)]
        }
    }

    /// PCI scan first (so card data is refused before any other complaint), then field rules.
    static func check(_ m: TerminalMessage) throws(MessageError) {
        for (path, value) in strings(of: m) {
            do {
                try PCIGuard.check(string: value, path: path)
            } catch let v as PCIViolation {
                guard v.kind == .trackData else { throw .pciViolation(v) }
                throw .pciViolation(PCIViolation(kind: v.kind, path: v.path, maskedValue: redactTrackRemainder(v.maskedValue)))
            } catch {
                throw .pciViolation(PCIViolation(kind: .fullPAN, path: path, maskedValue: PANMask.maskAll(in: value)))
            }
        }
        let type = m.type
        switch m {
        case .ping, .displayAck, .statusRequest, .pong, .displayText, .status:
            return
        case .paymentResult(let p):
            guard PANMask.isAcceptableMaskedPAN(p.maskedPAN) else {
                throw .unacceptableMaskedPAN(field: "payment_result.masked_pan", masked: PANMask.mask(p.maskedPAN))
            }
            guard p.amountMinor >= 0 else { throw .invalidValue(type: type, field: "amount_minor", reason: "is negative") }
            guard p.currency.utf8.count == 3, p.currency.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) else {
                throw .invalidValue(type: type, field: "currency", reason: "is not an ISO 4217 code (3 uppercase letters)")
            }
            for (name, value) in [("transaction_ref", p.transactionRef), ("token", p.token), ("approval_code", p.approvalCode)] where value.isEmpty {
                throw .invalidValue(type: type, field: name, reason: "is empty")
            }
            guard RFC3339.isValid(p.time) else {
                throw .invalidValue(type: type, field: "time", reason: "is not an RFC 3339 date-time")
            }
        case .showPrompt(let p):
            guard (1...Prompt.maxButtons).contains(p.buttons.count) else {
                throw .invalidValue(type: type, field: "button", reason: "count \(p.buttons.count) outside 1...\(Prompt.maxButtons)")
            }
            guard p.timeoutSeconds > 0 else { throw .invalidValue(type: type, field: "timeout_seconds", reason: "is 0") }
        case .promptResult:
            return
        }
    }
}

/// Track data masked by `PANMask.maskAll` still shows expiry, service code, discretionary data and
/// (track 1) the cardholder's name after the PAN: everything after the first `^` or `=` is starred.
func redactTrackRemainder(_ masked: String) -> String {
    var out = ""
    var redacting = false
    for c in masked {
        out.append(redacting ? "*" : c)
        if c == "^" || c == "=" { redacting = true }
    }
    return out
}

/// RFC 3339 `date-time` syntax and ranges: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
enum RFC3339 {
    static func isValid(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count >= 20 else { return false }
        func num(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var v = 0
            for k in at..<(at + n) {
                guard (0x30...0x39).contains(b[k]) else { return nil }
                v = v * 10 + Int(b[k] - 0x30)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == 0x2D, let month = num(5, 2), b[7] == 0x2D, let day = num(8, 2),
              b[10] == 0x54 || b[10] == 0x74,
              let hour = num(11, 2), b[13] == 0x3A, let minute = num(14, 2), b[16] == 0x3A, let second = num(17, 2)
        else { return false }
        guard (1...12).contains(month), hour <= 23, minute <= 59, second <= 60 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else { return false }
        var i = 19
        if i < b.count, b[i] == 0x2E {
            i += 1
            let start = i
            while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            guard i > start else { return false }
        }
        guard i < b.count else { return false }
        if b[i] == 0x5A || b[i] == 0x7A { return i + 1 == b.count }
        guard b[i] == 0x2B || b[i] == 0x2D, b.count == i + 6, let oh = num(i + 1, 2), b[i + 3] == 0x3A, let om = num(i + 4, 2)
        else { return false }
        return oh <= 23 && om <= 59
    }
}
