import Foundation
import Logging
import PaymentTerminal
import Synchronization

/// The payment terminal as the checkout runner uses it: a link that may come and go.
public protocol TerminalPort: Sendable {
    /// What the terminal is (for logs and status).
    var name: String { get }
    /// Starts watching for / opening the terminal (before READY=1).
    func start() throws
    /// Stops and closes it. Idempotent.
    func stop()
    /// Runs `body` with the current link on the caller's thread (never the cooperative pool);
    /// throws ``PaymentTerminal/LinkError/disconnected`` when no terminal is connected.
    func withLink<R>(_ body: (TerminalLink) throws -> R) throws -> R
}

/// A USB terminal through libusb (``PaymentTerminal/USBTerminalDriver``): hotplug, reconnect.
public final class USBTerminalPort: TerminalPort {
    /// The driver.
    public let driver: USBTerminalDriver

    /// Opens libusb and prepares the driver for `profile` (and `serial` when several are plugged in).
    public init(profile: DeviceProfile, serial: String?, logger: Logger) throws {
        driver = try USBTerminalDriver(profile: profile, serial: serial, logger: logger)
    }

    /// The profile's name and USB id.
    public var name: String { "usb \(driver.profile.name) \(driver.profile.usbID)" }
    /// Starts the hotplug watcher (a terminal already plugged in is opened at once).
    public func start() throws { try driver.start() }
    /// Stops the driver.
    public func stop() { driver.stop() }
    /// The driver's link on the caller's thread.
    public func withLink<R>(_ body: (TerminalLink) throws -> R) throws -> R { try driver.withLinkBlocking(body) }
}

/// An in-process scripted terminal (``PaymentTerminal/SimulatedTerminal``), for the demo and tests.
public final class SimulatedTerminalPort: TerminalPort {
    private let terminal: SimulatedTerminal
    private let link: TerminalLink
    private let scenario: TerminalScenario

    /// Starts a simulated terminal playing `scenario`.
    public init(scenario: TerminalScenario, options: TerminalScenarioOptions, logger: Logger) throws {
        terminal = try SimulatedTerminal(scenario: scenario, options: options, logger: logger)
        link = TerminalLink(transport: terminal.hostTransport, logger: logger)
        self.scenario = scenario
    }

    /// "simulated <scenario>".
    public var name: String { "simulated \(scenario)" }
    /// Nothing to start: the cable is plugged in at creation.
    public func start() throws {}
    /// Stops the terminal's thread and closes the link.
    public func stop() {
        terminal.stop()
        link.close()
    }
    /// The link over the simulated cable.
    public func withLink<R>(_ body: (TerminalLink) throws -> R) throws -> R {
        guard link.isOpen else { throw LinkError.disconnected }
        return try body(link)
    }
    /// What the simulated terminal did (tests).
    public var transcript: [String] { terminal.transcript }
}
