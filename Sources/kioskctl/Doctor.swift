import ArgumentParser
import Camera
import Foundation
import KioskAgent
import Logging
import PaymentTerminal

extension KioskCtl {
    /// `kioskctl doctor`: every check a technician needs, one line each with what to do.
    struct DoctorCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "doctor",
            abstract: "Check config, identity, clock, disk, network to central, devices and the outbox.",
            discussion: """
                Each line is OK, WARN or FAIL with what to do. Exit status 1 when any check FAILs, else 0. \
                Checks: \(Doctor.checkNames.joined(separator: ", ")). Network checks (dns, tcp, tls, mtls, clock) \
                are each bounded by --timeout. While kiosk-agent runs, the terminal, camera and outbox are \
                checked through it.
                """)
        @OptionGroup var global: GlobalOptions

        @Option(name: .long, parsing: .singleValue, help: "Skip a check (repeatable): \(Doctor.checkNames.joined(separator: ", ")).")
        var skip: [String] = []

        @Option(name: .long, help: "Seconds each network or device check may take.")
        var timeout: Double = 5

        func validate() throws {
            for s in skip where !Doctor.checkNames.contains(s) {
                throw ValidationError("unknown check \(s); checks: \(Doctor.checkNames.joined(separator: ", "))")
            }
            guard timeout > 0, timeout <= 120 else { throw ValidationError("--timeout must be between 0 and 120 seconds") }
        }

        func run() async throws {
            var results: [DoctorResult] = []
            let skipped = Set(skip)
            let emit: (DoctorResult) -> Void = { r in
                results.append(r)
                if !global.json { Self.printLine(r) }
            }
            func perform(_ name: String, _ body: () async -> DoctorResult) async {
                if skipped.contains(name) { return emit(DoctorResult(name, .skip, "skipped (--skip \(name))")) }
                emit(await body())
            }

            // Config first: everything else reads it.
            let path = global.config ?? (FileManager.default.fileExists(atPath: "/etc/kiosk-agent/agent.toml") ? "/etc/kiosk-agent/agent.toml" : nil)
            let (configResult, loaded) = Doctor.configCheck(path: path)
            emit(configResult)
            if let config = loaded {
                await runAll(config, skipped: skipped, emit: emit, run: perform)
            } else {
                for name in Doctor.checkNames.dropFirst() { emit(DoctorResult(name, .skip, "not run: the config is invalid")) }
            }

            if global.json {
                try global.printJSON(results.map { r -> [String: Any] in
                    ["check": r.check, "status": r.status.rawValue, "message": r.message, "hint": r.hint as Any? ?? NSNull()]
                })
            } else {
                let fails = results.filter { $0.status == .fail }.count, warns = results.filter { $0.status == .warn }.count
                print("\n\(fails) failed, \(warns) warning\(warns == 1 ? "" : "s"), \(results.filter { $0.status == .ok }.count) ok")
            }
            if results.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
        }

        private func runAll(_ config: AgentConfig, skipped: Set<String>, emit: (DoctorResult) -> Void,
                            run: (String, () async -> DoctorResult) async -> Void) async {
            await run("key") { Doctor.keyCheck(path: config.keyFile) }
            await run("certificate") { Doctor.certificateCheck(path: config.certFile) }
            await run("disk") {
                Doctor.diskCheck(directory: config.stateDirectory, minFree: config.outboxLimits.minFreeDiskBytes,
                                 free: Doctor.freeBytes(at: config.stateDirectory))
            }

            // Network: each step only when the one before it worked.
            var probes: [Doctor.Probe] = []
            if config.centralURL.isEmpty {
                emit(DoctorResult("dns", .warn, "sync.url is empty: applications are queued but never sent",
                                  hint: "set sync.url (kioskctl provision writes it)"))
                for name in ["tcp", "tls", "mtls", "clock"] { emit(DoctorResult(name, .skip, "not run: no sync.url")) }
            } else if let (host, port) = Doctor.endpoint(of: config.centralURL) {
                var addresses: [String] = []
                await run("dns") {
                    let (r, a) = Doctor.dnsCheck(host: host, timeout: timeout)
                    addresses = a
                    return r
                }
                if skipped.contains("dns") { addresses = [host] }
                var reachable = !addresses.isEmpty
                await run("tcp") {
                    guard reachable else { return DoctorResult("tcp", .skip, "not run: \(host) did not resolve") }
                    let r = Doctor.tcpCheck(addresses: addresses, port: port, timeout: timeout)
                    reachable = r.status == .ok
                    return r
                }
                if config.proxy != nil { reachable = true }  // the request goes through the proxy
                await run("tls") {
                    guard reachable else { return DoctorResult("tls", .skip, "not run: no TCP connection to central") }
                    let p = Doctor.probe(config, clientCertificate: false, timeout: timeout)
                    probes.append(p)
                    return Doctor.tlsCheck(p, caFile: config.caFile)
                }
                await run("mtls") {
                    guard reachable else { return DoctorResult("mtls", .skip, "not run: no TCP connection to central") }
                    guard config.certFile != nil else { return DoctorResult("mtls", .skip, "not run: no device certificate") }
                    let p = Doctor.probe(config, clientCertificate: true, timeout: timeout)
                    probes.insert(p, at: 0)
                    return Doctor.mtlsCheck(p)
                }
                await run("clock") { Doctor.clockCheck(probes: probes) }
            } else {
                emit(DoctorResult("dns", .fail, "sync.url \(config.centralURL) has no host", hint: "fix sync.url"))
            }

            // The agent: devices and the outbox are asked through it while it runs.
            var status: [String: Any]?
            await run("agent") {
                do {
                    let reply = try ControlClient.request(socketPath: config.controlSocket, Data("{\"cmd\":\"status\"}".utf8),
                                                          timeoutSeconds: max(1, Int(timeout)))
                    status = try JSONSerialization.jsonObject(with: reply) as? [String: Any]
                    return DoctorResult("agent", .ok, "kiosk-agent \(text(status?["version"])) running (pid \(text(status?["pid"])), up \(text(status?["uptime_s"])) s)")
                } catch {
                    return DoctorResult("agent", .warn, "kiosk-agent is not answering on \(config.controlSocket): \(error)",
                                        hint: "systemctl status kiosk-agent; kioskctl logs -n 50")
                }
            }
            await run("terminal") { terminalCheck(config, agent: status) }
            await run("camera") { await cameraCheck(config, agent: status) }
            await run("outbox") {
                guard let q = status?["queue"] as? [String: Any] else {
                    return DoctorResult("outbox", .warn, "not checked: kiosk-agent is not running", hint: "systemctl start kiosk-agent")
                }
                return Doctor.outboxCheck(pending: q["pending"] as? Int ?? 0, rejected: q["rejected"] as? Int ?? 0,
                                          quarantined: q["quarantined"] as? Int ?? 0, oldestAge: q["oldest_pending_age_s"] as? Double)
            }
        }

        private func terminalCheck(_ config: AgentConfig, agent: [String: Any]?) -> DoctorResult {
            switch config.terminalDriver {
            case "none":
                return DoctorResult("terminal", .warn, "no payment terminal configured (terminal.driver = none)",
                                    hint: "set terminal.driver = \"usb\" and terminal.profile; see kioskctl terminal list")
            case "simulated":
                return DoctorResult("terminal", .ok, "simulated terminal (\(config.simulatedScenario))")
            default: break
            }
            if agent != nil {
                // The agent holds the USB device: ask it for one PING over its own link.
                let reply = try? ControlClient.request(socketPath: config.controlSocket, Data("{\"cmd\":\"terminal_ping\"}".utf8),
                                                       timeoutSeconds: max(1, Int(timeout)) + 1)
                guard let reply, let obj = try? JSONSerialization.jsonObject(with: reply) as? [String: Any] else {
                    return DoctorResult("terminal", .warn, "in use by kiosk-agent; it did not answer a PING request",
                                        hint: "kioskctl status; or stop the agent and run kioskctl terminal test")
                }
                if obj["ok"] as? Bool == true {
                    return DoctorResult("terminal", .ok, "answered PING through kiosk-agent: \(text(obj["detail"]))")
                }
                return DoctorResult("terminal", .fail, "through kiosk-agent: \(text(obj["error"]))",
                                    hint: "check the terminal is plugged in and powered (kioskctl terminal list; kioskctl logs)")
            }
            let profile: DeviceProfile
            do { profile = try DeviceProfile.load(path: config.terminalProfile) } catch {
                return DoctorResult("terminal", .fail, "terminal.profile \(config.terminalProfile): \(error)", hint: "install the profile or fix terminal.profile")
            }
            let transport: USBTransport
            do {
                transport = try USBContext().openTerminal(profile: profile, serial: config.terminalSerial)
            } catch {
                let busy = "\(error)".lowercased().contains("busy")
                return DoctorResult("terminal", busy ? .warn : .fail, "\(profile.name) \(profile.usbID): \(error)",
                                    hint: busy ? "another process holds it (systemctl stop kiosk-agent?)"
                                        : "plugged in and powered? udev rule installed, user in group kiosk-agent? (kioskctl terminal list)")
            }
            defer { transport.close() }
            var logger = Logger(label: "kioskctl.doctor")
            logger.logLevel = .critical
            let link = TerminalLink(transport: transport,
                                    configuration: LinkConfiguration(ackTimeout: profile.timeouts.ack, writeTimeout: profile.timeouts.write),
                                    logger: logger)
            defer { link.close() }
            do {
                let reply = try link.request(.ping, timeout: .milliseconds(Int(timeout * 1000)))
                guard case .pong(let info) = reply.message else {
                    return DoctorResult("terminal", .fail, "PING answered with \(reply.message.type)", hint: "check the terminal's firmware against its profile")
                }
                return DoctorResult("terminal", .ok, "\(profile.name): serial \(info.serial), model \(info.model), firmware \(info.firmware)")
            } catch {
                return DoctorResult("terminal", .fail, "\(profile.name) opened but did not answer PING: \(error)",
                                    hint: "power-cycle the terminal; then kioskctl terminal test")
            }
        }

        private func cameraCheck(_ config: AgentConfig, agent: [String: Any]?) async -> DoctorResult {
            guard config.livenessMode == "camera" else {
                return DoctorResult("camera", .ok, "no camera needed (liveness.mode = \(config.livenessMode))")
            }
            if let cam = agent?["camera"] as? [String: Any] {
                if cam["available"] as? Bool == true {
                    return DoctorResult("camera", .ok, "delivering frames to kiosk-agent: \(text(cam["status"]))")
                }
                return DoctorResult("camera", .fail, "kiosk-agent's camera: \(text(cam["status"]))",
                                    hint: "check the camera is plugged in (kioskctl camera list) and camera.device")
            }
            if let dir = config.cameraReplayDirectory {
                let frames = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".pgm") || $0.hasSuffix(".ppm") }
                return frames.isEmpty
                    ? DoctorResult("camera", .fail, "camera.replay_dir \(dir) holds no .pgm/.ppm frames", hint: "fix camera.replay_dir")
                    : DoctorResult("camera", .ok, "replaying \(frames.count) frames from \(dir)")
            }
            let device: CameraDevice
            do { device = try CameraEnumerator.resolve(config.cameraDevice.isEmpty ? nil : config.cameraDevice) } catch {
                return DoctorResult("camera", .fail, "\(error)", hint: "plug the camera in; kioskctl camera list shows identities for camera.device")
            }
            let profiles = (try? CameraProfile.loadAll(directory: config.cameraProfilesDirectory)) ?? []
            let source = V4L2Source(device: device, profile: CameraProfile.best(for: device, in: profiles))
            let limit = timeout
            let frame: Result<Frame?, Error> = await withTaskGroup(of: Result<Frame?, Error>?.self) { group in
                group.addTask {
                    do {
                        for try await f in source.frames() { return .success(f) }
                        return .success(nil)
                    } catch { return .failure(error) }
                }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(Int(limit * 1000)))
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first ?? .success(nil)
            }
            switch frame {
            case let .success(f?):
                return DoctorResult("camera", .ok, "\(device.identity) (\(device.path)) delivered a \(f.width)x\(f.height) frame")
            case .success(nil):
                return DoctorResult("camera", .fail, "\(device.identity) (\(device.path)) delivered no frame within \(Int(limit)) s",
                                    hint: "is another process using it (fuser \(device.path))? Try kioskctl camera test")
            case let .failure(e):
                return DoctorResult("camera", .fail, "\(device.identity) (\(device.path)): \(e)",
                                    hint: "check permissions (group kiosk-agent, udev rule) and kioskctl camera test")
            }
        }

        static func printLine(_ r: DoctorResult) {
            print("\(pad(r.status.rawValue, 4)) \(pad(r.check, 11)) \(r.message)")
            if let hint = r.hint, r.status == .warn || r.status == .fail { print("     \(pad("", 11)) → \(hint)") }
        }
    }
}
