// Keyboard-wedge decoding for USB HID barcode / QR scanners.
//
// A scanner in keyboard mode "types" what it reads: each character becomes a key press in a HID
// boot-keyboard input report (modifier byte, reserved byte, up to six key usages). What a key
// usage means depends on the keyboard layout the scanner was configured for: a scanner set to
// French AZERTY sends Shift + the "1" key for the digit 1, and "q" where a US scanner sends "a".
// The decoder turns reports back into text with the configured layout.

/// Keyboard layouts a scanner may be configured for (what its key usages mean).
public enum KeyboardLayout: String, Sendable, CaseIterable, Codable {
    /// US English (QWERTY): the factory default of most scanners.
    case us
    /// German (QWERTZ).
    case de
    /// French (AZERTY): digits need Shift.
    case fr

    /// The character a key usage produces, or nil for keys that type nothing here.
    public func character(usage: UInt8, shift: Bool, altGr: Bool) -> Character? {
        if altGr { return Self.altGr[self]?[usage] }
        if let keypad = Self.keypad[usage] { return keypad }
        guard let pair = table[usage] else { return nil }
        return shift ? pair.1 : pair.0
    }

    private var table: [UInt8: (Character, Character)] {
        switch self {
        case .us: Self.usTable
        case .de: Self.deTable
        case .fr: Self.frTable
        }
    }

    private static func letters(_ order: String) -> [UInt8: (Character, Character)] {
        var t: [UInt8: (Character, Character)] = [:]
        for (i, c) in order.enumerated() { t[0x04 + UInt8(i)] = (c, Character(c.uppercased())) }
        return t
    }

    private static func merged(_ base: [UInt8: (Character, Character)], _ rest: [(UInt8, Character, Character)]) -> [UInt8: (Character, Character)] {
        var t = base
        for (u, a, b) in rest { t[u] = (a, b) }
        return t
    }

    static let usTable: [UInt8: (Character, Character)] = merged(letters("abcdefghijklmnopqrstuvwxyz"), [
        (0x1E, "1", "!"), (0x1F, "2", "@"), (0x20, "3", "#"), (0x21, "4", "$"), (0x22, "5", "%"),
        (0x23, "6", "^"), (0x24, "7", "&"), (0x25, "8", "*"), (0x26, "9", "("), (0x27, "0", ")"),
        (0x2C, " ", " "), (0x2D, "-", "_"), (0x2E, "=", "+"), (0x2F, "[", "{"), (0x30, "]", "}"),
        (0x31, "\\", "|"), (0x32, "#", "~"), (0x33, ";", ":"), (0x34, "'", "\""), (0x35, "`", "~"),
        (0x36, ",", "<"), (0x37, ".", ">"), (0x38, "/", "?"), (0x64, "\\", "|"),
    ])

    static let deTable: [UInt8: (Character, Character)] = merged(letters("abcdefghijklmnopqrstuvwxzy"), [
        (0x1E, "1", "!"), (0x1F, "2", "\""), (0x20, "3", "§"), (0x21, "4", "$"), (0x22, "5", "%"),
        (0x23, "6", "&"), (0x24, "7", "/"), (0x25, "8", "("), (0x26, "9", ")"), (0x27, "0", "="),
        (0x2C, " ", " "), (0x2D, "ß", "?"), (0x2E, "´", "`"), (0x2F, "ü", "Ü"), (0x30, "+", "*"),
        (0x31, "#", "'"), (0x32, "#", "'"), (0x33, "ö", "Ö"), (0x34, "ä", "Ä"), (0x35, "^", "°"),
        (0x36, ",", ";"), (0x37, ".", ":"), (0x38, "-", "_"), (0x64, "<", ">"),
    ])

    static let frTable: [UInt8: (Character, Character)] = merged(letters("qbcdefghijkl,noparstuvzxyw").filter { $0.key != 0x10 }, [
        (0x10, ",", "?"), (0x33, "m", "M"),
        (0x1E, "&", "1"), (0x1F, "é", "2"), (0x20, "\"", "3"), (0x21, "'", "4"), (0x22, "(", "5"),
        (0x23, "-", "6"), (0x24, "è", "7"), (0x25, "_", "8"), (0x26, "ç", "9"), (0x27, "à", "0"),
        (0x2C, " ", " "), (0x2D, ")", "°"), (0x2E, "=", "+"), (0x2F, "^", "¨"), (0x30, "$", "£"),
        (0x31, "*", "µ"), (0x32, "*", "µ"), (0x34, "ù", "%"), (0x35, "²", "²"),
        (0x36, ";", "."), (0x37, ":", "/"), (0x38, "!", "§"), (0x64, "<", ">"),
    ])

    static let altGr: [KeyboardLayout: [UInt8: Character]] = [
        .de: [0x14: "@", 0x24: "{", 0x25: "[", 0x26: "]", 0x27: "}", 0x2D: "\\", 0x30: "~", 0x64: "|", 0x08: "€"],
        .fr: [0x1F: "~", 0x20: "#", 0x21: "{", 0x22: "[", 0x23: "|", 0x24: "`", 0x25: "\\", 0x26: "^", 0x27: "@",
              0x2D: "]", 0x2E: "}", 0x08: "€"],
    ]

    /// Keypad keys type the same on every layout (NumLock on, as scanners assume).
    static let keypad: [UInt8: Character] = [
        0x54: "/", 0x55: "*", 0x56: "-", 0x57: "+", 0x59: "1", 0x5A: "2", 0x5B: "3", 0x5C: "4",
        0x5D: "5", 0x5E: "6", 0x5F: "7", 0x60: "8", 0x61: "9", 0x62: "0", 0x63: ".",
    ]

    /// The key usage and modifiers that type `c` on this layout (the inverse of
    /// ``character(usage:shift:altGr:)``; for emulators and tests). Nil when the layout cannot type it.
    public func keystroke(for c: Character) -> (usage: UInt8, shift: Bool, altGr: Bool)? {
        for (u, pair) in table.sorted(by: { $0.key < $1.key }) {
            if pair.0 == c { return (u, false, false) }
            if pair.1 == c { return (u, true, false) }
        }
        for (u, ch) in (Self.altGr[self] ?? [:]).sorted(by: { $0.key < $1.key }) where ch == c { return (u, false, true) }
        return nil
    }
}

/// What a run of keyboard reports produced.
public enum HIDScanEvent: Sendable, Equatable {
    /// A complete code (terminated by Enter or Tab, or by an idle gap via ``HIDKeyboardDecoder/flush()``).
    case code(String)
    /// A code longer than the limit: discarded up to the next terminator.
    case overflow(length: Int)
}

/// A report that is not a boot-keyboard input report.
public struct HIDReportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The report's length.
    public var length: Int
    /// A one-line explanation.
    public var description: String { "not a keyboard input report (\(length) bytes; expected 8, or 9 with a report id)" }
}

/// Turns HID boot-keyboard input reports into scanned codes (see ``KeyboardLayout``).
///
/// Only newly pressed keys type (a key held over several reports types once); the
/// ErrorRollOver report (all slots 0x01) is ignored; Backspace deletes; Enter and Tab end a
/// code; keys that type nothing in the layout are counted in ``unknownKeys``; a code longer
/// than ``maxLength`` is discarded (an ``HIDScanEvent/overflow(length:)``), never buffered
/// without bound.
public struct HIDKeyboardDecoder: Sendable {
    /// The layout the scanner is configured for.
    public var layout: KeyboardLayout
    /// The longest code accepted (QR payment codes are 18–30 characters; URLs longer).
    public var maxLength: Int
    /// Whether reports carry a leading report id byte (9-byte reports).
    public var hasReportID: Bool
    /// Key presses that typed nothing in the layout.
    public private(set) var unknownKeys = 0
    private var down: [UInt8] = []
    private var buffer: [Character] = []
    private var discarding = 0

    /// Creates a decoder.
    public init(layout: KeyboardLayout = .us, maxLength: Int = 512, hasReportID: Bool = false) {
        self.layout = layout
        self.maxLength = maxLength
        self.hasReportID = hasReportID
    }

    /// Characters typed since the last code.
    public var pending: Int { buffer.count }

    /// Feeds one input report; returns the codes it completed.
    public mutating func feed(_ report: some Collection<UInt8>) throws(HIDReportError) -> [HIDScanEvent] {
        var bytes = Array(report)
        if hasReportID, bytes.count == 9 { bytes.removeFirst() }
        guard bytes.count == 8 else { throw HIDReportError(length: report.count) }
        let keys = bytes[2...].filter { $0 != 0 }
        if !keys.isEmpty, keys.allSatisfy({ $0 == 0x01 }) { return [] }  // ErrorRollOver: state unknown, keep the last
        let modifiers = bytes[0]
        let shift = modifiers & 0x22 != 0
        let altGr = modifiers & 0x40 != 0 || (modifiers & 0x01 != 0 && modifiers & 0x04 != 0)
        var events: [HIDScanEvent] = []
        for usage in keys where !down.contains(usage) {
            switch usage {
            case 0x28, 0x58, 0x2B:  // Enter, keypad Enter, Tab
                if let e = end() { events.append(e) }
            case 0x2A:  // Backspace
                if discarding == 0, !buffer.isEmpty { buffer.removeLast() }
            default:
                guard let c = layout.character(usage: usage, shift: shift, altGr: altGr) else {
                    unknownKeys += 1
                    continue
                }
                if discarding > 0 {
                    discarding += 1
                } else if buffer.count >= maxLength {
                    discarding = buffer.count + 1
                    buffer.removeAll()
                } else {
                    buffer.append(c)
                }
            }
        }
        down = Array(keys)
        return events
    }

    /// Ends the code in progress (an idle gap after the last key, for scanners set to send no
    /// terminator); nil when nothing is pending.
    public mutating func flush() -> HIDScanEvent? {
        down = []
        return end()
    }

    private mutating func end() -> HIDScanEvent? {
        defer {
            buffer.removeAll()
            discarding = 0
        }
        if discarding > 0 { return .overflow(length: discarding) }
        return buffer.isEmpty ? nil : .code(String(buffer))
    }

    /// The reports a scanner configured for `layout` sends to type `text` and a terminating
    /// Enter: each key pressed then released (for emulators and tests).
    public static func reports(typing text: String, layout: KeyboardLayout) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        for c in text {
            guard let k = layout.keystroke(for: c) else { return nil }
            let mods: UInt8 = (k.shift ? 0x02 : 0) | (k.altGr ? 0x40 : 0)
            out.append([mods, 0, k.usage, 0, 0, 0, 0, 0])
            out.append([0, 0, 0, 0, 0, 0, 0, 0])
        }
        out.append([0, 0, 0x28, 0, 0, 0, 0, 0])
        out.append([0, 0, 0, 0, 0, 0, 0, 0])
        return out
    }

    /// A scanned code for logs: its length and last two characters only (payment codes are
    /// one-time secrets; they are never logged whole).
    public static func masked(_ code: String) -> String {
        "\(code.count) chars …" + String(code.suffix(2))
    }
}
