import ArgumentParser
import Foundation
import KioskCentral
import Logging
import ServiceLifecycle

/// `kiosk-central`: the reference receiver of kiosk batches, and tools to read its database.
@main
struct KioskCentralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiosk-central",
        abstract: "Reference central platform for kiosk-agent: receives batches over mutual TLS.",
        subcommands: [Serve.self, List.self, Stats.self, OpenAPI.self, TokenCommand.self, DeviceCommand.self]
    )
}

/// Errors of the command-line front end.
enum CommandError: Error, CustomStringConvertible {
    case cannotWritePortFile(String, String)

    var description: String {
        switch self {
        case .cannotWritePortFile(let path, let reason): "cannot write port file \(path): \(reason)"
        }
    }
}

/// `kiosk-central serve`: run the HTTPS receiver until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve POST /v1/applications/batch and friends over HTTPS with client certificates.",
        discussion: """
            Faults (only POST /v1/applications/batch is faulted): \
            \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")), or 'all'.
            SIGTERM/SIGINT stop gracefully: no new connections, idle ones closed, \
            in-flight requests finish.
            """
    )

    @Option(help: "Address to listen on, HOST:PORT; port 0 picks an ephemeral port.")
    var listen = "127.0.0.1:8443"

    @Option(help: "Server certificate chain (PEM).")
    var cert: String

    @Option(help: "Server private key (PEM).")
    var key: String

    @Option(help: "CA bundle (PEM) that client certificates must chain to.")
    var ca: String

    @Option(help: "SQLite database path (created if missing).")
    var db: String

    @Option(help: "Write the bound port (a decimal number and a newline) to this file once listening.")
    var portFile: String?

    @Option(help: "Probability (0...1) that a batch request is faulted.")
    var faultRate: Double = 0

    @Option(help: "Comma-separated faults to choose from (default: all when --fault-rate > 0).")
    var faults: String?

    @Option(help: "Seed of the fault sequence, for reproducible runs.")
    var faultSeed: UInt64?

    @Option(help: "Delay of the 'slow' fault, in milliseconds.")
    var slowMs: Int = 300

    @Flag(help: "Do not require device_id to equal the client certificate's subject CN.")
    var noDeviceCheck = false

    @Option(help: "Enrolment listener (TLS without client certificates), HOST:PORT; needs --ca-key.")
    var enrolListen: String?

    @Option(help: "The issuing CA's private key (PEM); enables POST /v1/enrol and /v1/enrol/renew.")
    var caKey: String?

    @Option(help: "The issuing CA's certificate (PEM; default: the --ca bundle's certificate matching --ca-key).")
    var caCert: String?

    @Option(help: "Validity of issued device certificates, in days.")
    var certDays: Int = 90

    @Option(help: "Write the enrolment listener's bound port to this file once listening.")
    var enrolPortFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(help: "Reject plain (unsealed) application payloads, reason unsealed (production).")
    var requireSealed = false

    @Option(help: "Write every batch request body, as it arrived, into this directory (audits, tests).")
    var captureDir: String?

    func validate() throws {
        guard (0...1).contains(self.faultRate) else {
            throw ValidationError("--fault-rate must be within 0...1")
        }
        guard self.slowMs >= 0 else { throw ValidationError("--slow-ms must be >= 0") }
        guard (self.enrolListen == nil) == (self.caKey == nil) else {
            throw ValidationError("--enrol-listen and --ca-key go together")
        }
        guard (1...825).contains(self.certDays) else { throw ValidationError("--cert-days must be within 1...825") }
        if let enrolListen {
            do { _ = try CentralConfiguration.parseListenAddress(enrolListen) } catch { throw ValidationError(error.description) }
        }
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ValidationError("unknown --log-level \(self.logLevel)")
        }
        do {
            _ = try CentralConfiguration.parseListenAddress(self.listen)
            if let faults { _ = try FaultConfiguration.parseKinds(faults) }
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "kiosk-central")

        let (host, port) = try CentralConfiguration.parseListenAddress(self.listen)
        let kinds = try self.faults.map(FaultConfiguration.parseKinds) ?? FaultKind.allCases
        let configuration = CentralConfiguration(
            host: host,
            port: port,
            certificatePath: self.cert,
            privateKeyPath: self.key,
            caPath: self.ca,
            databasePath: self.db,
            faults: FaultConfiguration(
                rate: self.faultRate, kinds: kinds, seed: self.faultSeed,
                slowDelay: .milliseconds(self.slowMs)),
            requireDeviceIDMatchesCertificate: !self.noDeviceCheck,
            enrolment: try self.enrolListen.map { listen in
                let (enrolHost, enrolPort) = try CentralConfiguration.parseListenAddress(listen)
                return EnrolmentConfiguration(
                    host: enrolHost, port: enrolPort, caCertificatePath: self.caCert ?? self.ca,
                    caKeyPath: self.caKey ?? "", certificateValidity: .seconds(self.certDays * 86_400))
            },
            requireSealed: self.requireSealed,
            captureDirectory: self.captureDir
        )
        let server = try CentralServer(configuration: configuration, logger: logger)
        let service = CentralService(server: server, portFile: self.portFile, enrolPortFile: self.enrolPortFile)
        let group = ServiceGroup(
            services: [service],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }
}

/// Runs a ``CentralServer`` as a swift-service-lifecycle service.
struct CentralService: Service {
    let server: CentralServer
    let portFile: String?
    var enrolPortFile: String? = nil

    func run() async throws {
        let port = try await self.server.start()
        do {
            if let portFile {
                try Self.writeAtomically("\(port)\n", to: portFile)
            }
            if let enrolPortFile, let enrolPort = self.server.enrolmentPort {
                try Self.writeAtomically("\(enrolPort)\n", to: enrolPortFile)
            }
            // Returns when SIGTERM/SIGINT triggers graceful shutdown (or the task is cancelled).
            try? await gracefulShutdown()
        } catch {
            await self.server.stop()
            throw error
        }
        await self.server.stop()
    }

    /// Writes via a temporary file and a rename, so readers never see a partial port number.
    static func writeAtomically(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        do {
            try text.write(toFile: temporary, atomically: false, encoding: .utf8)
            if rename(temporary, path) != 0 {
                throw CommandError.cannotWritePortFile(path, String(cString: strerror(errno)))
            }
        } catch let error as CommandError {
            throw error
        } catch {
            throw CommandError.cannotWritePortFile(path, "\(error)")
        }
    }
}

/// `kiosk-central list`: print stored applications, reading the database directly.
struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List stored applications in arrival order.")

    @Option(help: "SQLite database path.")
    var db: String

    @Flag(help: "Print JSON ({\"applications\":[...]}, the GET /v1/applications shape without paging).")
    var json = false

    func run() async throws {
        let store = try CentralStore(path: self.db, createIfMissing: false)
        let applications = try await store.all()
        if self.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(ApplicationPage(applications: applications, nextCursor: nil))
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("cursor\tid\tdevice_id\tsequence\tpayload_sha256\treceived_at")
            for application in applications {
                print(
                    "\(application.cursor)\t\(application.id)\t\(application.deviceID)\t\(application.sequence)\t"
                        + "\(application.payloadSHA256)\t\(application.receivedAt)")
            }
        }
    }
}

/// `kiosk-central stats`: print the counters, reading the database directly.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the intake counters.")

    @Option(help: "SQLite database path.")
    var db: String

    @Flag(help: "Print JSON (the GET /v1/stats shape).")
    var json = false

    func run() async throws {
        let store = try CentralStore(path: self.db, createIfMissing: false)
        let stats = try await store.stats()
        if self.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(stats), as: UTF8.self))
        } else {
            print("stored:          \(stats.stored)")
            print("accepted:        \(stats.accepted)")
            print("duplicate:       \(stats.duplicate)")
            print("rejected:        \(stats.rejected)")
            print("requests:        \(stats.requests)")
            print("faults_injected: \(stats.faultsInjected)")
        }
    }
}

/// `kiosk-central openapi`: print the wire contract.
struct OpenAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openapi", abstract: "Print the OpenAPI 3.1 contract this server implements.")

    func run() async throws {
        guard let document = CentralContract.openAPIDocument() else {
            throw ValidationError("the KioskCentral resource bundle (openapi.yaml) was not found")
        }
        print(document, terminator: "")
    }
}
