import CKioskShims
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import Sync

/// Watches the kernel's routing netlink for link, address and route changes and rings the
/// sync doorbell, so a kiosk whose network comes back sends at once instead of sleeping out
/// its backoff.
struct NetworkMonitorService: Service {
    let doorbell: Doorbell
    let logger: Logger
    private let executor = BlockingExecutor(label: "kiosk.netlink")

    init(doorbell: Doorbell, logger: Logger) {
        self.doorbell = doorbell
        self.logger = logger
    }

    func run() async throws {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else {
            logger.warning("cannot watch network changes; sync relies on its backoff", metadata: ["errno": "\(errno)"])
            return
        }
        defer { close(fd) }
        guard ka_netlink_bind(fd, KA_RTMGRP_WATCHED) == 0 else {
            logger.warning("cannot subscribe to network changes; sync relies on its backoff", metadata: ["errno": "\(errno)"])
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // Wait up to 1 s for a message so cancellation is noticed promptly.
                let changed = await executor.run { Self.drain(fd: fd, timeoutMillis: 1000) }
                if changed {
                    try? await Task.sleep(for: .milliseconds(500))  // let DHCP and routes settle
                    _ = await executor.run { Self.drain(fd: fd, timeoutMillis: 0) }
                    logger.info("network changed; retrying sync now")
                    doorbell.ringNetworkReturned()
                }
            }
        }
    }

    /// Reads and discards pending netlink messages; returns whether any arrived.
    static func drain(fd: Int32, timeoutMillis: Int32) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var got = false
        var timeout = timeoutMillis
        while poll(&pfd, 1, timeout) > 0 {
            var buf = [UInt8](repeating: 0, count: 16384)
            let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
            if n <= 0 { break }
            got = true
            timeout = 0
        }
        return got
    }
}
