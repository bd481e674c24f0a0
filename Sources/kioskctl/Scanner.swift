import ArgumentParser
import Foundation
import Logging
import PaymentTerminal

extension KioskCtl {
    /// `kioskctl scanner`: test a USB HID QR/barcode scanner.
    struct Scanner: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Test a USB HID QR/barcode scanner (keyboard-wedge) through libusb.",
            subcommands: [Read.self])
    }
}

extension KioskCtl.Scanner {
    /// `kioskctl scanner read`: wait for codes and print them.
    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open the scanner, wait for codes, print them (masked unless --reveal).",
            discussion: """
                While this runs the scanner's keyboard interface belongs to kioskctl: codes are not \
                typed into the kiosk's screen. Exit status 0 when --count codes were read in time.
                """)
        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The scanner's profile (Devices/scanners/*.json).")
        var profile: String

        @Option(name: .long, help: "The scanner's USB serial, when several are plugged in.")
        var serial: String?

        @Option(name: .long, help: "Stop after this many codes.")
        var count = 1

        @Option(name: .long, help: "Give up after this many seconds.")
        var timeout = 60

        @Flag(name: .long, help: "Print codes in full (they are one-time payment codes: default masked).")
        var reveal = false

        func run() async throws {
            let p: ScannerProfile
            do { p = try ScannerProfile.load(path: profile) } catch { throw ValidationError("\(error)") }
            var logger = Logger(label: "kioskctl.scanner")
            logger.logLevel = .critical
            let scanner: HIDScanner
            do { scanner = try HIDScanner(profile: p, serial: serial, logger: logger) } catch { throw ValidationError("cannot initialise libusb: \(error)") }
            scanner.start()
            let deadline = Task {
                try? await Task.sleep(for: .seconds(timeout))
                scanner.stop()
            }
            var codes: [String] = []
            var notes: [String] = []
            for await event in scanner.events {
                switch event {
                case .connected(let d):
                    FileHandle.standardError.write(Data("listening on \(d) (\(p.name), layout \(p.layout.rawValue))\n".utf8))
                case .code(let c):
                    codes.append(c)
                    if !global.json { print(reveal ? c : HIDKeyboardDecoder.masked(c)) }
                case .overflow(let n):
                    notes.append("a \(n)-character code exceeded max_length \(p.maxLength)")
                case .disconnected(let why):
                    notes.append("disconnected: \(why)")
                    FileHandle.standardError.write(Data("scanner disconnected: \(why)\n".utf8))
                }
                if codes.count >= count { break }
            }
            deadline.cancel()
            scanner.stop()
            if global.json {
                try global.printJSON(["profile": p.name, "codes": reveal ? codes : codes.map(HIDKeyboardDecoder.masked),
                                      "complete": codes.count >= count, "notes": notes])
            }
            if codes.count < count {
                FileHandle.standardError.write(Data("kioskctl: \(codes.count) of \(count) codes within \(timeout) s\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
