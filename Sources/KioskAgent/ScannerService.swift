import Foundation
import Logging
import PaymentTerminal
import ServiceLifecycle
import Synchronization

/// Publishes what the QR/barcode scanner reads on the event bus (codes masked: they are
/// one-time payment codes) and keeps its state for status.
public final class ScannerService: Service, Sendable {
    /// The driver (started by the daemon before READY=1).
    public let scanner: HIDScanner
    private let bus: EventBus
    private let logger: Logger
    private let state = Mutex<(connected: Bool, detail: String, codes: Int)>((false, "not found yet", 0))

    /// Wraps a driver.
    public init(scanner: HIDScanner, bus: EventBus, logger: Logger) {
        self.scanner = scanner
        self.bus = bus
        self.logger = logger
    }

    /// Connected or not, why, and how many codes were read since start.
    public var status: [String: Any] {
        let s = state.withLock { $0 }
        return ["profile": scanner.profile.name, "connected": s.connected, "detail": s.detail, "codes_read": s.codes]
    }

    /// Forwards driver events until graceful shutdown.
    public func run() async throws {
        let scanner = self.scanner
        await withGracefulShutdownHandler {
            for await event in scanner.events {
                switch event {
                case .connected(let d):
                    state.withLock { $0 = (true, "\(d)", $0.codes) }
                    bus.publish("scanner", ["state": "connected", "device": "\(d)", "profile": scanner.profile.name])
                case .disconnected(let why):
                    state.withLock { $0 = (false, why, $0.codes) }
                    bus.publish("scanner", ["state": "disconnected", "reason": why, "profile": scanner.profile.name])
                case .code(let code):
                    state.withLock { $0.codes += 1 }
                    bus.publish("code_scanned", ["code": HIDKeyboardDecoder.masked(code), "length": code.count])
                case .overflow(let n):
                    bus.publish("code_rejected", ["reason": "longer than \(scanner.profile.maxLength) characters", "length": n])
                }
            }
        } onGracefulShutdown: {
            // stop() waits for the reader thread (≤ ~250 ms): not on the caller's thread.
            DispatchQueue.global().async { scanner.stop() }
        }
    }
}
