import Foundation
import KioskCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A failure to set up, start or run a ``CentralServer``.
public enum CentralServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The certificate, key or CA file could not be loaded, or the TLS context not built.
    case tls(String)
    /// The database could not be opened.
    case store(CentralStoreError)
    /// The listening socket could not be bound.
    case bind(String)
    /// ``CentralServer/start()`` was called twice, or after ``CentralServer/stop()``.
    case alreadyStarted

    /// A human-readable explanation.
    public var description: String {
        switch self {
        case .tls(let reason): "TLS setup failed: \(reason)"
        case .store(let error): "\(error)"
        case .bind(let reason): "cannot listen: \(reason)"
        case .alreadyStarted: "the server was already started"
        }
    }
}

/// The reference receiver of kiosk batches: HTTPS with mandatory client certificates, SQLite storage.
///
/// Typical in-process use (tests):
/// ```swift
/// let server = try CentralServer(configuration: .init(
///     certificatePath: pki + "/server.pem", privateKeyPath: pki + "/server.key",
///     caPath: pki + "/ca.pem", databasePath: dir + "/central.sqlite"))
/// let port = try await server.start()          // bound on 127.0.0.1, ephemeral port
/// ...                                          // https://127.0.0.1:\(port)/v1/...
/// try await server.store.count()
/// await server.stop()
/// ```
/// Connections are served by Swift concurrency tasks (one per connection, requests answered in
/// order); database work runs on GRDB's queues, never on a NIO event loop.
public final class CentralServer: Sendable {
    /// The configuration the server was created with.
    public let configuration: CentralConfiguration
    /// The store the server writes to; usable concurrently, also after ``stop()``.
    public let store: CentralStore
    /// The fault decisions; its ``FaultInjector/seed`` is the one in force.
    public let faultInjector: FaultInjector

    private let logger: Logger
    private let sslContext: NIOSSLContext
    private let router: CentralRouter
    private let registry = ConnectionRegistry()
    private let state = NIOLockedValueBox(LifecycleState.idle)
    private let served = NIOLockedValueBox(Set<ServedResponse>())
    /// TLS without client certificates, for the enrolment listener (nil when enrolment is off).
    private let enrolmentContext: NIOSSLContext?
    private let enrolmentListener = NIOLockedValueBox<(port: Int, channel: any Channel, acceptor: Task<Void, Never>)?>(nil)

    private enum LifecycleState {
        case idle
        case running(port: Int, serverChannel: any Channel, acceptor: Task<Void, Never>)
        case stopped
    }

    /// Loads the TLS material and opens the store; nothing listens until ``start()``.
    public init(
        configuration: CentralConfiguration,
        logger: Logger = Logger(label: "kiosk-central")
    ) throws(CentralServerError) {
        self.configuration = configuration
        self.logger = logger
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(configuration.certificatePath)
            let key = try NIOSSLPrivateKey(file: configuration.privateKeyPath, format: .pem)
            let roots = try NIOSSLCertificate.fromPEMFile(configuration.caPath)
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key)
            )
            tls.minimumTLSVersion = .tlsv12
            // Client certificates are required (SSL_VERIFY_FAIL_IF_NO_PEER_CERT) and must chain to `roots`.
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .certificates(roots)
            tls.sendCANameList = true
            self.sslContext = try NIOSSLContext(configuration: tls)
            if configuration.enrolment != nil {
                var open = TLSConfiguration.makeServerConfiguration(
                    certificateChain: chain.map { .certificate($0) },
                    privateKey: .privateKey(key)
                )
                open.minimumTLSVersion = .tlsv12
                open.certificateVerification = .none
                self.enrolmentContext = try NIOSSLContext(configuration: open)
            } else {
                self.enrolmentContext = nil
            }
        } catch {
            throw .tls(String(describing: error))
        }
        var ca: DeviceCA?
        if let enrolment = configuration.enrolment {
            do {
                ca = try DeviceCA(
                    certificatePath: enrolment.caCertificatePath, keyPath: enrolment.caKeyPath,
                    validity: enrolment.certificateValidity)
            } catch {
                throw .tls("enrolment CA: \(error)")
            }
        }
        do {
            self.store = try CentralStore(path: configuration.databasePath)
        } catch {
            throw .store(error)
        }
        self.faultInjector = FaultInjector(configuration: configuration.faults)
        self.router = CentralRouter(
            store: self.store, injector: self.faultInjector, configuration: configuration, logger: logger, ca: ca)
    }

    /// Binds the listening socket and starts serving; returns the bound port (useful with port 0).
    @discardableResult
    public func start() async throws(CentralServerError) -> Int {
        let ready = self.state.withLockedValue { state in
            if case .idle = state { return true }
            return false
        }
        guard ready else { throw .alreadyStarted }

        let listener = try await Self.bind(
            host: self.configuration.host, port: self.configuration.port, context: self.sslContext)
        if let enrolment = self.configuration.enrolment, let context = self.enrolmentContext {
            let open: Listener
            do throws(CentralServerError) {
                open = try await Self.bind(host: enrolment.host, port: enrolment.port, context: context)
            } catch {
                try? await listener.channel.close()
                throw error
            }
            let openPort = open.channel.localAddress?.port ?? enrolment.port
            let openAcceptor = Task { await self.accept(open, enrolmentOnly: true) }
            self.enrolmentListener.withLockedValue { $0 = (openPort, open.channel, openAcceptor) }
            self.logger.info("enrolment listening", metadata: ["address": "\(enrolment.host):\(openPort)"])
        }
        let port = listener.channel.localAddress?.port ?? self.configuration.port
        let acceptor = Task { await self.accept(listener, enrolmentOnly: false) }
        let installed = self.state.withLockedValue { state in
            guard case .idle = state else { return false }
            state = .running(port: port, serverChannel: listener.channel, acceptor: acceptor)
            return true
        }
        guard installed else {
            listener.channel.close(promise: nil)
            acceptor.cancel()
            throw .alreadyStarted
        }
        self.logger.info(
            "listening",
            metadata: [
                "address": "\(self.configuration.host):\(port)",
                "fault_rate": "\(self.configuration.faults.rate)",
                "faults": "\(self.configuration.faults.kinds.map(\.rawValue).joined(separator: ","))",
                "fault_seed": "\(self.faultInjector.seed)",
            ])
        return port
    }

    private typealias Listener = NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>

    private static func bind(host: String, port: Int, context: NIOSSLContext) async throws(CentralServerError) -> Listener {
        do {
            return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 256)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLServerHandler(context: context))
                        try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw .bind("\(host):\(port): \(error)")
        }
    }

    /// The bound port of the enrolment listener while running (`nil` when enrolment is off).
    public var enrolmentPort: Int? {
        self.enrolmentListener.withLockedValue { $0?.port }
    }

    /// The bound port while running, `nil` before ``start()`` and after ``stop()``.
    public var port: Int? {
        self.state.withLockedValue { state in
            if case .running(let port, _, _) = state { return port }
            return nil
        }
    }

    /// Stops gracefully: stops accepting, closes idle connections, lets in-flight requests finish
    /// (up to ``CentralConfiguration/shutdownGracePeriod``, then cancels them). Idempotent.
    public func stop() async {
        let running: (any Channel, Task<Void, Never>)? = self.state.withLockedValue { state in
            switch state {
            case .running(_, let channel, let acceptor):
                state = .stopped
                return (channel, acceptor)
            case .idle:
                state = .stopped
                return nil
            case .stopped:
                return nil
            }
        }
        guard let (listener, acceptor) = running else { return }
        self.logger.info("stopping")
        let enrolment = self.enrolmentListener.withLockedValue { value in
            defer { value = nil }
            return value
        }
        if let enrolment {
            try? await enrolment.channel.close()
            enrolment.acceptor.cancel()
        }
        try? await listener.close()
        for channel in self.registry.beginShutdown() {
            channel.close(promise: nil)
        }
        let grace = self.configuration.shutdownGracePeriod
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await acceptor.value }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            group.cancelAll()
        }
        acceptor.cancel()
        await acceptor.value
        self.logger.info("stopped")
    }

    /// How many requests are being answered now (their connections busy); for graceful-stop checks.
    public var requestsInFlight: Int { self.registry.busyCount }

    /// Every (method, route, status) the server has answered so far, for contract checks.
    public func servedResponses() -> Set<ServedResponse> {
        self.served.withLockedValue { $0 }
    }

    // MARK: Connections

    private func accept(_ listener: Listener, enrolmentOnly: Bool) async {
        do {
            try await listener.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection, enrolmentOnly: enrolmentOnly) }
                    }
                }
            }
        } catch {
            self.logger.debug("listener closed", metadata: ["error": "\(error)"])
        }
    }

    private func serve(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, enrolmentOnly: Bool
    ) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        guard self.registry.register(channel) else {
            try? await channel.close()
            return
        }
        defer { self.registry.unregister(id) }
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await self.serveRequests(
                    channel: channel, inbound: inbound, outbound: outbound, logger: logger,
                    enrolmentOnly: enrolmentOnly)
            }
        } catch {
            // Handshake failures (no or untrusted client certificate) end up here.
            logger.info("connection ended with error", metadata: ["error": "\(error)"])
        }
    }

    private func serveRequests(
        channel: any Channel,
        inbound: NIOAsyncChannelInboundStream<HTTPServerRequestPart>,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        logger: Logger,
        enrolmentOnly: Bool
    ) async throws {
        let id = ObjectIdentifier(channel)
        var parts = inbound.makeAsyncIterator()
        var peerCommonName: String?? = nil
        var peerCertificateSHA256: String? = nil
        let maxBody = self.configuration.maxBodyBytes

        while let part = try await parts.next() {
            guard case .head(let head) = part else {
                logger.debug("request part without a head; closing")
                return
            }
            self.registry.setBusy(id, true)
            if peerCommonName == nil && enrolmentOnly {
                // The enrolment listener does not verify client certificates: never trust one there.
                peerCommonName = .some(nil)
            } else if peerCommonName == nil {
                let certificate = try? await channel.nioSSL_peerCertificate().get()
                peerCommonName = .some(Self.commonName(of: certificate))
                if let der = try? certificate?.toDERBytes() {
                    peerCertificateSHA256 = sha256Hex(Data(der))
                }
            }

            // Collect the body, within the size limit.
            let declaredLength = head.headers.first(name: "content-length").flatMap { Int($0) }
            let expectsContinue = head.headers["expect"].contains { $0.lowercased() == "100-continue" }
            var tooLarge = false
            if let declaredLength, declaredLength > maxBody {
                tooLarge = true
                if expectsContinue {
                    // The client waits for our word before sending the body: refuse and close.
                    var reply = await self.router.bodyTooLarge()
                    reply.closeConnection = true
                    try await self.write(reply, for: head, route: CentralRouter.batchPath, keepAlive: false, to: outbound)
                    return
                }
            } else if expectsContinue {
                try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .continue)))
            }
            var body = channel.allocator.buffer(capacity: min(declaredLength ?? 0, maxBody))
            var received = 0
            var complete = false
            bodyLoop: while let part = try await parts.next() {
                switch part {
                case .body(var chunk):
                    received += chunk.readableBytes
                    if received > maxBody {
                        tooLarge = true
                        body.clear()
                        // Read and discard a moderately oversized body so the 413 can be read by the client.
                        if received > 4 * maxBody { return }
                    } else {
                        body.writeBuffer(&chunk)
                    }
                case .end:
                    complete = true
                    break bodyLoop
                case .head:
                    logger.debug("a new request head inside a body; closing")
                    return
                }
            }
            guard complete else { return }

            let request = CentralRequest(
                method: head.method, uri: head.uri, headers: head.headers, body: body,
                peerCommonName: peerCommonName ?? nil, peerCertificateSHA256: peerCertificateSHA256,
                onEnrolmentListener: enrolmentOnly)
            let route = CentralRouter.route(of: request)
            let reply = tooLarge ? await self.router.bodyTooLarge() : await self.router.handle(request)
            logger.debug(
                "request",
                metadata: ["method": "\(head.method.rawValue)", "uri": "\(head.uri)", "status": "\(reply.status.code)"])

            switch reply.disposition {
            case .dropConnection:
                return
            case .truncateAndClose:
                try await self.write(reply, for: head, route: route, keepAlive: false, to: outbound, truncate: true)
                return
            case .complete:
                let keepAlive = head.isKeepAlive && !reply.closeConnection && !self.registry.isShuttingDown
                try await self.write(reply, for: head, route: route, keepAlive: keepAlive, to: outbound)
                if !keepAlive { return }
            }
            if self.registry.setBusy(id, false) {
                return  // shutting down: the connection was busy, now it is done
            }
        }
    }

    /// An HTTP Date header value (IMF-fixdate).
    static func httpDate(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: date)
    }

    private func write(
        _ reply: CentralReply,
        for request: HTTPRequestHead,
        route: String,
        keepAlive: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        truncate: Bool = false
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: reply.contentType)
        headers.add(name: "Content-Length", value: String(reply.body.count))
        headers.add(name: "Date", value: Self.httpDate(Date()))  // RFC 9110 §6.6.1; kioskctl doctor's clock check reads it
        for (name, value) in reply.extraHeaders {
            headers.add(name: name, value: value)
        }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if request.version.major == 1 && request.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let head = HTTPResponseHead(version: request.version, status: reply.status, headers: headers)
        self.served.withLockedValue {
            _ = $0.insert(ServedResponse(method: request.method.rawValue, route: route, status: Int(reply.status.code)))
        }
        if truncate {
            var buffer = ByteBuffer()
            buffer.writeBytes(reply.body.prefix(reply.body.count / 2))
            try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(buffer))])
        } else {
            var buffer = ByteBuffer()
            buffer.writeBytes(reply.body)
            try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(buffer)), .end(nil)])
        }
    }

    /// The most significant subject CN of a certificate, if any.
    static func commonName(of certificate: NIOSSLCertificate?) -> String? {
        certificate?.subjectName.last { $0.type == .commonName }?.value
    }
}

/// The live connections, so that ``CentralServer/stop()`` can close idle ones and let busy ones finish.
final class ConnectionRegistry: Sendable {
    private struct State {
        var shuttingDown = false
        var connections: [ObjectIdentifier: (channel: any Channel, busy: Bool)] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Adds a connection; `false` when shutting down (the caller must close it).
    func register(_ channel: any Channel) -> Bool {
        self.state.withLockedValue { state in
            guard !state.shuttingDown else { return false }
            state.connections[ObjectIdentifier(channel)] = (channel, false)
            return true
        }
    }

    func unregister(_ id: ObjectIdentifier) {
        self.state.withLockedValue { _ = $0.connections.removeValue(forKey: id) }
    }

    /// Marks a connection busy or idle; returns whether the server is shutting down.
    @discardableResult
    func setBusy(_ id: ObjectIdentifier, _ busy: Bool) -> Bool {
        self.state.withLockedValue { state in
            state.connections[id]?.busy = busy
            return state.shuttingDown
        }
    }

    var isShuttingDown: Bool {
        self.state.withLockedValue { $0.shuttingDown }
    }

    /// How many connections are answering a request now.
    var busyCount: Int {
        self.state.withLockedValue { $0.connections.values.filter(\.busy).count }
    }

    /// Enters shutdown and returns the idle connections, to be closed by the caller.
    func beginShutdown() -> [any Channel] {
        self.state.withLockedValue { state in
            state.shuttingDown = true
            return state.connections.values.filter { !$0.busy }.map(\.channel)
        }
    }
}
