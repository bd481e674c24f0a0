import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Serves the control socket: a Unix stream socket, newline-delimited JSON requests and replies.
///
/// The socket is created mode 0660 (and given the configured group), so only the agent's user
/// and group (the technician's `kioskctl`, the kiosk screen app) can talk to it.
public final class ControlService: Service, Sendable {
    /// Answers one request line with one reply (JSON object bytes).
    public typealias Handler = @Sendable (Data) async -> Data

    /// Opens a live event stream for a `{"cmd":"watch"}` connection.
    public typealias Watch = @Sendable () -> AsyncStream<Data>

    private let path: String
    private let group: String
    private let handler: Handler
    private let watch: Watch?
    private let onListening: @Sendable () -> Void
    private let logger: Logger

    /// Creates the service.
    /// - Parameter watch: when set, a `{"cmd":"watch"}` request turns its connection into a stream of
    ///   event lines (after a `{"ok":true,"watching":true}` line) until the client closes it.
    public init(path: String, group: String, logger: Logger, watch: Watch? = nil,
                onListening: @escaping @Sendable () -> Void = {}, handler: @escaping Handler) {
        self.path = path
        self.group = group
        self.handler = handler
        self.watch = watch
        self.onListening = onListening
        self.logger = logger
    }

    /// Binds, then serves connections until graceful shutdown.
    public func run() async throws {
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let oldMask = umask(0o117)
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            umask(oldMask)
            throw error
        }
        umask(oldMask)
        chmod(path, 0o660)
        if !group.isEmpty {
            if let gr = getgrnam(group) {
                if chown(path, uid_t.max, gr.pointee.gr_gid) != 0 {
                    logger.warning("cannot give the control socket to its group", metadata: ["group": "\(group)", "errno": "\(errno)"])
                }
            } else {
                logger.warning("control group does not exist", metadata: ["group": "\(group)"])
            }
        }
        logger.info("control socket listening", metadata: ["path": "\(path)"])
        onListening()
        let handler = self.handler
        let logger = self.logger
        let watch = self.watch
        defer { unlink(path) }
        do {
            try await serve(server, handler: handler, watch: watch, logger: logger)
        } catch is CancellationError {
            // graceful shutdown: the accept loop was cancelled
        }
    }

    private func serve(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, handler: @escaping Handler,
                       watch: Watch?, logger: Logger) async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            do {
                                try await Self.serve(connection, handler: handler, watch: watch)
                            } catch {
                                logger.debug("control connection ended", metadata: ["error": "\(error)"])
                            }
                        }
                    }
                }
            }
        }
    }

    static func isWatchRequest(_ line: Data) -> Bool {
        guard let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { return false }
        return obj["cmd"] as? String == "watch"
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, handler: Handler, watch: Watch?) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var pending = [UInt8]()
            for try await chunk in inbound {
                pending += chunk.readableBytesView
                guard pending.count <= 1 << 20 else {
                    try await outbound.write(ByteBuffer(string: "{\"ok\":false,\"error\":\"request line longer than 1 MiB\"}\n"))
                    return
                }
                while let nl = pending.firstIndex(of: 10) {
                    let line = Data(pending[..<nl])
                    pending.removeSubrange(...nl)
                    if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                    if let watch, isWatchRequest(line) {
                        // Stream events until the client goes away (a write fails) or shutdown.
                        try await outbound.write(ByteBuffer(string: "{\"ok\":true,\"watching\":true}\n"))
                        for await event in watch() {
                            var bytes = event
                            bytes.append(10)
                            try await outbound.write(ByteBuffer(bytes: bytes))
                        }
                        return
                    }
                    var reply = await handler(line)
                    reply.append(10)
                    try await outbound.write(ByteBuffer(bytes: reply))
                }
            }
        }
    }
}

/// A client for the control socket (used by `kioskctl` and tests).
public enum ControlClient {
    /// Sends one request line and returns the reply line; throws a POSIX error if the agent is not there.
    public static func request(socketPath: String, _ body: Data, timeoutSeconds: Int = 10) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlClientError.system("socket", errno) }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw ControlClientError.system("socket path too long", ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw ControlClientError.system("connect \(socketPath)", errno) }
        var out = [UInt8](body)
        out.append(10)
        var off = 0
        while off < out.count {
            let n = out[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ControlClientError.system("send", errno)
            }
            off += n
        }
        var reply = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ControlClientError.system("recv", errno)
            }
            if n == 0 { break }
            reply += buf[..<n]
            if let nl = reply.firstIndex(of: 10) { return Data(reply[..<nl]) }
        }
        throw ControlClientError.closed
    }
}

extension ControlClient {
    /// Sends `{"cmd":"watch"}` and calls `onLine` with each event line until the agent closes the
    /// connection or `onLine` returns false. Blocking (a CLI's main thread).
    public static func watch(socketPath: String, onLine: (Data) -> Bool) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlClientError.system("socket", errno) }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw ControlClientError.system("socket path too long", ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw ControlClientError.system("connect \(socketPath)", errno) }
        let request = Array("{\"cmd\":\"watch\"}\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw ControlClientError.system("send", errno)
        }
        var pending = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        var first = true
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ControlClientError.system("recv", errno)
            }
            if n == 0 { return }
            pending += buf[..<n]
            while let nl = pending.firstIndex(of: 10) {
                let line = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                if first {
                    first = false
                    // The agent's acknowledgement, or its refusal.
                    if let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any], obj["ok"] as? Bool == true { continue }
                    throw ControlClientError.refused(String(decoding: line, as: UTF8.self))
                }
                if !onLine(line) { return }
            }
        }
    }
}

/// The control socket could not be used.
public enum ControlClientError: Error, Sendable, CustomStringConvertible {
    /// A system call failed with this errno.
    case system(String, Int32)
    /// The agent closed the connection without a reply.
    case closed
    /// The agent refused the request (its reply).
    case refused(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .system(what, code): return "\(what): \(String(cString: strerror(code))) (errno \(code))"
        case .closed: return "the agent closed the connection without replying"
        case let .refused(reply): return "the agent refused: \(reply)"
        }
    }
}
