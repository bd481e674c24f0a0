import Foundation
import KioskCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A consent answer given on the shopper's screen.
public struct ScreenConsentAnswer: Sendable, Equatable {
    /// The checkout it answers.
    public var checkoutID: String
    /// The consent prompt's request id (as announced on `/events`).
    public var requestID: UInt32
    /// Accepted or declined.
    public var answer: PromptAnswer
    /// The exact text the page displayed (verified against its hash).
    public var consent: ConsentText
    /// The instalment plan selected on the offer, as it was offered (nil: none sent).
    public var plan: ChosenPlan?

    /// Creates an answer.
    public init(checkoutID: String, requestID: UInt32, answer: PromptAnswer, consent: ConsentText, plan: ChosenPlan? = nil) {
        self.checkoutID = checkoutID
        self.requestID = requestID
        self.answer = answer
        self.consent = consent
        self.plan = plan
    }
}

/// What became of a screen answer.
public enum ScreenAnswerOutcome: String, Sendable, Equatable {
    /// Taken: it is the checkout's answer.
    case accepted
    /// Too late: the prompt was answered elsewhere, timed out, or belongs to another checkout.
    case stale
    /// Malformed, or the text hash does not match the text served.
    case invalid
}

/// Receives the shopper's answers from the screen (the checkout runner).
public protocol ShopperScreenDelegate: Sendable {
    /// Called once per answer posted by the page (on a server thread; must not block long).
    func consentAnswered(_ answer: ScreenConsentAnswer) -> ScreenAnswerOutcome
}

/// The server cannot start.
public struct ShopperScreenError: Error, Sendable, CustomStringConvertible {
    /// Why.
    public var message: String
    /// The message.
    public var description: String { message }
}

/// Serves the shopper's page, its live state (`/events`, Server-Sent Events), the consent texts
/// (`/consent?lang=`), the live camera preview during a liveness check (`/preview.bmp`) and takes
/// the answers (`POST /consent-answer`), on loopback.
///
/// Every request is checked by ``ScreenAccess``; a refused one gets 403. ``stop()`` closes the
/// listener and every open connection (event streams included), so it never waits on a page.
public final class ShopperScreenServer: Sendable {
    /// Where and how it listens.
    public struct Configuration: Sendable, Equatable {
        /// Address to bind (loopback unless ``allowNonLoopback``).
        public var host: String
        /// Port (0: any free one, see ``ShopperScreenServer/start()``).
        public var port: Int
        /// Whether a non-loopback bind and non-loopback clients are allowed.
        public var allowNonLoopback: Bool
        /// Lender name shown on the offer.
        public var lender: String
        /// Interval of the SSE keep-alive comments.
        public var keepAlive: Duration

        /// Creates a configuration.
        public init(host: String = "127.0.0.1", port: Int = 8780, allowNonLoopback: Bool = false,
                    lender: String = "Sample Lender", keepAlive: Duration = .seconds(10)) {
            self.host = host
            self.port = port
            self.allowNonLoopback = allowNonLoopback
            self.lender = lender
            self.keepAlive = keepAlive
        }

        /// Parses `host:port` (IPv6 in brackets).
        public static func parseListen(_ s: String) -> (host: String, port: Int)? {
            guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
            var host = String(s[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return host.isEmpty ? nil : (host, port)
        }
    }

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var port = 0
        var stopped = false
    }

    /// The configuration.
    public let configuration: Configuration
    /// The live state fed to the pages.
    public let hub: ScreenHub
    /// The consent texts served.
    public let consents: ConsentLibrary
    private let delegate: any ShopperScreenDelegate
    /// The camera preview shown during the liveness check (nil: no camera, the page shows an outline).
    public let preview: (any ScreenPreviewSource)?
    private let state = Mutex(State())

    /// Creates the server; nothing listens until ``start()``.
    public init(configuration: Configuration, hub: ScreenHub, consents: ConsentLibrary, delegate: any ShopperScreenDelegate,
                preview: (any ScreenPreviewSource)? = nil) {
        self.configuration = configuration
        self.hub = hub
        self.consents = consents
        self.delegate = delegate
        self.preview = preview
    }

    /// The bound port (after ``start()``).
    public var port: Int { state.withLock { $0.port } }

    /// The access policy in force.
    public var access: ScreenAccess { ScreenAccess(port: port, allowNonLoopback: configuration.allowNonLoopback) }

    /// Binds and starts serving; returns the port. Refuses a non-loopback bind unless allowed.
    @discardableResult
    public func start() async throws -> Int {
        let host = configuration.host
        if !configuration.allowNonLoopback, !(host == "localhost" || ScreenAccess.isLoopback(host)) {
            throw ShopperScreenError(message: "refusing to listen on \(host): not loopback (set screen.allow_non_loopback = true to allow)")
        }
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 32)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard self.register(channel) else { throw ShopperScreenError(message: "stopping") }
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(ScreenHTTPHandler(server: self))
                    }
                }
                .bind(host: host, port: configuration.port).get()
        } catch {
            throw ShopperScreenError(message: "cannot listen on \(host):\(configuration.port): \(error)")
        }
        let port = channel.localAddress?.port ?? configuration.port
        state.withLock { $0.listener = channel; $0.port = port }
        return port
    }

    /// Closes the listener and every connection (event streams end at once). Idempotent.
    public func stop() async {
        let (listener, conns) = state.withLock { s -> ((any Channel)?, [any Channel]) in
            s.stopped = true
            defer { s.listener = nil; s.connections = [:] }
            return (s.listener, Array(s.connections.values))
        }
        hub.removeAllListeners()
        try? await listener?.close()
        for c in conns { try? await c.close() }
    }

    private func register(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let ok = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.connections[id] = channel
            return true
        }
        if ok {
            channel.closeFuture.whenComplete { [weak self] _ in
                _ = self?.state.withLock { $0.connections.removeValue(forKey: id) }
            }
        }
        return ok
    }

    // MARK: Routes (called by the handler on the connection's event loop)

    struct Reply {
        var status: HTTPResponseStatus
        var contentType: String
        var body: Data
    }

    static func json(_ status: HTTPResponseStatus, _ object: [String: Any]) -> Reply {
        Reply(status: status, contentType: "application/json; charset=utf-8",
              body: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    func route(method: HTTPMethod, uri: String, body: Data) -> Reply {
        let parts = uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? "/"
        let query = parts.count > 1 ? Self.query(String(parts[1])) : [:]
        switch (method, path) {
        case (.GET, "/"), (.GET, "/index.html"):
            return Reply(status: .ok, contentType: "text/html; charset=utf-8", body: Data(PageAssets.html.utf8))
        case (.GET, "/app.js"):
            return Reply(status: .ok, contentType: "text/javascript; charset=utf-8", body: Data(PageAssets.script.utf8))
        case (.GET, "/style.css"):
            return Reply(status: .ok, contentType: "text/css; charset=utf-8", body: Data(PageAssets.style.utf8))
        case (.GET, "/config"):
            return Self.json(.ok, ["languages": consents.languages, "default_language": consents.defaultLanguage,
                                   "lender": configuration.lender])
        case (.GET, "/state"):
            return Reply(status: .ok, contentType: "application/json", body: hub.current.json)
        case (.GET, "/consent"):
            guard let t = consents.text(language: query["lang"]) else { return Self.json(.notFound, ["error": "no consent text"]) }
            return Self.json(.ok, ["id": t.id, "version": t.version, "language": t.language, "text": t.text, "sha256": t.sha256])
        case (.GET, "/preview.bmp"):
            // Only while a liveness check runs; never cached (Cache-Control: no-store on every reply).
            guard let frame = preview?.previewFrame() else { return Self.json(.notFound, ["error": "no liveness check running"]) }
            return Reply(status: .ok, contentType: "image/bmp", body: BMPEncoder.encode(frame))
        case (.POST, "/consent-answer"):
            let outcome = answer(body)
            let status: HTTPResponseStatus = outcome == .accepted ? .ok : outcome == .stale ? .conflict : .badRequest
            return Self.json(status, ["result": outcome.rawValue])
        case (_, "/"), (_, "/consent"), (_, "/consent-answer"), (_, "/events"), (_, "/state"), (_, "/config"), (_, "/preview.bmp"):
            return Self.json(.methodNotAllowed, ["error": "method not allowed"])
        default:
            return Self.json(.notFound, ["error": "not found"])
        }
    }

    /// Validates a posted answer and hands it to the delegate.
    func answer(_ body: Data) -> ScreenAnswerOutcome {
        guard let o = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let checkout = o["checkout_id"] as? String,
              let rid = (o["request_id"] as? NSNumber).map({ $0.int64Value }), (0...Int64(UInt32.max)).contains(rid),
              let a = o["answer"] as? String, let language = o["language"] as? String, let sha = o["text_sha256"] as? String
        else { return .invalid }
        let answer: PromptAnswer
        switch a {
        case "accept", "confirmed": answer = .confirmed
        case "decline", "declined": answer = .declined
        default: return .invalid
        }
        guard let text = consents.verified(language: language, sha256: sha) else { return .invalid }
        // The plan selected on the offer: one of those offered for this checkout, recorded as offered.
        var plan: ChosenPlan?
        if let months = o["plan_months"], !(months is NSNull) {
            guard let m = (months as? NSNumber)?.intValue else { return .invalid }
            let shown = hub.current
            guard shown.checkoutID == checkout else { return .stale }
            guard let offered = shown.plans.first(where: { $0.months == m }), let currency = shown.currency else { return .invalid }
            plan = ChosenPlan(offered, currency: currency, lender: configuration.lender)
        }
        return delegate.consentAnswered(ScreenConsentAnswer(checkoutID: checkout, requestID: UInt32(rid), answer: answer, consent: text, plan: plan))
    }

    static func query(_ s: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in s.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return out
    }
}

/// One HTTP connection: plain requests, or an event stream that stays open until either side closes.
final class ScreenHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ShopperScreenServer
    private var head: HTTPRequestHead?
    private var body = Data()
    private var tooLarge = false
    private var listenerID: Int?
    private var keepAliveTask: RepeatedTask?
    static let maxBody = 16 * 1024

    init(server: ShopperScreenServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = Data()
            tooLarge = false
        case .body(var buf):
            if body.count + buf.readableBytes > Self.maxBody { tooLarge = true } else if let bytes = buf.readBytes(length: buf.readableBytes) { body.append(contentsOf: bytes) }
        case .end:
            guard let head else { return }
            self.head = nil
            handle(context: context, head: head)
        }
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let remote = context.channel.remoteAddress?.ipAddress
        let refusal = server.access.refusal(remoteIP: remote, host: head.headers.first(name: "host"), origin: head.headers.first(name: "origin"),
                                            isStateChanging: head.method != .GET && head.method != .HEAD)
        if let refusal {
            write(context, head, ShopperScreenServer.json(.forbidden, ["error": refusal]), close: true)
            return
        }
        if tooLarge {
            write(context, head, ShopperScreenServer.json(.payloadTooLarge, ["error": "body too large"]), close: true)
            return
        }
        if head.method == .GET, head.uri.split(separator: "?").first == "/events" {
            startEvents(context: context, head: head)
            return
        }
        write(context, head, server.route(method: head.method, uri: head.uri, body: body), close: !head.isKeepAlive)
    }

    private static func headers(_ contentType: String, length: Int?) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: contentType)
        if let length { h.add(name: "Content-Length", value: "\(length)") }
        h.add(name: "Cache-Control", value: "no-store")
        h.add(name: "X-Content-Type-Options", value: "nosniff")
        h.add(name: "X-Frame-Options", value: "DENY")
        h.add(name: "Referrer-Policy", value: "no-referrer")
        h.add(name: "Content-Security-Policy",
              value: "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return h
    }

    private func write(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ reply: ShopperScreenServer.Reply, close: Bool) {
        var h = Self.headers(reply.contentType, length: reply.body.count)
        if close { h.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: h))), promise: nil)
        if head.method != .HEAD {
            var buf = context.channel.allocator.buffer(capacity: reply.body.count)
            buf.writeBytes(reply.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func startEvents(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var h = Self.headers("text/event-stream; charset=utf-8", length: nil)
        h.add(name: "Connection", value: "keep-alive")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: h))), promise: nil)
        let channel = context.channel
        let loop = context.eventLoop
        listenerID = server.hub.addListener { data in
            var buf = ByteBufferAllocator().buffer(capacity: data.count + 16)
            buf.writeString("data: ")
            buf.writeBytes(data)
            buf.writeString("\n\n")
            let part = HTTPServerResponsePart.body(.byteBuffer(buf))
            loop.execute { channel.writeAndFlush(part, promise: nil) }
        }
        let interval = TimeAmount.nanoseconds(Int64(server.configuration.keepAlive.components.seconds) * 1_000_000_000
                                              + server.configuration.keepAlive.components.attoseconds / 1_000_000_000)
        keepAliveTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            var buf = ByteBufferAllocator().buffer(capacity: 16)
            buf.writeString(": keep-alive\n\n")
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buf)), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id = listenerID { server.hub.removeListener(id) }
        listenerID = nil
        keepAliveTask?.cancel()
        keepAliveTask = nil
        context.fireChannelInactive()
    }
}
