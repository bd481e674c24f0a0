// terminal-emulator: plays the USB payment terminal through Linux FunctionFS (tests and demo),
// and the host-side checks that drive it through the real libusb transport (test VM).
// (This is the emulator's documentation: a README here would be an unhandled file of the target.)
//
// Plays the USB payment terminal through Linux **FunctionFS** (a USB gadget driven from user space),
// so the agent's real libusb transport can be tested against the kernel's own USB stack
// (`dummy_hcd` in the test VM; a board with a device-mode port works the same way). The same
// binary carries the agent-side programs the VM test runs.
//
// ```
// swift build --product terminal-emulator
// .build/debug/terminal-emulator help
// ```
//
// ## Playing the terminal
//
// ```
// terminal-emulator --ffs /dev/ffs-NAME --scenario SCENARIO [--count N] [--serial S]
//                   [--prompt-delay-ms MS] [--interrupt-in] [--seconds S] [--gadget NAME] [--verbose]
// ```
//
// 1. A configfs gadget with an `ffs.NAME` function, FunctionFS mounted at `/dev/ffs-NAME`
//    (`vm_ffs_gadget_create NAME 0x1209 0x4b41` in the test VM; ids of the
//    `kiosk-emulated-terminal` profile).
// 2. Start the emulator: it writes the descriptors (one vendor-specific interface; ep1 bulk IN —
//    or interrupt IN with `--interrupt-in` —, ep2 bulk OUT; full and high speed) and the interface
//    string to ep0, sets the gadget's iSerialNumber in configfs with `--serial`, prints `READY`.
// 3. Bind the gadget to a UDC (`vm_ffs_bind NAME`). Each time the host configures the device
//    (FunctionFS `ENABLE`) a session starts: a `TerminalLink` over the bulk endpoints plays the
//    scenario until `DISABLE`/`UNBIND` or an `ESHUTDOWN`; the next `ENABLE` starts a new session.
//
// Scenarios (`TerminalScenario`, Sources/PaymentTerminal/USBTerminalScenario.swift; every scenario
// answers PING with PONG carrying the serial, STATUS_REQUEST and DISPLAY_TEXT):
//
// | scenario | the terminal |
// | --- | --- |
// | `pay-confirm` | sends PAYMENT_RESULT after the agent's first message, answers SHOW_PROMPT "confirmed"; `--count` payments |
// | `pay-decline` | the same, the shopper declines |
// | `no-answer` | sends PAYMENT_RESULT, ACKs SHOW_PROMPT and never answers it |
// | `garbage` | as pay-confirm with 1–24 random bytes (never ACK/NAK) before and after each frame |
// | `full-pan` | a PAYMENT_RESULT carrying a full PAN, framed without its own codec's validation: the agent must refuse it |
// | `unplug-mid-exchange` | on SHOW_PROMPT unbinds its gadget (writes "" to configfs `UDC`) and exits |
// | `echo` | sends nothing by itself; answers everything (prompts after `--prompt-delay-ms`); for `kioskctl terminal test` |
//
// Lines on stdout: `READY`, `EVENT ...` (ep0), `SESSION n ...`, what the scenario did, `STOP ...`.
// SIGTERM/SIGINT stop it cleanly (threads joined); closing ep0 unregisters the gadget.
//
// Threads: `ffs-ep0` (events, stalls control requests), `ffs-out` (blocking reads of ep2 into a
// buffer), `ffs-in` (blocking writes of ep1; a write that nobody reads within its timeout is
// interrupted with SIGUSR2 and reported as a timeout). The main loop runs on the main thread.
//
// ## Agent-side programs (through `USBTerminalDriver` and libusb)
//
// ```
// terminal-emulator host-test [--profile FILE] [--vid V] [--pid P] [--serial S] [--count 200] [--gadget NAME] [--prompt-delay-ms MS] [--poll]
// terminal-emulator host-scenario --scenario SCENARIO [--profile FILE] [--count N] [--poll] [--check-name NAME]
// terminal-emulator sim-test [--count 200]
// ```
//
// - `host-test`: open via hotplug (or `--poll`), PONG serial = USB iSerialNumber, `--count` PINGs
//   (RTT median/p99/max), a prompt round trip; with `--gadget` it unbinds the gadget 150 ms into a
//   prompt (expects `LinkError.disconnected`), checks calls fail fast while unplugged, rebinds and
//   measures the reconnect through hotplug, then exchanges again. Needs the emulator's
//   `--prompt-delay-ms` ≥ 300 (same value on both).
// - `host-scenario`: the agent's side of one scenario (`TerminalScenarioCheck`, the checks the unit
//   tests run against `SimulatedTerminal`).
// - `sim-test`: PINGs through the in-process `SimulatedTerminal`: the link's own cost, the
//   baseline for the USB figures.
//
// Each prints `PASS name: detail` / `FAIL name: detail`; exit status 1 on any failure.
//
// The VM test that puts it together: `Devices/testvm/tests/terminal-usb.sh` (see its header).
#if canImport(Glibc)
import Glibc
#endif
import Logging
import PaymentTerminal
import Synchronization

let usage = """
    usage:
      terminal-emulator --ffs /dev/ffs-NAME --scenario SCENARIO [--count N] [--serial S]
                        [--prompt-delay-ms MS] [--interrupt-in] [--seconds S] [--gadget NAME] [--verbose]
          play the terminal on the FunctionFS function mounted at /dev/ffs-NAME (write its
          descriptors; bind the gadget after READY). SCENARIO: \(TerminalScenario.allCases.map(\.rawValue).joined(separator: ", ")).
          --count: payments to play (default 1). --serial: set the gadget's iSerialNumber (configfs,
          before binding; default: keep it) and answer PING with it. --interrupt-in: interrupt IN
          endpoint instead of bulk. Stops on SIGTERM/SIGINT, after --seconds (default 600), or when
          the scenario unplugs (the gadget is unbound and the process exits).

      terminal-emulator host-test [--profile FILE] [--vid V --pid P] [--serial S] [--count 200] [--gadget NAME]
                        [--prompt-delay-ms MS] [--poll] [--verbose]
          the agent's side through libusb (USBTerminalDriver): open, PING x count (RTT median/p99),
          prompt round trip, and with --gadget an unbind in the middle of a prompt (LinkError.disconnected),
          a rebind and a reconnect through hotplug. PASS/FAIL lines; exit 1 on any FAIL.

      terminal-emulator host-scenario --scenario SCENARIO [--profile FILE] [--serial S] [--count N] [--poll]
                        [--check-name NAME]
          the agent's side of one scenario through libusb (the checks the unit tests run in-process).

      terminal-emulator sim-test [--count 200]
          PING round trips through the in-process SimulatedTerminal: the link's own cost.
    """

func bootstrapLogging(verbose: Bool) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = verbose ? .debug : .notice
        return handler
    }
}

/// The SIGTERM/SIGINT received (0: none); set by the handler, polled by the main loop.
let stopSignal = Atomic<Int32>(0)

/// SIGTERM and SIGINT ask for a clean stop (threads joined, STOP line printed). A handler rather
/// than a blocked mask: threads the runtime started before main would take the signal's default
/// action (death) otherwise.
func installStopHandlers() {
    for signal in [SIGTERM, SIGINT] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { stopSignal.store($0, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        _ = sigaction(signal, &action, nil)
    }
}

func runEmulator(_ options: Options) throws -> Int32 {
    installStopHandlers()
    let path = try options.string("ffs")
    let scenario = try options.scenario()
    let seconds = try options.int("seconds", default: 600)
    let base = path.split(separator: "/").last.map(String.init) ?? path
    let gadget = options.optionalString("gadget") ?? (base.hasPrefix("ffs-") ? String(base.dropFirst(4)) : base)
    let gadgetDir = gadgetDirectory(gadget)
    let serialFile = gadgetDir + "/strings/0x409/serialnumber"
    if let serial = options.optionalString("serial") {
        try writeSmallFile(serialFile, serial)
    }
    let serial = readSmallFile(serialFile) ?? options.optionalString("serial") ?? "EMU-0001"
    var scenarioOptions = TerminalScenarioOptions()
    scenarioOptions.info.serial = serial
    scenarioOptions.payments = try options.int("count", default: 1)
    scenarioOptions.promptDelay = .milliseconds(try options.int("prompt-delay-ms", default: 0))
    bootstrapLogging(verbose: options.flag("verbose"))
    let logger = Logger(label: "terminal-emulator")

    let function = try FunctionFSFunction(
        path: path, interruptIn: options.flag("interrupt-in"), interfaceName: "kiosk-agent emulated payment terminal",
        note: { say($0) })
    let threads = try function.start()
    let player = TerminalScenarioPlayer(scenario: scenario, options: scenarioOptions) { say($0) }
    say("READY terminal-emulator \(path): scenario \(scenario), serial \(serial), \(options.flag("interrupt-in") ? "interrupt" : "bulk") IN ep1, bulk OUT ep2")

    let deadline = nowNanos() + UInt64(seconds) * 1_000_000_000
    var stopReason = "time limit \(seconds) s"
    func shouldStop() -> Bool {
        let signal = stopSignal.load(ordering: .relaxed)
        if signal > 0 {
            stopReason = "signal \(signal)"
            return true
        }
        return nowNanos() >= deadline
    }

    var sessions = 0
    var unplugged = false
    while !shouldStop() {
        guard let session = function.waitForSession(timeout: .milliseconds(200)) else { continue }
        sessions += 1
        say("SESSION \(session): host configured the device")
        let transport = FunctionFSTransport(function: function, session: session, writer: threads.writer)
        let link = TerminalLink(transport: transport, configuration: LinkConfiguration(), logger: logger)
        let end = player.play(link: link, raw: transport, unplug: {
            // A real unplug: unbind the gadget from its UDC (exiting also would: closing ep0
            // unregisters the gadget).
            do {
                try writeSmallFile(gadgetDir + "/UDC", "\n")
                say("UNPLUG: gadget \(gadget) unbound")
            } catch {
                say("UNPLUG: cannot unbind \(gadget) (\(error)); exiting unbinds it")
            }
        }, shouldStop: shouldStop)
        link.close()
        say("SESSION \(session) ended: \(end)")
        if end == .unplugged {
            unplugged = true
            stopReason = "unplugged by the scenario"
            break
        }
        if end == .stopped { break }
    }
    function.stop(threads)
    say("STOP terminal-emulator (\(stopReason)): \(sessions) session(s), \(player.paymentsSent) payment(s) sent\(unplugged ? ", unplugged" : "")")
    return 0
}

/// `hid-type --device /dev/hidg0 --layout us --text T [--text T2 ...]`: plays a keyboard-wedge
/// scanner on a configfs HID gadget (usb_f_hid): each text as key-down/key-up boot-keyboard
/// reports followed by Enter, as a scanner configured for that layout sends it.
func runHIDType(_ options: Options) throws -> Int32 {
    let path = try options.string("device")
    guard let layout = KeyboardLayout(rawValue: try options.string("layout", default: "us")) else { throw UsageError(description: "unknown --layout") }
    let texts = try options.string("text").split(separator: "|").map(String.init)
    let fd = open(path, O_WRONLY)
    guard fd >= 0 else { throw UsageError(description: "cannot open \(path): errno \(errno)") }
    defer { close(fd) }
    for text in texts {
        guard let reports = HIDKeyboardDecoder.reports(typing: text, layout: layout) else { throw UsageError(description: "\(layout) cannot type \(text)") }
        for r in reports {
            // Each write is one interrupt IN report; it blocks until the host has polled the last one.
            let n = r.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n == r.count else { throw UsageError(description: "write \(path): \(n) bytes, errno \(errno)") }
        }
        say("typed \(text.count) characters + Enter (\(reports.count) reports, layout \(layout.rawValue))")
    }
    return 0
}

// Top-level code runs on the main thread: the emulator's blocking loop stays there (never on
// Swift's cooperative pool); the host checks await the driver, whose blocking calls run on its
// own dispatch queue and threads.
let arguments = CommandLine.arguments
let command = arguments.count >= 2 && !arguments[1].hasPrefix("--") ? arguments[1] : "emulate"
var status: Int32
do {
    let options = try Options(command == "emulate" ? arguments.dropFirst(1) : arguments.dropFirst(2),
                              flags: ["verbose", "interrupt-in", "poll", "help"])
    switch command {
    case _ where options.flag("help"), "help", "-h":
        say(usage)
        status = 0
    case "emulate": status = try runEmulator(options)
    case "host-test": status = try await runHostTest(options)
    case "host-scenario": status = try await runHostScenario(options)
    case "sim-test": status = try runSimTest(options)
    case "hid-type": status = try runHIDType(options)
    default:
        say(usage)
        status = 2
    }
} catch let error as UsageError {
    say("terminal-emulator \(command): \(error)")
    status = 2
} catch {
    say("FAIL \(command): \(error)")
    status = 1
}
exit(status)
