import KioskSys
import Glibc
import Logging
import Synchronization
import Testing

@testable import PaymentTerminal

/// Whether libusb can start here (CI machines without usbfs cannot: those tests are skipped;
/// the device paths run in the test VM, Devices/testvm/tests/terminal-usb.sh).
private let libusbAvailable: Bool = (try? USBContext()) != nil

private let emulatedProfile = DeviceProfile(
    name: "test-terminal", protocolName: "kiosk-terminal-link/1", vendorID: 0x1209, productID: 0x4b41,
    inEndpoint: .init(address: 0x81, type: .bulk), outEndpoint: .init(address: 0x02, type: .bulk),
    timeouts: .init(write: .seconds(1), ack: .milliseconds(300), answer: .seconds(5)))

@Suite("USB threads and driver (no device)")
struct USBDriverTests {
    let logger = Logger(label: "test.usb-driver")

    /// A thread blocked in read(2) is ended by interruptAndJoin, also when it was created from a
    /// thread that blocks the signal (Swift Testing runs tests on dispatch workers, which do).
    @Test func interruptAndJoinEndsABlockingRead() throws {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: the read returns EINTR
        var previous = sigaction()
        #expect(sigaction(SIGUSR2, &action, &previous) == 0)
        defer { _ = sigaction(SIGUSR2, &previous, nil) }

        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let readEnd = fds[0]
        let result = Mutex<String>("")
        let thread = try USBThread(name: "test-blocked", unblocking: [SIGUSR2]) {
            var byte: UInt8 = 0
            let n = read(readEnd, &byte, 1)
            let code = errno
            result.withLock { $0 = n < 0 ? errnoName(code) : "read \(n)" }
        }
        sleepNanos(50_000_000)
        #expect(!thread.isFinished)
        let t0 = monotonicNanos()
        thread.interruptAndJoin(signal: SIGUSR2)
        #expect(thread.isFinished)
        #expect(result.withLock { $0 } == "EINTR")
        #expect(monotonicNanos() - t0 < 2_000_000_000)
    }

    @Test(.enabled(if: libusbAvailable, "libusb cannot initialise on this machine (no usbfs)"))
    func driverWithoutATerminalFailsFastWithDisconnected() async throws {
        let driver = try USBTerminalDriver(profile: emulatedProfile, watchMode: .polling(interval: .milliseconds(50)), logger: logger)
        try driver.start()
        #expect(await driver.waitUntilConnected(timeout: .milliseconds(200)) == nil)
        #expect(driver.connectedDevice == nil)
        await #expect(throws: LinkError.disconnected) {
            _ = try await driver.withLink { link in try link.request(.ping, timeout: .seconds(1)) }
        }
        driver.stop()
        var events = 0
        for await _ in driver.events { events += 1 }  // finishes after stop()
        #expect(events == 0)
        #expect(await driver.waitUntilConnected(timeout: .seconds(5)) == nil)  // stopped: at once
    }

    @Test(.enabled(if: libusbAvailable, "libusb cannot initialise on this machine (no usbfs)"))
    func watcherStopsPromptlyAndFinishesItsStream() async throws {
        let context = try USBContext()
        for mode in [USBDeviceWatcher.Mode.automatic, .polling(interval: .seconds(10))] {
            let watcher = USBDeviceWatcher(context: context, vendorID: 0x1209, productID: 0x4b41, mode: mode, logger: logger)
            try watcher.start()
            let t0 = monotonicNanos()
            watcher.stop()
            #expect(monotonicNanos() - t0 < 1_000_000_000, "stop() took too long in \(mode)")
            for await event in watcher.events { Issue.record("unexpected \(event)") }
        }
    }

    @Test func openingWithoutLibusbDevicesSaysNotFound() throws {
        guard let context = try? USBContext() else { return }
        #expect(throws: USBTerminalError.notFound(usbID: "1209:4b41", serial: "nope")) {
            _ = try context.openTerminal(profile: emulatedProfile, serial: "nope")
        }
    }
}
