import Foundation
import KioskCore
import Logging
import Outbox
import Synchronization

/// Settings of the sync loop.
public struct SyncConfiguration: Sendable, Equatable {
    /// Base URL of central, e.g. `https://central.example:8443`.
    public var centralURL: String
    /// This device's id (also the CN of its client certificate).
    public var deviceID: String
    /// TLS and transport settings.
    public var http: HTTPClientConfiguration
    /// Largest number of applications per batch.
    public var batchSize: Int = 200
    /// Largest payload bytes per batch.
    public var batchMaxBytes: Int = 4 << 20
    /// Backoff after failures.
    public var backoff: Backoff = Backoff()
    /// How long the loop sleeps when idle before looking again (also its heartbeat).
    public var idlePoll: Duration = .seconds(5)

    /// Creates a configuration.
    public init(centralURL: String, deviceID: String, http: HTTPClientConfiguration) {
        self.centralURL = centralURL
        self.deviceID = deviceID
        self.http = http
    }
}

/// What the sync loop reports: readable with `kioskctl status --json`.
public struct SyncStatus: Codable, Sendable, Equatable {
    /// Last time a batch was answered with per-item results.
    public var lastSuccessAt: Date?
    /// Last time a request was attempted.
    public var lastAttemptAt: Date?
    /// The last error, if the last attempt failed.
    public var lastError: String?
    /// Failures since the last success.
    public var consecutiveFailures: Int = 0
    /// When the next attempt is due while backing off.
    public var nextAttemptAt: Date?
    /// Batches answered.
    public var batches: Int = 0
    /// Items answered accepted.
    public var accepted: Int = 0
    /// Items answered duplicate.
    public var duplicates: Int = 0
    /// Items answered rejected.
    public var rejected: Int = 0
    /// Failed requests.
    public var failures: Int = 0

    /// An empty status.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case lastSuccessAt = "last_success_at", lastAttemptAt = "last_attempt_at", lastError = "last_error"
        case consecutiveFailures = "consecutive_failures", nextAttemptAt = "next_attempt_at"
        case batches, accepted, duplicates, rejected, failures
    }
}

/// The result of one sync step.
public enum SyncOutcome: Sendable, Equatable {
    /// Nothing was due.
    case idle
    /// A batch was answered: how many items it carried.
    case delivered(Int)
    /// The attempt failed; wait this long before the next one.
    case failed(Duration)
}

/// Why a response could not be used.
public enum SyncProtocolError: Error, Sendable, CustomStringConvertible {
    /// A non-success HTTP status.
    case httpStatus(Int, String)
    /// A 200 whose body is not the expected JSON (a captive portal, a proxy page, a truncated body).
    case malformedResponse(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .httpStatus(code, body): return "HTTP \(code) from central: \(body)"
        case let .malformedResponse(why): return "malformed response from central: \(why)"
        }
    }
}

/// One step of store-and-forward: take due rows from the outbox, POST them, apply the answer.
///
/// Blocking (libcurl); ``SyncService`` runs it on a dedicated thread. Safe to call from one
/// thread at a time; status reads are thread-safe.
public final class SyncEngine: Sendable {
    private let outbox: Outbox
    private let configuration: SyncConfiguration
    private let logger: Logger
    private let client: Mutex<CurlHTTPClient?>
    private let state = Mutex<(status: SyncStatus, batchLimit: Int)>((SyncStatus(), 0))

    /// Creates an engine over an outbox.
    public init(outbox: Outbox, configuration: SyncConfiguration, logger: Logger = Logger(label: "kiosk.sync")) {
        self.outbox = outbox
        self.configuration = configuration
        self.logger = logger
        self.client = Mutex(nil)
        state.withLock { $0.batchLimit = configuration.batchSize }
    }

    /// A snapshot of the sync status.
    public var status: SyncStatus { state.withLock { $0.status } }

    /// Runs one step. With `ignoreBackoff`, rows waiting for their next attempt are sent now
    /// (used when the network comes back).
    public func syncOnce(now: Date = Date(), ignoreBackoff: Bool = false) -> SyncOutcome {
        let limit = state.withLock { $0.batchLimit }
        let due = ignoreBackoff ? Date.distantFuture : now
        let batch: PreparedBatch
        if let held = takeReadAhead() {
            batch = held
        } else {
            let records: [OutboxRecord]
            do {
                records = try outbox.nextBatch(limit: limit, maxBytes: configuration.batchMaxBytes, now: due)
            } catch {
                logger.error("outbox read failed", metadata: ["error": "\(error)"])
                return fail(ids: [], error: "outbox: \(error)", retryAfter: nil, now: now)
            }
            guard !records.isEmpty else { return .idle }
            batch = PreparedBatch(records, deviceID: configuration.deviceID, now: now)
        }
        state.withLock { $0.status.lastAttemptAt = now }
        let ids = batch.records.map(\.id)
        // A full batch suggests a backlog: read and encode the next one while this one is posted.
        let next = batch.records.count >= limit ? ReadAhead.start { [outbox, configuration] in
            let records = try outbox.nextBatch(limit: limit, maxBytes: configuration.batchMaxBytes, now: due,
                                               following: batch.records[batch.records.count - 1].sequence)
            return records.isEmpty ? nil : PreparedBatch(records, deviceID: configuration.deviceID, now: now)
        } : nil
        do {
            let response: BatchResponse
            do {
                response = try post(batch, now: now)
                try apply(response, to: batch.records, now: now)
            } catch {
                self.release(next?.wait())
                throw error
            }
            readAhead.withLock { $0 = next?.wait() }
            let previousFailures = state.withLock { $0.status.consecutiveFailures }
            if previousFailures > 0 {
                logger.notice("sync recovered", metadata: ["after_failures": "\(previousFailures)"])
            }
            state.withLock {
                $0.status.lastSuccessAt = Date()
                $0.status.lastError = nil
                $0.status.consecutiveFailures = 0
                $0.status.nextAttemptAt = nil
                $0.status.batches += 1
                $0.batchLimit = min(configuration.batchSize, max(1, $0.batchLimit * 2))
            }
            return .delivered(batch.records.count)
        } catch let error as SyncProtocolError {
            if case .httpStatus(413, _) = error {
                let newLimit = state.withLock { s -> Int in s.batchLimit = max(1, s.batchLimit / 2); return s.batchLimit }
                logger.warning("central refused the batch as too large; halving", metadata: ["batch_limit": "\(newLimit)"])
                if batch.records.count > 1 {
                    do { try outbox.markFailed(ids: ids, error: "\(error)", nextAttemptAt: now) } catch {}
                    return .failed(.zero)
                }
            }
            var retryAfter: Duration? = nil
            if case let .httpStatus(code, _) = error, code == 429 || code == 503 {
                retryAfter = lastRetryAfter.withLock { $0 }
            }
            return fail(ids: ids, error: "\(error)", retryAfter: retryAfter, now: now)
        } catch {
            return fail(ids: ids, error: "\(error)", retryAfter: nil, now: now)
        }
    }

    private let lastRetryAfter = Mutex<Duration?>(nil)

    /// The next batch, read ahead while the previous one was posted (its rows are in flight).
    private let readAhead = Mutex<PreparedBatch?>(nil)

    /// Hands a read-ahead batch that will not be sent now back to the outbox.
    private func release(_ batch: PreparedBatch?) {
        guard let batch else { return }
        do { try outbox.release(ids: batch.records.map(\.id)) } catch {
            logger.error("could not hand a read-ahead batch back; it is resent after a restart", metadata: ["error": "\(error)"])
        }
    }

    /// Takes the read-ahead batch, if any, leaving none.
    private func takeReadAhead() -> PreparedBatch? {
        readAhead.withLock { held in
            defer { held = nil }
            return held
        }
    }

    /// Hands back the read-ahead batch, if any (the service stops, or the network went away).
    public func releaseReadAhead() {
        release(takeReadAhead())
    }

    private func fail(ids: [String], error: String, retryAfter: Duration?, now: Date) -> SyncOutcome {
        var rng = SystemRandomNumberGenerator()
        let delay = state.withLock { s -> Duration in
            s.status.consecutiveFailures += 1
            s.status.failures += 1
            s.status.lastError = error
            let d = configuration.backoff.delay(failures: s.status.consecutiveFailures, retryAfter: retryAfter, using: &rng)
            s.status.nextAttemptAt = now.addingTimeInterval(d.timeInterval)
            return d
        }
        let next = now.addingTimeInterval(delay.timeInterval)
        if !ids.isEmpty {
            do { try outbox.markFailed(ids: ids, error: error, nextAttemptAt: next) } catch {
                logger.error("could not record the failed attempt", metadata: ["error": "\(error)"])
            }
        }
        logger.warning("sync attempt failed", metadata: [
            "error": "\(error)", "retry_in_ms": "\(delay.milliseconds)", "items": "\(ids.count)",
        ])
        return .failed(delay)
    }

    private func post(_ batch: PreparedBatch, now: Date) throws -> BatchResponse {
        let body = batch.body
        let first = batch.records[0].id, last = batch.records[batch.records.count - 1].id
        let response = try client.withLock { c -> HTTPResponse in
            if c == nil { c = try CurlHTTPClient(configuration: configuration.http) }
            do {
                return try c!.perform(
                    method: "POST", url: configuration.centralURL + "/v1/applications/batch",
                    headers: ["Content-Type: application/json", "Accept: application/json",
                              "Idempotency-Key: \(first)..\(last)"],
                    body: body)
            } catch {
                c = nil  // drop the handle and its connection after a transport error
                throw error
            }
        }
        guard response.status == 200 else {
            lastRetryAfter.withLock { $0 = Backoff.parseRetryAfter(response.headers["retry-after"]) }
            let snippet = String(decoding: response.body.prefix(200), as: UTF8.self)
            throw SyncProtocolError.httpStatus(response.status, snippet)
        }
        let contentType = response.headers["content-type"] ?? ""
        guard contentType.lowercased().hasPrefix("application/json") else {
            throw SyncProtocolError.malformedResponse("content-type \(contentType.isEmpty ? "missing" : contentType)")
        }
        do {
            return try JSONDecoder().decode(BatchResponse.self, from: response.body)
        } catch {
            throw SyncProtocolError.malformedResponse("body is not a batch response (\(response.body.count) bytes)")
        }
    }

    /// `sent_at`: RFC 3339 UTC (a value type; `ISO8601DateFormatter()` built an ICU formatter per batch).
    static let sentAtStyle = Date.ISO8601FormatStyle(timeZone: .gmt)

    /// The JSON body of `POST /v1/applications/batch` for these rows (the OpenAPI contract's BatchRequest).
    static func requestBody(deviceID: String, batch: [OutboxRecord], now: Date) -> Data {
        BatchRequest(
            deviceID: deviceID,
            sentAt: now.formatted(Self.sentAtStyle),
            items: batch.map {
                BatchItem(id: $0.id, sequence: $0.sequence, payloadSHA256: $0.payloadSHA256,
                          payload: String(decoding: $0.payload, as: UTF8.self))
            }
        ).jsonData()
    }

    private func apply(_ response: BatchResponse, to batch: [OutboxRecord], now: Date) throws {
        guard response.results.count == batch.count,
              zip(response.results, batch).allSatisfy({ $0.id == $1.id }) else {
            throw SyncProtocolError.malformedResponse("results do not match the items sent")
        }
        var synced: [String] = []
        var accepted = 0, duplicates = 0, rejected = 0
        for result in response.results {
            switch result.status {
            case .accepted: synced.append(result.id); accepted += 1
            case .duplicate: synced.append(result.id); duplicates += 1
            case .rejected:
                rejected += 1
                let reason = result.reason?.rawValue ?? "unspecified"
                try outbox.markRejected(id: result.id, reason: reason)
                logger.error("central rejected an application", metadata: ["id": "\(result.id)", "reason": "\(reason)"])
            }
        }
        try outbox.markSynced(ids: synced, now: now)
        state.withLock {
            $0.status.accepted += accepted
            $0.status.duplicates += duplicates
            $0.status.rejected += rejected
        }
        logger.debug("batch synced", metadata: ["accepted": "\(accepted)", "duplicate": "\(duplicates)", "rejected": "\(rejected)"])
    }
}

/// Outbox rows and the request body that carries them.
struct PreparedBatch: Sendable {
    /// The rows, in flight, in delivery order.
    var records: [OutboxRecord]
    /// `POST /v1/applications/batch` body for them.
    var body: Data

    init(_ records: [OutboxRecord], deviceID: String, now: Date) {
        self.records = records
        self.body = SyncEngine.requestBody(deviceID: deviceID, batch: records, now: now)
    }
}

/// Work run on its own thread (never the cooperative pool) while the caller does something else.
final class ReadAhead: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: PreparedBatch?  // written before `done` is signalled, read after

    /// Starts `work`; an error there means no read-ahead batch (the next call reads it again).
    static func start(_ work: @escaping @Sendable () throws -> PreparedBatch?) -> ReadAhead {
        let r = ReadAhead()
        Thread.detachNewThread {
            r.result = try? work()
            r.done.signal()
        }
        return r
    }

    /// Waits for the work and returns its batch (once; later calls return nil at once).
    func wait() -> PreparedBatch? {
        done.wait()
        defer {
            result = nil
            done.signal()
        }
        return result
    }
}
