import Foundation
import KioskCore
import KioskCentral
import Logging
import Testing

/// Failures of the test harness itself (not of the code under test).
enum HarnessError: Error, CustomStringConvertible {
    case pkiFailed(String)
    case processFailed(String)
    case missing(String)

    var description: String {
        switch self {
        case .pkiFailed(let text): "dev-pki.sh failed: \(text)"
        case .processFailed(let text): "process failed: \(text)"
        case .missing(let text): "missing: \(text)"
        }
    }
}

/// The repository root, from this file's location.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh temporary directory.
func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

// MARK: Processes

/// What a finished process left behind.
struct ProcessOutput: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion without blocking a Swift concurrency thread.
///
/// The server under test runs on the same cooperative pool, so `waitUntilExit()` (which
/// blocks) could starve it on a 2-core machine; the termination handler resumes us instead.
func runProcess(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)) async throws
    -> ProcessOutput
{
    let directory = try makeTemporaryDirectory("proc")
    defer { try? FileManager.default.removeItem(at: directory) }
    let stdoutURL = directory.appendingPathComponent("stdout")
    let stderrURL = directory.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
    let stdoutHandle = try FileHandle(forWritingTo: stdoutURL)
    let stderrHandle = try FileHandle(forWritingTo: stderrURL)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = stdoutHandle
    process.standardError = stderrHandle
    process.standardInput = FileHandle.nullDevice

    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in
            continuation.resume(returning: finished.terminationStatus)
        }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    try? stdoutHandle.close()
    try? stderrHandle.close()
    return ProcessOutput(
        status: status,
        stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
    )
}

// MARK: Dev PKI

/// The dev PKI, generated once per test process by `Provisioning/dev-pki.sh`.
struct TestPKI: Sendable {
    let directory: URL

    var caPath: String { self.directory.appendingPathComponent("ca.pem").path }
    var serverCertificatePath: String { self.directory.appendingPathComponent("server.pem").path }
    var serverKeyPath: String { self.directory.appendingPathComponent("server.key").path }
    func deviceCertificate(_ id: String) -> String { self.directory.appendingPathComponent("devices/\(id).pem").path }
    func deviceKey(_ id: String) -> String { self.directory.appendingPathComponent("devices/\(id).key").path }

    static let deviceA = "kiosk-0001"
    static let deviceB = "kiosk-0002"

    private static let generation = Task<TestPKI, any Error> {
        let directory = try makeTemporaryDirectory("kiosk-central-pki")
        let script = repositoryRoot.appendingPathComponent("Provisioning/dev-pki.sh").path
        let output = try await runProcess("/bin/bash", [script, directory.path, deviceA, deviceB])
        guard output.status == 0 else {
            throw HarnessError.pkiFailed(output.stderr + output.stdout)
        }
        return TestPKI(directory: directory)
    }

    /// The shared PKI (generated on first use).
    static func shared() async throws -> TestPKI {
        try await self.generation.value
    }
}

// MARK: curl

/// The identity curl presents.
enum ClientIdentity: Sendable {
    case device(String)
    case rogue
    case none
    /// A certificate and key at these paths (e.g. one issued by enrolment).
    case files(certificate: String, key: String)
}

/// One HTTP exchange as curl saw it.
struct CurlResult: Sendable {
    /// curl's exit code: 0 for a complete transfer, e.g. 52 for an empty reply, 18 for a cut body.
    var exitCode: Int32
    /// The HTTP status, 0 when no response was received.
    var status: Int
    /// New connections opened for this transfer.
    var connects: Int
    /// Seconds from start to end of the transfer.
    var seconds: Double
    var body: String
    var headers: [String: String]
    var stderr: String

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(self.body.utf8))
    }
}

/// A request for ``Curl/perform(_:identity:)``.
struct CurlRequest: Sendable {
    var method = "GET"
    var path: String
    var body: String? = nil
    var bodyFile: String? = nil
    var contentType: String? = "application/json"
    var extraHeaders: [String] = []
    /// More curl command-line arguments.
    var extraArguments: [String] = []

    static func get(_ path: String) -> CurlRequest { CurlRequest(path: path) }
    static func post(_ path: String, _ body: String) -> CurlRequest {
        CurlRequest(method: "POST", path: path, body: body)
    }
}

/// Drives the `curl` CLI against a local server.
struct Curl: Sendable {
    let pki: TestPKI
    let port: Int

    /// Performs the requests in ONE curl invocation (so one connection can be reused).
    func perform(_ requests: [CurlRequest], identity: ClientIdentity = .device(TestPKI.deviceA)) async throws
        -> [CurlResult]
    {
        let directory = try makeTemporaryDirectory("curl")
        defer { try? FileManager.default.removeItem(at: directory) }
        var arguments: [String] = []
        for (index, request) in requests.enumerated() {
            if index > 0 { arguments.append("--next") }
            arguments += ["-sS", "--http1.1", "--max-time", "30", "--cacert", self.pki.caPath]
            switch identity {
            case .device(let id):
                arguments += ["--cert", self.pki.deviceCertificate(id), "--key", self.pki.deviceKey(id)]
            case .rogue:
                arguments += ["--cert", self.pki.deviceCertificate("rogue"), "--key", self.pki.deviceKey("rogue")]
            case .none:
                break
            case .files(let certificate, let key):
                arguments += ["--cert", certificate, "--key", key]
            }
            arguments += ["-X", request.method]
            if let contentType = request.contentType, request.body != nil || request.bodyFile != nil {
                arguments += ["-H", "Content-Type: \(contentType)"]
            }
            for header in request.extraHeaders {
                arguments += ["-H", header]
            }
            arguments += request.extraArguments
            if let body = request.body {
                let file = directory.appendingPathComponent("request-\(index)")
                try Data(body.utf8).write(to: file)
                arguments += ["--data-binary", "@\(file.path)"]
            } else if let bodyFile = request.bodyFile {
                arguments += ["--data-binary", "@\(bodyFile)"]
            }
            arguments += [
                "-o", directory.appendingPathComponent("body-\(index)").path,
                "-D", directory.appendingPathComponent("headers-\(index)").path,
                "-w", "%{http_code} %{num_connects} %{time_total} %{exitcode}\\n",
                "https://127.0.0.1:\(self.port)\(request.path)",
            ]
        }
        let output = try await runProcess("/usr/bin/curl", arguments)
        let lines = output.stdout.split(separator: "\n")
        var results: [CurlResult] = []
        for index in requests.indices {
            let fields = index < lines.count ? lines[index].split(separator: " ") : []
            let body = (try? String(contentsOf: directory.appendingPathComponent("body-\(index)"), encoding: .utf8)) ?? ""
            let rawHeaders =
                (try? String(contentsOf: directory.appendingPathComponent("headers-\(index)"), encoding: .utf8)) ?? ""
            var headers: [String: String] = [:]
            for line in rawHeaders.split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            results.append(
                CurlResult(
                    exitCode: fields.count > 3 ? Int32(fields[3]) ?? -1 : output.status,
                    status: fields.count > 0 ? Int(fields[0]) ?? 0 : 0,
                    connects: fields.count > 1 ? Int(fields[1]) ?? 0 : 0,
                    seconds: fields.count > 2 ? Double(fields[2]) ?? 0 : 0,
                    body: body,
                    headers: headers,
                    stderr: output.stderr
                ))
        }
        return results
    }

    /// Performs one request.
    func perform(_ request: CurlRequest, identity: ClientIdentity = .device(TestPKI.deviceA)) async throws
        -> CurlResult
    {
        let results = try await self.perform([request], identity: identity)
        guard let result = results.first else { throw HarnessError.processFailed("curl printed nothing") }
        return result
    }
}

// MARK: Server fixture

/// Runs `body` against a fresh in-process server on 127.0.0.1 with an ephemeral port, then
/// stops it and checks that every response it served is declared in openapi.yaml.
func withServer<T>(
    faults: FaultConfiguration = .none,
    databasePath: String? = nil,
    enrolment: Bool = false,
    requireSealed: Bool = false,
    captureDirectory: String? = nil,
    _ body: (CentralServer, Curl) async throws -> T
) async throws -> T {
    let pki = try await TestPKI.shared()
    let directory = try makeTemporaryDirectory("kiosk-central-db")
    defer { try? FileManager.default.removeItem(at: directory) }
    let configuration = CentralConfiguration(
        host: "127.0.0.1",
        port: 0,
        certificatePath: pki.serverCertificatePath,
        privateKeyPath: pki.serverKeyPath,
        caPath: pki.caPath,
        databasePath: databasePath ?? directory.appendingPathComponent("central.sqlite").path,
        faults: faults,
        enrolment: enrolment
            ? EnrolmentConfiguration(caCertificatePath: pki.caPath, caKeyPath: pki.directory.appendingPathComponent("ca.key").path)
            : nil,
        requireSealed: requireSealed,
        captureDirectory: captureDirectory
    )
    var logger = Logger(label: "kiosk-central-test")
    logger.logLevel = .warning
    let server = try CentralServer(configuration: configuration, logger: logger)
    let port = try await server.start()
    let result: T
    do {
        result = try await body(server, Curl(pki: pki, port: port))
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
    let undeclared = try OpenAPIContract.load().undeclared(server.servedResponses())
    #expect(undeclared.isEmpty, "responses not declared in openapi.yaml: \(undeclared)")
    return result
}

// MARK: Batches

/// A canonical application payload with this id.
func payload(id: String, amount: String = "1299.00") -> String {
    #"{"amount":"\#(amount)","currency":"EUR","id":"\#(id)"}"#
}

/// A well-formed item for `payload`.
func item(_ id: String, sequence: Int64 = 1, payload text: String? = nil, sha: String? = nil) -> BatchItem {
    let text = text ?? payload(id: id)
    return BatchItem(id: id, sequence: sequence, payloadSHA256: sha ?? CentralStore.sha256Hex(text), payload: text)
}

/// The JSON body of a batch.
func batchBody(_ items: [BatchItem], device: String = TestPKI.deviceA, sentAt: String = "2026-11-23T10:00:00Z")
    throws -> String
{
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(BatchRequest(deviceID: device, sentAt: sentAt, items: items))
    return String(decoding: data, as: UTF8.self)
}

// MARK: Contract

/// The (path, method, status) triples declared in openapi.yaml, read by a small ad-hoc parser.
struct OpenAPIContract: Sendable {
    /// path -> method (lowercase) -> declared status codes.
    var operations: [String: [String: Set<Int>]]
    /// Names under `components.responses`.
    var componentResponses: Set<String>

    static func load() throws -> OpenAPIContract {
        guard let text = CentralContract.openAPIDocument() else {
            throw HarnessError.missing("openapi.yaml in the KioskCentral resource bundle")
        }
        return self.parse(text)
    }

    /// Parses the block layout of openapi.yaml: paths at indent 2, methods at 4,
    /// `responses:` at 6, status codes at 8; component responses at indent 4.
    static func parse(_ text: String) -> OpenAPIContract {
        var operations: [String: [String: Set<Int>]] = [:]
        var componentResponses: Set<String> = []
        var section = ""
        var subsection = ""
        var path: String?
        var method: String?
        var inResponses = false
        let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(rawLine)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let indent = line.prefix { $0 == " " }.count
            guard trimmed.hasSuffix(":") else { continue }  // only mapping keys that open a block
            let key = String(trimmed.dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            switch indent {
            case 0:
                section = key
                subsection = ""
                path = nil
                method = nil
                inResponses = false
            case 2 where section == "paths":
                path = key
                method = nil
                inResponses = false
            case 2 where section == "components":
                subsection = key
            case 4 where section == "paths":
                method = methods.contains(key) ? key : nil
                inResponses = false
            case 4 where section == "components" && subsection == "responses":
                componentResponses.insert(key)
            case 6 where section == "paths":
                inResponses = key == "responses"
            case 8 where section == "paths" && inResponses:
                if let path, let method, let code = Int(key) {
                    operations[path, default: [:]][method, default: []].insert(code)
                }
            default:
                break
            }
        }
        return OpenAPIContract(operations: operations, componentResponses: componentResponses)
    }

    /// Whether the contract declares this response.
    func declares(_ response: ServedResponse) -> Bool {
        if response.route == "*" {
            return response.status == 404 && self.componentResponses.contains("NotFound")
        }
        if response.status == 405 {
            return self.operations[response.route] != nil && self.componentResponses.contains("MethodNotAllowed")
        }
        return self.operations[response.route]?[response.method.lowercased()]?.contains(response.status) ?? false
    }

    /// The responses this contract does not declare, sorted.
    func undeclared(_ responses: Set<ServedResponse>) -> [ServedResponse] {
        responses.filter { !self.declares($0) }.sorted { $0.description < $1.description }
    }
}
