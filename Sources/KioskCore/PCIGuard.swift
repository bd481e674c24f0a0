import Foundation

/// A document carried a full PAN or magnetic-stripe track data: it must not be stored or logged.
public struct PCIViolation: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was found.
    public enum Kind: String, Sendable {
        /// 13–19 digits passing the Luhn check.
        case fullPAN = "full_pan"
        /// Track 1 or track 2 data.
        case trackData = "track_data"
    }
    /// What was found.
    public var kind: Kind
    /// Where it was found (a JSON path such as `payment.terminal_token`).
    public var path: String
    /// The offending value with every digit but the first 6 and last 4 of each PAN masked.
    public var maskedValue: String

    /// Creates the error.
    public init(kind: Kind, path: String, maskedValue: String) {
        self.kind = kind
        self.path = path
        self.maskedValue = maskedValue
    }

    /// A message safe to log: the value is masked.
    public var description: String { "refused: \(kind.rawValue) in field \(path) (\(maskedValue))" }
}

/// Refuses documents that hold a full PAN or track data in any string (PCI DSS 3.2/3.4).
///
/// Numbers are not scanned (timestamps are 13–19 digit integers); every string value and key
/// is. A PAN is a run of 13–19 digits, optionally grouped by single spaces or dashes, that
/// passes the Luhn check. Track data is `%B<digits>^` (track 1) or `;<digits>=` (track 2).
public enum PCIGuard {
    /// Checks a JSON document; throws ``PCIViolation`` naming the first offending field.
    public static func check(json: Data) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
        } catch {
            // Not JSON: scan it as one string so nothing slips through unparsed.
            try check(string: String(decoding: json, as: UTF8.self), path: "$")
            return
        }
        try walk(object, path: "")
    }

    /// Checks one string value; throws ``PCIViolation`` when it holds a PAN or track data.
    public static func check(string: String, path: String) throws {
        if containsTrackData(string) {
            throw PCIViolation(kind: .trackData, path: path, maskedValue: PANMask.maskAll(in: string))
        }
        if containsFullPAN(string) {
            throw PCIViolation(kind: .fullPAN, path: path, maskedValue: PANMask.maskAll(in: string))
        }
    }

    private static func walk(_ value: Any, path: String) throws {
        switch value {
        case let s as String:
            try check(string: s, path: path.isEmpty ? "$" : path)
        case let d as [String: Any]:
            for (k, v) in d {
                let p = path.isEmpty ? k : "\(path).\(k)"
                try check(string: k, path: p)
                try walk(v, path: p)
            }
        case let a as [Any]:
            for (i, v) in a.enumerated() { try walk(v, path: "\(path)[\(i)]") }
        default:
            return
        }
    }

    /// Whether the string holds a digit run of 13–19 digits that passes Luhn.
    public static func containsFullPAN(_ s: String) -> Bool {
        for run in digitRuns(in: s) where (13...19).contains(run.digits.count) && luhnValid(run.digits) {
            return true
        }
        return false
    }

    /// Whether the string holds track 1 (`%B` + digits + `^`) or track 2 (`;` + digits + `=`) data.
    public static func containsTrackData(_ s: String) -> Bool {
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            // Track 1: %B then 12-19 digits then ^ ; also without the leading % (B<digits>^).
            if b[i] == UInt8(ascii: "B") {
                var j = i + 1
                while j < b.count, isDigit(b[j]) { j += 1 }
                if (12...19).contains(j - i - 1), j < b.count, b[j] == UInt8(ascii: "^") { return true }
            }
            // Track 2: ; then 12-19 digits then = then 4 digits (expiry).
            if b[i] == UInt8(ascii: ";") || isDigit(b[i]) && (i == 0 || !isDigit(b[i - 1])) {
                var j = b[i] == UInt8(ascii: ";") ? i + 1 : i
                let start = j
                while j < b.count, isDigit(b[j]) { j += 1 }
                if (12...19).contains(j - start), j + 4 < b.count, b[j] == UInt8(ascii: "="),
                   b[(j + 1)...(j + 4)].allSatisfy(isDigit) {
                    return true
                }
            }
            i += 1
        }
        return false
    }

    /// The Luhn (mod 10) check over decimal digits.
    public static func luhnValid(_ digits: [UInt8]) -> Bool {
        guard !digits.isEmpty else { return false }
        var sum = 0
        for (i, d) in digits.reversed().enumerated() {
            var v = Int(d)
            if i % 2 == 1 {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
        }
        return sum % 10 == 0
    }

    struct DigitRun {
        var digits: [UInt8]  // digit values 0...9
        var range: Range<Int>  // byte range in the UTF-8 view, separators included
    }

    /// Maximal runs of digits, where a single space or dash continues a run only where cards
    /// are printed with one: after a group of 4 digits (4-4-4-4…) or the Amex 4-6-5 grouping.
    /// UUID-shaped tokens (8-4-4-4-12 hex: application and boot ids) and hex words of 16 or
    /// more characters with a letter in them (key ids, hashes) are skipped whole.
    static func digitRuns(in s: String) -> [DigitRun] {
        let b = Array(s.utf8)
        let skip = identifierRanges(in: b)
        var runs: [DigitRun] = []
        var i = 0
        var next = 0  // the first UUID range not yet passed (ranges are ascending): linear in the input
        while i < b.count {
            while next < skip.count, skip[next].upperBound <= i { next += 1 }
            if next < skip.count, skip[next].contains(i) { i = skip[next].upperBound; continue }
            guard isDigit(b[i]) else { i += 1; continue }
            let start = i
            var digits: [UInt8] = []
            var group = 0
            var groups: [Int] = []
            var end = i
            while i < b.count {
                if isDigit(b[i]) {
                    digits.append(b[i] - 48)
                    group += 1
                    i += 1
                    end = i
                } else if b[i] == 32 || b[i] == 45, i + 1 < b.count, isDigit(b[i + 1]),
                          group == 4 || (group == 6 && groups == [4]) {
                    groups.append(group)
                    group = 0
                    i += 1
                } else {
                    break
                }
            }
            runs.append(DigitRun(digits: digits, range: start..<end))
            i = end
        }
        return runs
    }

    /// Byte ranges of identifiers, ascending: UUIDs and hex words (see ``hexWordRanges(in:)``).
    static func identifierRanges(in b: [UInt8]) -> [Range<Int>] {
        let uuids = uuidRanges(in: b)
        let words = hexWordRanges(in: b).filter { w in !uuids.contains { $0.overlaps(w) } }
        return (uuids + words).sorted { $0.lowerBound < $1.lowerBound }
    }

    /// Byte ranges of hash- and key-id-shaped words: at least 16 lowercase hex characters, at
    /// least one of them a letter, not touching another letter, digit or underscore (uppercase
    /// stays out: track 1 starts `B` + PAN). A key id such as
    /// `4cb4161930046617` holds digit runs that pass Luhn by chance (about one key in a
    /// thousand); a card number is printed without hex letters around it.
    static func hexWordRanges(in b: [UInt8]) -> [Range<Int>] {
        func isWordByte(_ c: UInt8) -> Bool { isHex(c) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c == 95 }
        var ranges: [Range<Int>] = []
        var i = 0
        while i < b.count {
            guard isWordByte(b[i]) else { i += 1; continue }
            let start = i
            var allHex = true
            var letter = false
            while i < b.count, isWordByte(b[i]) {
                if isDigit(b[i]) {
                } else if b[i] >= 97 && b[i] <= 102 { letter = true } else { allHex = false }
                i += 1
            }
            if allHex, letter, i - start >= 16 { ranges.append(start..<i) }
        }
        return ranges
    }

    /// Byte ranges of UUID-shaped tokens (8-4-4-4-12 hex digits, not part of a longer hex word).
    static func uuidRanges(in b: [UInt8]) -> [Range<Int>] {
        let shape = [8, 4, 4, 4, 12]
        var ranges: [Range<Int>] = []
        var i = 0
        while i + 36 <= b.count {
            if i > 0, isHex(b[i - 1]) { i += 1; continue }
            var j = i
            var ok = true
            for (n, len) in shape.enumerated() {
                for _ in 0..<len {
                    guard j < b.count, isHex(b[j]) else { ok = false; break }
                    j += 1
                }
                if !ok { break }
                if n < shape.count - 1 {
                    guard j < b.count, b[j] == 45 else { ok = false; break }
                    j += 1
                }
            }
            if ok, j == b.count || !isHex(b[j]) {
                ranges.append(i..<j)
                i = j
            } else {
                i += 1
            }
        }
        return ranges
    }

    static func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) }

    static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
}

/// Masking of card numbers for display and logs: first 6 and last 4 at most.
public enum PANMask {
    /// Masks a PAN (digits only or grouped): `4111111111111111` → `411111******1111`.
    public static func mask(_ pan: String) -> String {
        let digits = pan.filter(\.isNumber)
        guard digits.count > 10 else { return String(repeating: "*", count: digits.count) }
        return String(digits.prefix(6)) + String(repeating: "*", count: digits.count - 10) + String(digits.suffix(4))
    }

    /// Masks every 13+ digit run in free text (for error messages and logs).
    public static func maskAll(in text: String) -> String {
        var bytes = Array(text.utf8)
        for run in PCIGuard.digitRuns(in: text) where run.digits.count >= 12 {
            var seen = 0
            for k in run.range where PCIGuard.isDigit(bytes[k]) {
                if seen >= 6 && seen < run.digits.count - 4 { bytes[k] = UInt8(ascii: "*") }
                seen += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether a string is an acceptable masked PAN: 12–19 characters of digits and `*`
    /// (or `X`), with at most 6 leading and 4 trailing digits in clear and at least one mask.
    public static func isAcceptableMaskedPAN(_ s: String) -> Bool {
        let c = Array(s)
        guard (12...19).contains(c.count) else { return false }
        guard c.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "*" || $0 == "X" || $0 == "x") }) else { return false }
        guard let firstMask = c.firstIndex(where: { !$0.isNumber }),
              let lastMask = c.lastIndex(where: { !$0.isNumber }) else { return false }
        guard firstMask <= 6, c.count - 1 - lastMask <= 4 else { return false }
        return c[firstMask...lastMask].allSatisfy { !$0.isNumber }
    }
}
