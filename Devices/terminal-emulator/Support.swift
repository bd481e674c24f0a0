// Output, arguments and configfs helpers of the terminal emulator.
#if canImport(Glibc)
import KioskSys
import Glibc
#endif
import PaymentTerminal

/// One line to stdout in one write(2): unbuffered (test scripts wait for lines), never
/// interleaved with lines from other threads.
func say(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0A)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// Bad command-line usage (exit 2).
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// `--key value` options and `--flag` switches after the subcommand.
struct Options {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    init(_ args: ArraySlice<String>, flags known: Set<String>) throws(UsageError) {
        var it = args.makeIterator()
        while let arg = it.next() {
            guard arg.hasPrefix("--") else { throw UsageError(description: "unexpected argument \(arg)") }
            let key = String(arg.dropFirst(2))
            if known.contains(key) {
                flags.insert(key)
                continue
            }
            guard let value = it.next() else { throw UsageError(description: "\(arg) needs a value") }
            values[key] = value
        }
    }

    func flag(_ key: String) -> Bool { flags.contains(key) }

    func optionalString(_ key: String) -> String? { values[key] }

    func string(_ key: String, default def: String? = nil) throws(UsageError) -> String {
        if let v = values[key] { return v }
        if let def { return def }
        throw UsageError(description: "missing --\(key)")
    }

    /// Decimal or 0x-prefixed hexadecimal.
    func int(_ key: String, default def: Int? = nil) throws(UsageError) -> Int {
        guard let text = values[key] else {
            if let def { return def }
            throw UsageError(description: "missing --\(key)")
        }
        let parsed = text.hasPrefix("0x") || text.hasPrefix("0X") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        guard let parsed else { throw UsageError(description: "--\(key): not a number: \(text)") }
        return parsed
    }

    func scenario(default def: TerminalScenario? = nil) throws(UsageError) -> TerminalScenario {
        guard let name = values["scenario"] else {
            if let def { return def }
            throw UsageError(description: "missing --scenario (one of \(TerminalScenario.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let scenario = TerminalScenario(rawValue: name) else {
            throw UsageError(description: "unknown scenario \(name) (one of \(TerminalScenario.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return scenario
    }
}

/// The configfs directory of a USB gadget (`/sys/kernel/config/usb_gadget/NAME`).
func gadgetDirectory(_ name: String) -> String { "/sys/kernel/config/usb_gadget/\(name)" }

/// The whole content of a small file (sysfs/configfs), trailing newline removed; nil if unreadable.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n >= 0 else { return nil }
    var text = String(decoding: buffer[0..<n], as: UTF8.self)
    while text.hasSuffix("\n") { text.removeLast() }
    return text
}

/// Writes a small file (sysfs/configfs attribute) in one write(2).
func writeSmallFile(_ path: String, _ text: String) throws(SystemCallError) {
    let fd = try systemCall("open \(path)") { open(path, O_WRONLY) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    try systemCall("write \(path)") { bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
}

func formatMillis(_ nanos: UInt64) -> String {
    let micros = nanos / 1000
    let frac = String(micros % 1000)
    return "\(micros / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
}

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
