import ArgumentParser
import Foundation
import KioskAgent
import Logging
import Camera
import PaymentTerminal

extension KioskCtl {
    /// `kioskctl terminal`: find and test the payment terminal directly over USB.
    struct Terminal: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find and test the payment terminal over USB (libusb), without the agent.",
            discussion: """
                These commands open the USB device themselves: while kiosk-agent runs it holds the \
                terminal, so stop it first (systemctl stop kiosk-agent) or use `kioskctl status`.
                """,
            subcommands: [List.self, Test.self])
    }
}

/// Where terminal profiles come from: a file, a directory, the config's profile, or the defaults.
struct ProfileOptions: ParsableArguments {
    @Option(name: .long, help: "A device profile (JSON); default: terminal.profile from the config.")
    var profile: String?

    @Option(name: .long, help: "A directory of device profiles (default: \(DeviceProfile.installedDirectory), else ./Devices/profiles).")
    var profilesDir: String?

    @Option(name: .long, help: "The terminal's USB serial, when several of a profile are plugged in.")
    var serial: String?

    /// Every profile the options name (list).
    func all() throws -> [DeviceProfile] {
        if let profile { return [try DeviceProfile.load(path: profile)] }
        return try DeviceProfile.loadAll(directory: directory())
    }

    /// The one profile to test: --profile, the config's terminal.profile, or the only one installed.
    func one(config: String?) throws -> DeviceProfile {
        if let profile { return try DeviceProfile.load(path: profile) }
        let configPath = config ?? (FileManager.default.fileExists(atPath: "/etc/kiosk-agent/agent.toml") ? "/etc/kiosk-agent/agent.toml" : nil)
        if let configPath {
            let c = try AgentConfig.load(path: configPath)
            if FileManager.default.fileExists(atPath: c.terminalProfile) { return try DeviceProfile.load(path: c.terminalProfile) }
        }
        let all = try DeviceProfile.loadAll(directory: directory())
        guard all.count == 1, let only = all.first else {
            throw ValidationError("\(all.count) device profiles in \(directory()): choose one with --profile FILE")
        }
        return only
    }

    func directory() -> String {
        if let profilesDir { return profilesDir }
        if FileManager.default.fileExists(atPath: DeviceProfile.installedDirectory) { return DeviceProfile.installedDirectory }
        return "Devices/profiles"
    }
}

extension KioskCtl.Terminal {
    /// `kioskctl terminal list`: the USB devices that match a terminal profile.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List plugged-in USB devices matching a terminal profile.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var profiles: ProfileOptions

        func run() throws {
            let all = try profiles.all()
            let rows = try Self.rows(all)
            if global.json { return try global.printJSON(["profiles": all.map(\.name), "devices": rows]) }
            Self.printRows(rows, profiles: all)
        }

        /// One row per plugged-in device matching a profile.
        static func rows(_ all: [DeviceProfile]) throws -> [[String: Any]] {
            let context: USBContext
            do { context = try USBContext() } catch { throw ValidationError("cannot initialise libusb: \(error)") }
            var rows: [[String: Any]] = []
            for p in all {
                let devices: [USBDeviceInfo]
                do {
                    devices = try context.devices(vendorID: p.vendorID, productID: p.productID, readSerials: true)
                } catch {
                    throw ValidationError("cannot list USB devices: \(error)")
                }
                for d in devices {
                    let node = String(format: "/dev/bus/usb/%03d/%03d", Int(d.bus), Int(d.address))
                    rows.append([
                        "profile": p.name, "usb_id": p.usbID, "bus": Int(d.bus), "address": Int(d.address), "node": node,
                        "serial": d.serial ?? NSNull(), "openable": access(node, R_OK | W_OK) == 0,
                    ])
                }
            }
            return rows
        }

        static func printRows(_ rows: [[String: Any]], profiles all: [DeviceProfile]) {
            print("\(pad("PROFILE", 26)) \(pad("USB ID", 10)) \(pad("NODE", 22)) \(pad("SERIAL", 18)) ACCESS")
            for r in rows {
                let access = (r["openable"] as? Bool) == true ? "ok" : "no permission (is the udev rule installed? is this user in group kiosk-agent?)"
                print("\(pad(text(r["profile"]), 26)) \(pad(text(r["usb_id"]), 10)) \(pad(text(r["node"]), 22)) \(pad(text(r["serial"]), 18)) \(access)")
            }
            if rows.isEmpty { print("no terminal plugged in (profiles: \(all.map(\.name).joined(separator: ", ")))") }
        }
    }

    /// `kioskctl terminal test`: open the terminal, ask who it is, time round trips, show a text.
    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open the terminal, PING it, read its status, time round trips, show a test text.",
            discussion: "Exit status 0 when every step passed. The prompt step asks for Yes on the terminal; --no-prompt skips it.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var profiles: ProfileOptions

        @Option(name: .long, help: "PING round trips to time.")
        var count = 50

        @Flag(name: .long, inversion: .prefixedNo, help: "Show a Yes/No prompt on the terminal and wait for the answer (press Yes).")
        var prompt = true

        func run() throws {
            let profile = try profiles.one(config: global.config)
            var steps: [[String: Any]] = []
            var failed = false
            func step(_ name: String, _ ok: Bool, _ detail: String, _ extra: [String: Any] = [:]) {
                failed = failed || !ok
                steps.append(["step": name, "ok": ok, "detail": detail].merging(extra) { a, _ in a })
                if !global.json { print("\(ok ? "OK  " : "FAIL") \(pad(name, 10)) \(detail)") }
            }
            defer {
                if global.json { try? global.printJSON(["profile": profile.name, "usb_id": profile.usbID, "ok": !failed, "steps": steps]) }
            }
            let context: USBContext
            let transport: USBTransport
            do {
                context = try USBContext()
                transport = try context.openTerminal(profile: profile, serial: profiles.serial)
            } catch {
                step("open", false, "\(profile.name) \(profile.usbID): \(error)")
                throw ExitCode(1)
            }
            defer { transport.close() }
            step("open", true, "\(transport.device) claimed interface \(profile.interfaceNumber) (\(profile.inEndpoint), \(profile.outEndpoint))")
            var logger = Logger(label: "kioskctl.terminal")
            logger.logLevel = .critical
            let link = TerminalLink(transport: transport,
                                    configuration: LinkConfiguration(ackTimeout: profile.timeouts.ack, writeTimeout: profile.timeouts.write),
                                    logger: logger)
            defer { link.close() }
            do {
                let pong = try link.request(.ping, timeout: .seconds(3))
                guard case .pong(let info) = pong.message else { throw ValidationError("PING answered with \(pong.message.type)") }
                let match = info.serial == transport.device.serial
                step("ping", match, "serial \(info.serial), model \(info.model), firmware \(info.firmware)"
                     + (match ? "" : " — differs from the USB serial \(transport.device.serial ?? "(none)")"),
                     ["serial": info.serial, "model": info.model, "firmware": info.firmware])
            } catch {
                step("ping", false, "\(error)")
                throw ExitCode(1)
            }
            do {
                let reply = try link.request(.statusRequest, timeout: .seconds(3))
                guard case .status(let s) = reply.message else { throw ValidationError("STATUS_REQUEST answered with \(reply.message.type)") }
                step("status", s.state == .ready, "\(s.state)" + (s.text.isEmpty ? "" : ": \(s.text)"), ["state": "\(s.state)"])
            } catch {
                step("status", false, "\(error)")
            }
            do {
                var rtts: [Double] = []
                for _ in 0..<max(1, count) {
                    let t0 = ContinuousClock.now
                    _ = try link.request(.ping, timeout: .seconds(3))
                    let d = ContinuousClock.now - t0
                    rtts.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                }
                rtts.sort()
                // Nearest-rank percentile.
                func pct(_ p: Double) -> Double { rtts[max(0, min(rtts.count - 1, Int((Double(rtts.count) * p).rounded(.up)) - 1))] }
                let detail = String(format: "%d round trips: median %.2f ms, p99 %.2f ms, max %.2f ms", rtts.count, pct(0.5), pct(0.99), rtts.last ?? 0)
                step("latency", true, detail, ["median_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": rtts.last ?? 0, "count": rtts.count])
            } catch {
                step("latency", false, "\(error)")
            }
            do {
                let reply = try link.request(.displayText(text: "kiosk-agent terminal test", seconds: 5), timeout: .seconds(3))
                step("display", reply.message == .displayAck, "DISPLAY_TEXT answered with \(reply.message.type)")
            } catch {
                step("display", false, "\(error)")
            }
            if prompt {
                do {
                    let p = Prompt(text: "Terminal test: press Yes", buttons: ["Yes", "No"], timeoutSeconds: 30)
                    let t0 = ContinuousClock.now
                    let reply = try link.request(.showPrompt(p), timeout: .seconds(35))
                    let d = ContinuousClock.now - t0
                    let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
                    guard case .promptResult(let outcome) = reply.message else { throw ValidationError("SHOW_PROMPT answered with \(reply.message.type)") }
                    step("prompt", outcome == .confirmed(buttonIndex: 0), String(format: "answered %@ after %.0f ms (includes the person pressing)", "\(outcome)", ms),
                         ["answer_ms": ms])
                } catch {
                    step("prompt", false, "\(error)")
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}

extension KioskCtl {
    /// `kioskctl devices`: every kiosk device found, with the profile that applies.
    struct Devices: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the payment terminals, QR scanners and cameras found, with their profiles.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var profiles: ProfileOptions

        @Option(name: .long, help: "Scanner profiles (default: /usr/share/kiosk-agent/scanners, else ./Devices/scanners).")
        var scannersDir: String?

        func run() throws {
            let terminalProfiles = try profiles.all()
            let terminals = try KioskCtl.Terminal.List.rows(terminalProfiles)
            let dir = scannersDir ?? (FileManager.default.fileExists(atPath: "/usr/share/kiosk-agent/scanners")
                ? "/usr/share/kiosk-agent/scanners" : "Devices/scanners")
            var scanners: [[String: Any]] = []
            if let names = try? FileManager.default.contentsOfDirectory(atPath: dir).filter({ $0.hasSuffix(".json") }).sorted() {
                let context = try? USBContext()
                for name in names {
                    let p: ScannerProfile
                    do { p = try ScannerProfile.load(path: (dir as NSString).appendingPathComponent(name)) } catch { throw ValidationError("\(error)") }
                    for d in (try? context?.devices(vendorID: p.vendorID, productID: p.productID, readSerials: true)) ?? [] {
                        scanners.append(["profile": p.name, "usb_id": p.usbID, "bus": Int(d.bus), "address": Int(d.address),
                                         "serial": d.serial ?? NSNull(), "layout": p.layout.rawValue])
                    }
                }
            }
            let cameras = CameraEnumerator.list().map { c -> [String: Any] in
                ["identity": c.identity.description, "path": c.path, "driver": c.driver]
            }
            if global.json {
                return try global.printJSON(["terminals": terminals, "scanners": scanners, "cameras": cameras])
            }
            print("payment terminals")
            KioskCtl.Terminal.List.printRows(terminals, profiles: terminalProfiles)
            print("\nQR / barcode scanners")
            for s in scanners { print("  \(text(s["profile"]))  \(text(s["usb_id"]))  serial \(text(s["serial"]))  layout \(text(s["layout"]))") }
            if scanners.isEmpty { print("  none plugged in") }
            print("\ncameras")
            for c in cameras { print("  \(text(c["identity"]))  \(text(c["path"]))  (\(text(c["driver"])))") }
            if cameras.isEmpty { print("  none found") }
        }
    }
}
