import Foundation
import KioskCore

/// Everything a ``CentralServer`` needs to listen, authenticate clients, store and misbehave on purpose.
public struct CentralConfiguration: Sendable {
    /// The address to bind, such as `127.0.0.1` (tests) or `0.0.0.0`.
    public var host: String
    /// The TCP port to bind; `0` asks the kernel for an ephemeral port (see ``CentralServer/start()``).
    public var port: Int
    /// Path of the server certificate chain (PEM, leaf first).
    public var certificatePath: String
    /// Path of the server private key (PEM).
    public var privateKeyPath: String
    /// Path of the CA bundle (PEM) that client certificates must chain to.
    public var caPath: String
    /// Path of the SQLite database; created with its schema when missing.
    public var databasePath: String
    /// Deliberate misbehaviour for the agent's tests; ``FaultConfiguration/none`` by default.
    public var faults: FaultConfiguration
    /// Whether `device_id` must equal the client certificate's subject CN (403 otherwise).
    public var requireDeviceIDMatchesCertificate: Bool
    /// The most items one batch may carry (413 beyond).
    public var maxItemsPerBatch: Int
    /// The largest request body accepted, in bytes (413 beyond).
    public var maxBodyBytes: Int
    /// How long ``CentralServer/stop()`` lets in-flight requests finish before it cancels them.
    public var shutdownGracePeriod: Duration
    /// Device enrolment (a second listener without client certificates, and the issuing CA); off when `nil`.
    public var enrolment: EnrolmentConfiguration?
    /// Whether plain (unsealed) payloads are rejected, `unsealed` (production: every kiosk seals).
    public var requireSealed: Bool
    /// A directory that receives each batch request body exactly as it arrived (audits, tests); off when `nil`.
    public var captureDirectory: String?

    /// The contract's limit of items per batch request.
    public static let defaultMaxItemsPerBatch = 1_000
    /// The contract's limit of bytes per request body: 8 MiB.
    public static let defaultMaxBodyBytes = 8 * 1024 * 1024

    /// Creates a configuration; only the TLS material and the database are required.
    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        certificatePath: String,
        privateKeyPath: String,
        caPath: String,
        databasePath: String,
        faults: FaultConfiguration = .none,
        requireDeviceIDMatchesCertificate: Bool = true,
        maxItemsPerBatch: Int = CentralConfiguration.defaultMaxItemsPerBatch,
        maxBodyBytes: Int = CentralConfiguration.defaultMaxBodyBytes,
        shutdownGracePeriod: Duration = .seconds(5),
        enrolment: EnrolmentConfiguration? = nil,
        requireSealed: Bool = false,
        captureDirectory: String? = nil
    ) {
        self.enrolment = enrolment
        self.requireSealed = requireSealed
        self.captureDirectory = captureDirectory
        self.host = host
        self.port = port
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.caPath = caPath
        self.databasePath = databasePath
        self.faults = faults
        self.requireDeviceIDMatchesCertificate = requireDeviceIDMatchesCertificate
        self.maxItemsPerBatch = maxItemsPerBatch
        self.maxBodyBytes = maxBodyBytes
        self.shutdownGracePeriod = shutdownGracePeriod
    }
}

/// A kind of deliberate failure the server can inflict on a batch request.
public enum FaultKind: String, CaseIterable, Sendable, Codable {
    /// Answer 500 without storing anything.
    case serverError = "500"
    /// Answer 429 with `Retry-After: 1` without storing anything.
    case tooManyRequests = "429"
    /// Close the connection without storing or answering.
    case dropBefore = "drop-before"
    /// Store and commit the batch, then close the connection without answering.
    case dropAfter = "drop-after"
    /// Store and commit the batch, then answer 500.
    case serverErrorAfter = "500-after"
    /// Wait ``FaultConfiguration/slowDelay``, then process and answer normally.
    case slow = "slow"
    /// Store and commit the batch, then answer 200 with the first half of the JSON body only.
    case malformed = "malformed"
    /// Answer 200 with a captive-portal style `text/html` page, storing nothing.
    case html = "html"
    /// Store and commit the batch, write the headers and half of the body, then close.
    case resetMidBody = "reset-mid-body"

    /// Whether the batch is processed (and committed) before this fault shapes the response.
    public var storesBatch: Bool {
        switch self {
        case .dropAfter, .serverErrorAfter, .slow, .malformed, .resetMidBody: true
        case .serverError, .tooManyRequests, .dropBefore, .html: false
        }
    }
}

/// How often and how the server misbehaves; only `POST /v1/applications/batch` is ever faulted.
public struct FaultConfiguration: Sendable, Equatable {
    /// The probability, 0…1, that a batch request is faulted.
    public var rate: Double
    /// The faults to choose from, uniformly; empty means no faults.
    public var kinds: [FaultKind]
    /// The seed of the fault sequence; `nil` picks a random one.
    public var seed: UInt64?
    /// The delay of the ``FaultKind/slow`` fault.
    public var slowDelay: Duration

    /// No faults at all.
    public static let none = FaultConfiguration(rate: 0, kinds: [])

    /// Creates a fault configuration; `rate` is clamped to 0…1.
    public init(rate: Double, kinds: [FaultKind], seed: UInt64? = nil, slowDelay: Duration = .milliseconds(300)) {
        self.rate = rate.isNaN ? 0 : min(max(rate, 0), 1)
        self.kinds = kinds
        self.seed = seed
        self.slowDelay = slowDelay
    }

    /// Parses a comma-separated list such as `500,429,drop-after`; `all` stands for every kind.
    public static func parseKinds(_ list: String) throws(CentralConfigurationError) -> [FaultKind] {
        var kinds: [FaultKind] = []
        for raw in list.split(separator: ",") {
            let name = raw.trimmingCharacters(in: .whitespaces)
            if name.isEmpty { continue }
            if name == "all" {
                kinds.append(contentsOf: FaultKind.allCases)
                continue
            }
            guard let kind = FaultKind(rawValue: name) else {
                throw .unknownFault(name)
            }
            kinds.append(kind)
        }
        return kinds
    }
}

/// A configuration value that cannot be used.
public enum CentralConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A fault name that is not one of ``FaultKind``'s raw values.
    case unknownFault(String)
    /// A listen address that is not `HOST:PORT`.
    case invalidListenAddress(String)

    /// A human-readable explanation.
    public var description: String {
        switch self {
        case .unknownFault(let name):
            "unknown fault '\(name)' (known: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")), all)"
        case .invalidListenAddress(let value):
            "invalid listen address '\(value)' (expected HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:0)"
        }
    }
}

extension CentralConfiguration {
    /// Splits `HOST:PORT` (or `[IPv6]:PORT`) into its parts.
    public static func parseListenAddress(
        _ value: String
    ) throws(CentralConfigurationError) -> (host: String, port: Int) {
        guard let colon = value.lastIndex(of: ":") else { throw .invalidListenAddress(value) }
        var host = String(value[..<colon])
        let portText = value[value.index(after: colon)...]
        guard let port = Int(portText), (0...65_535).contains(port) else { throw .invalidListenAddress(value) }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        }
        guard !host.isEmpty else { throw .invalidListenAddress(value) }
        return (host, port)
    }
}
