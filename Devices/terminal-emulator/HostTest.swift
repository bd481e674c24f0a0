// host-test and host-scenario: the agent's side through the real libusb transport
// (USBTerminalDriver: hotplug, open, claim, TerminalLink over bulk endpoints), for the test VM.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import PaymentTerminal

/// Prints PASS/FAIL lines and remembers whether anything failed.
final class Checks: @unchecked Sendable {
    private(set) var failed = 0
    private(set) var passed = 0
    /// Key figures for the summary line (`name value`).
    var figures: [String] = []

    func pass(_ name: String, _ detail: String) {
        passed += 1
        say("PASS \(name): \(detail)")
    }

    func fail(_ name: String, _ detail: String) {
        failed += 1
        say("FAIL \(name): \(detail)")
    }
}

/// The profile to test: --profile FILE, else the repository's or the installed emulated one;
/// --vid/--pid override its ids.
func loadProfile(_ options: Options) throws -> DeviceProfile {
    var profile: DeviceProfile?
    if let path = options.optionalString("profile") {
        profile = try DeviceProfile.load(path: path)
    } else {
        let candidates = ["Devices/profiles/kiosk-emulated-terminal.json", DeviceProfile.installedDirectory + "/kiosk-emulated-terminal.json"]
        for path in candidates where access(path, R_OK) == 0 {
            profile = try DeviceProfile.load(path: path)
            break
        }
        guard profile != nil else {
            throw UsageError(description: "no profile: pass --profile FILE (looked for \(candidates.joined(separator: ", ")))")
        }
    }
    guard var profile else { throw UsageError(description: "no profile") }
    if options.optionalString("vid") != nil {
        guard let vid = UInt16(exactly: try options.int("vid")) else { throw UsageError(description: "--vid: not a 16-bit id") }
        profile.vendorID = vid
    }
    if options.optionalString("pid") != nil {
        guard let pid = UInt16(exactly: try options.int("pid")) else { throw UsageError(description: "--pid: not a 16-bit id") }
        profile.productID = pid
    }
    return profile
}

/// Starts the driver and waits for the terminal; prints the open check.
func openDriver(_ options: Options, checks: Checks, logger: Logger) async throws -> (USBTerminalDriver, USBDeviceInfo)? {
    let profile = try loadProfile(options)
    let driver = try USBTerminalDriver(
        profile: profile, serial: options.optionalString("serial"),
        watchMode: options.flag("poll") ? .polling(interval: .milliseconds(100)) : .automatic, logger: logger)
    let t0 = nowNanos()
    try driver.start()
    guard let device = await driver.waitUntilConnected(timeout: .seconds(15)) else {
        checks.fail("open", "no \(profile.usbID) terminal connected within 15 s (profile \(profile.name))")
        driver.stop()
        return nil
    }
    checks.pass("open", "\(device) via \(driver.usesHotplug ? "hotplug" : "polling"), interface \(profile.interfaceNumber) claimed (\(profile.inEndpoint), \(profile.outEndpoint)) in \(formatMillis(nowNanos() - t0)) ms")
    return (driver, device)
}

func percentile(_ sorted: [UInt64], _ p: Int) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    return sorted[max(0, min(sorted.count - 1, (sorted.count * p + 99) / 100 - 1))]
}

func runHostTest(_ options: Options) async throws -> Int32 {
    bootstrapLogging(verbose: options.flag("verbose"))
    let logger = Logger(label: "host-test")
    let checks = Checks()
    let count = try options.int("count", default: 200)
    let promptDelay = UInt64(try options.int("prompt-delay-ms", default: 0)) * 1_000_000
    guard let (driver, device) = try await openDriver(options, checks: checks, logger: logger) else { return 1 }
    defer { driver.stop() }
    let answer = driver.profile.timeouts.answer

    // 1. PING x count: the link round trip over the USB stack.
    do {
        let (info, latencies) = try await driver.withLink { link -> (TerminalInfo?, [UInt64]) in
            var info: TerminalInfo?
            var latencies: [UInt64] = []
            latencies.reserveCapacity(count)
            for _ in 0..<count {
                let t0 = nowNanos()
                let reply = try link.request(.ping, timeout: answer)
                latencies.append(nowNanos() - t0)
                guard case .pong(let i) = reply.message else { throw TerminalScenarioCheckFailure("PING answered with \(reply.message.type)") }
                info = i
            }
            return (info, latencies)
        }
        let sorted = latencies.sorted()
        checks.pass("ping-latency", "\(count) PING/PONG round trips, RTT min \(formatMillis(sorted.first ?? 0)) ms p10 \(formatMillis(percentile(sorted, 10))) ms median \(formatMillis(percentile(sorted, 50))) ms p90 \(formatMillis(percentile(sorted, 90))) ms p99 \(formatMillis(percentile(sorted, 99))) ms max \(formatMillis(sorted.last ?? 0)) ms")
        checks.figures.append("ping RTT median \(formatMillis(percentile(sorted, 50))) ms p99 \(formatMillis(percentile(sorted, 99))) ms")
        if let info, info.serial == device.serial {
            checks.pass("pong-serial", "PONG serial \(info.serial) = USB iSerialNumber (model \(info.model), firmware \(info.firmware))")
        } else {
            checks.fail("pong-serial", "PONG says \(info.map { "\($0)" } ?? "nothing"), USB iSerialNumber is \(device.serial ?? "absent")")
        }
    } catch {
        checks.fail("ping-latency", "\(error)")
    }

    // 2. A prompt round trip.
    do {
        let t0 = nowNanos()
        let outcome = try await driver.withLink { link in try link.request(.showPrompt(TerminalScenarioCheck.creditPrompt), timeout: answer) }
        let rtt = nowNanos() - t0
        if outcome.message == .promptResult(.confirmed(buttonIndex: 0)) {
            checks.pass("prompt", "SHOW_PROMPT -> PROMPT_RESULT confirmed in \(formatMillis(rtt)) ms (emulated shopper delay \(formatMillis(promptDelay)) ms)")
            checks.figures.append("prompt \(formatMillis(rtt)) ms")
        } else {
            checks.fail("prompt", "answered with \(outcome.message)")
        }
    } catch {
        checks.fail("prompt", "\(error)")
    }

    // 3. Unbind the gadget while a prompt is outstanding, rebind, reconnect through hotplug.
    if let gadget = options.optionalString("gadget") {
        await replugTest(driver: driver, gadget: gadget, promptDelay: promptDelay, checks: checks)
    }

    say("\(checks.failed == 0 ? "OK" : "FAIL") host-test: \(checks.passed) passed, \(checks.failed) failed; \(checks.figures.joined(separator: "; "))")
    return checks.failed == 0 ? 0 : 1
}

func replugTest(driver: USBTerminalDriver, gadget: String, promptDelay: UInt64, checks: Checks) async {
    let udcFile = gadgetDirectory(gadget) + "/UDC"
    guard let udc = readSmallFile(udcFile), !udc.isEmpty else {
        checks.fail("unplug-mid-exchange", "gadget \(gadget) is not bound (\(udcFile))")
        return
    }
    guard promptDelay >= 300_000_000 else {
        checks.fail("unplug-mid-exchange", "needs the emulator's --prompt-delay-ms >= 300 (and the same value here) to unbind while the prompt is outstanding")
        return
    }
    // The prompt goes out on the driver's I/O queue; the unbind comes 150 ms later, well before
    // the emulated shopper answers.
    let prompt = Task {
        let t0 = nowNanos()
        do {
            let reply = try await driver.withLink { link in try link.request(.showPrompt(TerminalScenarioCheck.creditPrompt), timeout: .seconds(10)) }
            return (Result<TerminalEnvelope, any Error>.success(reply), nowNanos() - t0)
        } catch {
            return (Result<TerminalEnvelope, any Error>.failure(error), nowNanos() - t0)
        }
    }
    try? await Task.sleep(for: .milliseconds(150))
    let unbindAt = nowNanos()
    do {
        try writeSmallFile(udcFile, "\n")
    } catch {
        checks.fail("unplug-mid-exchange", "unbind: \(error)")
        return
    }
    let (result, elapsed) = await prompt.value
    let afterUnbind = nowNanos() - unbindAt
    switch result {
    case .failure(let error as LinkError) where error == .disconnected:
        checks.figures.append("disconnect seen \(formatMillis(afterUnbind)) ms after unbind")
        checks.pass("unplug-mid-exchange", "gadget \(gadget) unbound 150 ms into a prompt: LinkError.disconnected (\"\(error)\") \(formatMillis(afterUnbind)) ms after the unbind (prompt ran \(formatMillis(elapsed)) ms)")
    case .failure(let error):
        checks.fail("unplug-mid-exchange", "expected LinkError.disconnected, got \(type(of: error)): \(error)")
    case .success(let reply):
        checks.fail("unplug-mid-exchange", "the prompt was answered (\(reply.message.type)) although the gadget was unbound")
    }
    // While unplugged, calls fail fast with the same typed error.
    do {
        _ = try await driver.withLink { link in try link.request(.ping, timeout: .seconds(1)) }
        checks.fail("unplugged-call", "a PING succeeded while the gadget was unbound")
    } catch let error as LinkError where error == .disconnected {
        checks.pass("unplugged-call", "PING while unplugged: LinkError.disconnected at once")
    } catch {
        checks.fail("unplugged-call", "expected LinkError.disconnected, got \(error)")
    }

    try? await Task.sleep(for: .milliseconds(300))
    let rebindAt = nowNanos()
    do {
        try writeSmallFile(udcFile, udc)
    } catch {
        checks.fail("replug", "rebind to \(udc): \(error)")
        return
    }
    guard let device = await driver.waitUntilConnected(timeout: .seconds(15)) else {
        checks.fail("replug", "not reconnected within 15 s of the rebind")
        return
    }
    let reconnect = nowNanos() - rebindAt
    do {
        let t0 = nowNanos()
        let pong = try await driver.withLink { link in try link.request(.ping, timeout: .seconds(5)) }
        let firstPing = nowNanos() - t0
        let outcome = try await driver.withLink { link in try link.request(.showPrompt(TerminalScenarioCheck.creditPrompt), timeout: .seconds(10)) }
        guard case .pong = pong.message, outcome.message == .promptResult(.confirmed(buttonIndex: 0)) else {
            checks.fail("replug", "after reconnecting: \(pong.message.type), \(outcome.message)")
            return
        }
        checks.figures.append("reconnect \(formatMillis(reconnect)) ms after rebind")
        checks.pass("replug", "rebound to \(udc); reconnected to \(device) via \(driver.usesHotplug ? "hotplug" : "polling") \(formatMillis(reconnect)) ms after the rebind; then PING \(formatMillis(firstPing)) ms and a confirmed prompt")
    } catch {
        checks.fail("replug", "exchange after reconnecting: \(error)")
    }
}

func runHostScenario(_ options: Options) async throws -> Int32 {
    bootstrapLogging(verbose: options.flag("verbose"))
    let logger = Logger(label: "host-scenario")
    let scenario = try options.scenario()
    let checks = Checks()
    guard let (driver, device) = try await openDriver(options, checks: checks, logger: logger) else { return 1 }
    defer { driver.stop() }
    var scenarioOptions = TerminalScenarioOptions()
    scenarioOptions.info.serial = device.serial ?? ""
    scenarioOptions.payments = try options.int("count", default: 1)
    let answer = driver.profile.timeouts.answer
    let fixedOptions = scenarioOptions
    let name = options.optionalString("check-name") ?? "scenario-\(scenario)"
    do {
        let summary = try await driver.withLink { link in
            try TerminalScenarioCheck.run(scenario, options: fixedOptions, link: link, answerTimeout: min(answer, .seconds(10)))
        }
        checks.pass(name, summary)
    } catch {
        checks.fail(name, "\(error)")
    }
    return checks.failed == 0 ? 0 : 1
}

/// sim-test: the same PING round trips through a SimulatedTerminal (in-memory cable): the link's
/// own cost, to set against the USB figures.
func runSimTest(_ options: Options) throws -> Int32 {
    bootstrapLogging(verbose: options.flag("verbose"))
    let logger = Logger(label: "sim-test")
    let count = try options.int("count", default: 200)
    let terminal = try SimulatedTerminal(scenario: .echo, logger: logger)
    defer { terminal.stop() }
    let link = TerminalLink(transport: terminal.hostTransport, configuration: LinkConfiguration(), logger: logger)
    defer { link.close() }
    var latencies: [UInt64] = []
    for _ in 0..<count {
        let t0 = nowNanos()
        _ = try link.request(.ping, timeout: .seconds(5))
        latencies.append(nowNanos() - t0)
    }
    latencies.sort()
    say("PASS sim-ping-latency: \(count) PING/PONG round trips over the in-memory cable, RTT min \(formatMillis(latencies.first ?? 0)) ms median \(formatMillis(percentile(latencies, 50))) ms p99 \(formatMillis(percentile(latencies, 99))) ms")
    return 0
}
