import Foundation
import KioskCore
import Logging
import NIOCore
import NIOHTTP1

/// A complete HTTP request as the router sees it (body already collected, TLS identity known).
struct CentralRequest: Sendable {
    var method: HTTPMethod
    var uri: String
    var headers: HTTPHeaders
    var body: ByteBuffer
    /// The client certificate's subject CN, if the certificate has one.
    var peerCommonName: String?
    /// SHA-256 (hex) of the client certificate's DER, if one was presented.
    var peerCertificateSHA256: String? = nil
    /// Whether the request came in on the enrolment listener (no client certificates).
    var onEnrolmentListener = false

    var path: Substring {
        self.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    var queryItems: [String: String] {
        guard let query = self.uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
        var items: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            items[key] = value
        }
        return items
    }
}

/// What the connection must do with a reply.
enum ReplyDisposition: Sendable, Equatable {
    /// Write it all; keep the connection open if the client allows.
    case complete
    /// Write nothing and close the connection.
    case dropConnection
    /// Write the head and the first half of the body, then close.
    case truncateAndClose
}

/// A response to write, plus how to write it.
struct CentralReply: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var extraHeaders: [(String, String)] = []
    var disposition: ReplyDisposition = .complete
    /// Whether the connection must be closed after this reply.
    var closeConnection = false

    static func json<T: Encodable>(_ status: HTTPResponseStatus, _ value: T) -> CentralReply {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(value)).map(Array.init) ?? Array(#"{"error":"encoding failure"}"#.utf8)
        return CentralReply(status: status, contentType: "application/json", body: body)
    }

    static func error(_ status: HTTPResponseStatus, _ message: String, reason: String? = nil) -> CentralReply {
        .json(status, ErrorBody(error: message, reason: reason))
    }

    static func refusal(_ refusal: EnrolmentRefusal, _ message: String) -> CentralReply {
        .error(HTTPResponseStatus(statusCode: refusal.httpStatus), message, reason: refusal.rawValue)
    }

    static func text(_ status: HTTPResponseStatus, _ text: String) -> CentralReply {
        CentralReply(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// One response the server produced, for checking against the OpenAPI contract.
public struct ServedResponse: Hashable, Sendable, CustomStringConvertible {
    /// The HTTP method of the request, e.g. `POST`.
    public var method: String
    /// The contract path that matched (e.g. `/v1/applications/batch`), or `*` for unrouted requests.
    public var route: String
    /// The status code written (or that would have been written, for dropped connections: 0).
    public var status: Int

    /// Creates a served-response record.
    public init(method: String, route: String, status: Int) {
        self.method = method
        self.route = route
        self.status = status
    }

    /// `METHOD route status`.
    public var description: String { "\(self.method) \(self.route) \(self.status)" }
}

/// The application logic of central: routing, validation, fault injection, storage.
struct CentralRouter: Sendable {
    let store: CentralStore
    let injector: FaultInjector
    let configuration: CentralConfiguration
    let logger: Logger
    /// The issuing CA, when enrolment is configured.
    var ca: DeviceCA? = nil

    static let batchPath = "/v1/applications/batch"
    static let applicationsPath = "/v1/applications"
    static let statsPath = "/v1/stats"
    static let healthPath = "/healthz"
    static let enrolPath = "/v1/enrol"
    static let renewPath = "/v1/enrol/renew"

    /// The methods each contract path accepts.
    static let routes: [String: HTTPMethod] = [
        batchPath: .POST, applicationsPath: .GET, statsPath: .GET, healthPath: .GET,
        enrolPath: .POST, renewPath: .POST,
    ]

    /// The paths the enrolment listener (no client certificates) serves.
    static let enrolmentListenerPaths: Set<String> = [enrolPath, healthPath]

    /// The route a request matches, `*` for none.
    static func route(of request: CentralRequest) -> String {
        let path = String(request.path)
        if request.onEnrolmentListener && !enrolmentListenerPaths.contains(path) { return "*" }
        return routes[path] != nil ? path : "*"
    }

    func handle(_ request: CentralRequest) async -> CentralReply {
        let path = String(request.path)
        guard let method = Self.routes[path],
            !request.onEnrolmentListener || Self.enrolmentListenerPaths.contains(path)
        else {
            return .error(.notFound, "no such resource: \(path)")
        }
        guard request.method == method else {
            var reply = CentralReply.error(.methodNotAllowed, "\(request.method.rawValue) not allowed on \(path)")
            reply.extraHeaders.append(("Allow", method.rawValue))
            return reply
        }
        switch path {
        case Self.batchPath: return await self.batch(request)
        case Self.applicationsPath: return await self.applications(request)
        case Self.statsPath: return await self.stats()
        case Self.enrolPath: return await self.enrol(request)
        case Self.renewPath: return await self.renew(request)
        default: return .text(.ok, "ok")
        }
    }

    /// The answer to a batch whose body exceeded the size limit (it was not read in full).
    func bodyTooLarge() async -> CentralReply {
        await self.count(faultInjected: false)
        return .error(.payloadTooLarge, "request body exceeds \(self.configuration.maxBodyBytes) bytes")
    }

    // MARK: Batch

    private func batch(_ request: CentralRequest) async -> CentralReply {
        if let directory = self.configuration.captureDirectory { self.capture(request.body, in: directory) }
        let fault = self.injector.next()
        if let fault {
            self.logger.info("injecting fault", metadata: ["fault": "\(fault.rawValue)"])
        }
        switch fault {
        case .serverError:
            await self.count(faultInjected: true)
            return .error(.internalServerError, "injected fault: 500")
        case .tooManyRequests:
            await self.count(faultInjected: true)
            var reply = CentralReply.error(.tooManyRequests, "injected fault: 429")
            reply.extraHeaders.append(("Retry-After", "1"))
            return reply
        case .dropBefore:
            await self.count(faultInjected: true)
            var reply = CentralReply.error(.internalServerError, "injected fault: drop-before")
            reply.disposition = .dropConnection
            return reply
        case .html:
            await self.count(faultInjected: true)
            return CentralReply(status: .ok, contentType: "text/html; charset=utf-8", body: Array(Self.portalPage.utf8))
        case .slow:
            try? await Task.sleep(for: self.configuration.faults.slowDelay)
        case .dropAfter, .serverErrorAfter, .malformed, .resetMidBody, nil:
            break
        }

        let batch: BatchRequest
        switch self.decodeBatch(request) {
        case .success(let decoded):
            batch = decoded
        case .failure(let refusal):
            // The request is refused before storage; a "slow" delay was still inflicted.
            await self.count(faultInjected: fault == .slow)
            return refusal.reply
        }

        // A registered device that was revoked, or that presents a superseded certificate, is refused.
        do {
            if let refusal = try await self.store.syncRefusal(
                deviceID: batch.deviceID, certificateSHA256: request.peerCertificateSHA256)
            {
                await self.count(faultInjected: fault == .slow)
                return .refusal(refusal, Self.explain(refusal, device: batch.deviceID))
            }
        } catch {
            self.logger.error("storage failure", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "storage failure")
        }

        let results: [ItemResult]
        do {
            results = try await self.store.ingest(
                deviceID: batch.deviceID, items: batch.items, faultInjected: fault != nil,
                requireSealed: self.configuration.requireSealed)
        } catch {
            self.logger.error("storage failure", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "storage failure")
        }
        self.logger.debug(
            "batch stored",
            metadata: [
                "device": "\(batch.deviceID)", "items": "\(results.count)",
                "accepted": "\(results.filter { $0.status == .accepted }.count)",
            ])

        var reply = CentralReply.json(.ok, BatchResponse(results: results))
        switch fault {
        case .dropAfter:
            reply.disposition = .dropConnection
        case .serverErrorAfter:
            reply = .error(.internalServerError, "injected fault: 500-after (the batch was stored)")
        case .malformed:
            reply.body = Array(reply.body.prefix(reply.body.count / 2))
        case .resetMidBody:
            reply.disposition = .truncateAndClose
        case .serverError, .tooManyRequests, .dropBefore, .html, .slow, nil:
            break
        }
        return reply
    }

    /// Writes a batch body as it arrived to `directory/<monotonic ns>-<random>.json` (what went over the wire).
    private func capture(_ body: ByteBuffer, in directory: String) {
        let name = String(format: "%020llu-%@.json", DispatchTime.now().uptimeNanoseconds, String(UUID().uuidString.prefix(8)))
        let url = URL(fileURLWithPath: directory).appendingPathComponent(name)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(body.readableBytesView).write(to: url)
        } catch {
            self.logger.error("cannot capture a request body", metadata: ["path": "\(url.path)", "error": "\(error)"])
        }
    }

    /// Why a batch request is refused as a whole.
    struct Refusal: Error {
        var reply: CentralReply
    }

    private func decodeBatch(_ request: CentralRequest) -> Result<BatchRequest, Refusal> {
        let contentType = request.headers.first(name: "content-type")?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? ""
        guard mediaType == "application/json" else {
            return .failure(Refusal(reply: .error(.unsupportedMediaType, "Content-Type must be application/json")))
        }
        let batch: BatchRequest
        do {
            batch = try JSONDecoder().decode(BatchRequest.self, from: Data(request.body.readableBytesView))
        } catch let error as DecodingError {
            return .failure(Refusal(reply: .error(.badRequest, Self.explain(error))))
        } catch {
            return .failure(Refusal(reply: .error(.badRequest, "unparseable body")))
        }
        guard batch.items.count <= self.configuration.maxItemsPerBatch else {
            return .failure(
                Refusal(
                    reply: .error(
                        .payloadTooLarge,
                        "\(batch.items.count) items exceed the limit of \(self.configuration.maxItemsPerBatch)")))
        }
        guard CentralStore.isValidID(batch.deviceID) else {
            return .failure(Refusal(reply: .error(.badRequest, "device_id must be 1-64 characters of [A-Za-z0-9._-]")))
        }
        guard Self.isRFC3339(batch.sentAt) else {
            return .failure(Refusal(reply: .error(.badRequest, "sent_at must be an RFC 3339 date-time")))
        }
        if let bad = batch.items.firstIndex(where: { $0.sequence < 0 }) {
            return .failure(Refusal(reply: .error(.badRequest, "items[\(bad)].sequence must be >= 0")))
        }
        if self.configuration.requireDeviceIDMatchesCertificate && request.peerCommonName != batch.deviceID {
            return .failure(
                Refusal(
                    reply: .error(
                        .forbidden,
                        "device_id '\(batch.deviceID)' does not match the client certificate (CN \(request.peerCommonName.map { "'\($0)'" } ?? "missing"))"
                    )))
        }
        return .success(batch)
    }

    static func isRFC3339(_ text: String) -> Bool {
        let plain = Date.ISO8601FormatStyle()
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        return (try? plain.parse(text)) != nil || (try? fractional.parse(text)) != nil
    }

    private static func explain(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing field '\(parent.isEmpty ? key.stringValue : parent + "." + key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type for field '\(path(context.codingPath))'"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "body is not valid JSON" : "invalid value for '\(path(context.codingPath))'"
        @unknown default:
            return "unparseable body"
        }
    }

    private func count(faultInjected: Bool) async {
        do {
            try await self.store.recordRequest(faultInjected: faultInjected)
        } catch {
            self.logger.error("cannot update counters", metadata: ["error": "\(error)"])
        }
    }

    static let portalPage = """
        <!DOCTYPE html>
        <html><head><title>Welcome to Mall Guest Wi-Fi</title></head>
        <body><h1>Welcome!</h1><p>Please accept the terms of use to continue.</p>
        <form method="post" action="/accept"><button>I accept</button></form></body></html>

        """

    // MARK: Reading

    private func applications(_ request: CentralRequest) async -> CentralReply {
        let query = request.queryItems
        var after: Int64 = 0
        var limit = 100
        if let text = query["after"] {
            guard let value = Int64(text), value >= 0 else {
                return .error(.badRequest, "after must be a non-negative integer")
            }
            after = value
        }
        if let text = query["limit"] {
            guard let value = Int(text), (1...1_000).contains(value) else {
                return .error(.badRequest, "limit must be an integer in 1...1000")
            }
            limit = value
        }
        do {
            return .json(.ok, try await self.store.page(after: after, limit: limit))
        } catch {
            self.logger.error("storage failure", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "storage failure")
        }
    }

    private func stats() async -> CentralReply {
        do {
            return .json(.ok, try await self.store.stats())
        } catch {
            self.logger.error("storage failure", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "storage failure")
        }
    }
}
