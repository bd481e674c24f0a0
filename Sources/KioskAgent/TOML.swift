import Foundation

/// A value of the TOML subset the agent's config uses.
public enum TOMLValue: Sendable, Equatable {
    /// A basic or literal string.
    case string(String)
    /// An integer (underscores allowed in the source).
    case integer(Int64)
    /// A float.
    case float(Double)
    /// A boolean.
    case boolean(Bool)
    /// A single-line array of scalars.
    case array([TOMLValue])

    /// The TOML type name, for error messages.
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .array: return "array"
        }
    }
}

/// A TOML document could not be read; says the line and what is wrong.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line number.
    public var line: Int
    /// What is wrong.
    public var message: String
    /// Creates the error.
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
    /// `line N: message`.
    public var description: String { "line \(line): \(message)" }
}

/// A parsed key: its value and the line it was on.
public struct TOMLEntry: Sendable, Equatable {
    /// The value.
    public var value: TOMLValue
    /// 1-based line number.
    public var line: Int
}

/// A parser for the TOML subset used by kiosk-agent's config files.
///
/// Supported: comments, `[table]` and `[table.sub]` headers, `key = value` with bare or quoted
/// keys, basic strings with escapes, literal strings, integers, floats, booleans and
/// single-line arrays. Anything else is an error with its line number, never silently ignored.
public enum TOMLParser {
    /// Parses a document into `"table.key" → entry`.
    public static func parse(_ text: String) throws -> [String: TOMLEntry] {
        var result: [String: TOMLEntry] = [:]
        var table = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = index + 1
            var s = Substring(rawLine)
            if s.hasSuffix("\r") { s = s.dropLast() }
            var p = Cursor(chars: Array(s), line: lineNo)
            p.skipSpaces()
            if p.atEnd || p.peek == "#" { continue }
            if p.peek == "[" {
                p.advance()
                if p.peek == "[" { throw TOMLError(line: lineNo, message: "arrays of tables are not supported") }
                var parts: [String] = []
                repeat {
                    p.skipSpaces()
                    parts.append(try p.key())
                    p.skipSpaces()
                } while p.consume(".")
                guard p.consume("]") else { throw TOMLError(line: lineNo, message: "expected ] after table name") }
                try p.expectEndOfLine()
                table = parts.joined(separator: ".")
                continue
            }
            var keyParts: [String] = []
            repeat {
                p.skipSpaces()
                keyParts.append(try p.key())
                p.skipSpaces()
            } while p.consume(".")
            guard p.consume("=") else { throw TOMLError(line: lineNo, message: "expected = after key \(keyParts.joined(separator: "."))") }
            p.skipSpaces()
            let value = try p.value()
            try p.expectEndOfLine()
            let full = (table.isEmpty ? [] : [table]) + keyParts
            let name = full.joined(separator: ".")
            if let previous = result[name] {
                throw TOMLError(line: lineNo, message: "key \(name) already defined at line \(previous.line)")
            }
            result[name] = TOMLEntry(value: value, line: lineNo)
        }
        return result
    }

    struct Cursor {
        var chars: [Character]
        var i = 0
        var line: Int

        init(chars: [Character], line: Int) {
            self.chars = chars
            self.line = line
        }

        var atEnd: Bool { i >= chars.count }
        var peek: Character? { i < chars.count ? chars[i] : nil }
        mutating func advance() { i += 1 }
        mutating func consume(_ c: Character) -> Bool {
            if peek == c { i += 1; return true }
            return false
        }
        mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { i += 1 } }
        mutating func expectEndOfLine() throws {
            skipSpaces()
            if atEnd || peek == "#" { return }
            throw TOMLError(line: line, message: "unexpected text after value: \(String(chars[i...]))")
        }

        mutating func key() throws -> String {
            if peek == "\"" { return try basicString() }
            if peek == "'" { return try literalString() }
            var k = ""
            while let c = peek, c.isLetter || c.isNumber || c == "_" || c == "-" { k.append(c); i += 1 }
            guard !k.isEmpty else { throw TOMLError(line: line, message: "expected a key") }
            return k
        }

        mutating func value() throws -> TOMLValue {
            guard let c = peek else { throw TOMLError(line: line, message: "missing value") }
            switch c {
            case "\"": return .string(try basicString())
            case "'": return .string(try literalString())
            case "[":
                i += 1
                var items: [TOMLValue] = []
                skipSpaces()
                if consume("]") { return .array([]) }
                while true {
                    skipSpaces()
                    items.append(try value())
                    skipSpaces()
                    if consume(",") {
                        skipSpaces()
                        if consume("]") { break }
                        continue
                    }
                    guard consume("]") else { throw TOMLError(line: line, message: "expected , or ] in array") }
                    break
                }
                return .array(items)
            default:
                var token = ""
                while let c = peek, c != " ", c != "\t", c != ",", c != "]", c != "#" { token.append(c); i += 1 }
                if token == "true" { return .boolean(true) }
                if token == "false" { return .boolean(false) }
                let digits = token.replacingOccurrences(of: "_", with: "")
                if let v = Int64(digits) { return .integer(v) }
                if digits.hasPrefix("0x"), let v = Int64(digits.dropFirst(2), radix: 16) { return .integer(v) }
                if let v = Double(digits), digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .float(v) }
                throw TOMLError(line: line, message: "cannot read value '\(token)' (strings need quotes)")
            }
        }

        mutating func literalString() throws -> String {
            i += 1
            var s = ""
            while let c = peek {
                i += 1
                if c == "'" { return s }
                s.append(c)
            }
            throw TOMLError(line: line, message: "unterminated string")
        }

        mutating func basicString() throws -> String {
            i += 1
            var s = ""
            while let c = peek {
                i += 1
                switch c {
                case "\"": return s
                case "\\":
                    guard let e = peek else { break }
                    i += 1
                    switch e {
                    case "n": s.append("\n")
                    case "t": s.append("\t")
                    case "r": s.append("\r")
                    case "\\": s.append("\\")
                    case "\"": s.append("\"")
                    case "u", "U":
                        let n = e == "u" ? 4 : 8
                        guard i + n <= chars.count, let v = UInt32(String(chars[i..<(i + n)]), radix: 16),
                              let scalar = Unicode.Scalar(v) else {
                            throw TOMLError(line: line, message: "bad unicode escape")
                        }
                        s.unicodeScalars.append(scalar)
                        i += n
                    default: throw TOMLError(line: line, message: "unknown escape \\\(e)")
                    }
                default: s.append(c)
                }
            }
            throw TOMLError(line: line, message: "unterminated string")
        }
    }
}
