import Crypto
import Foundation
import SwiftASN1
import Sync
import X509

#if canImport(Glibc)
import Glibc
#endif

/// What `kioskctl provision` needs: where central is, the token, and where to write.
public struct ProvisionOptions: Sendable {
    /// Central's sync URL (mutual TLS), e.g. `https://central.example:8443`.
    public var centralURL: String
    /// Central's enrolment URL (TLS without a client certificate); defaults to ``centralURL``.
    public var enrolURL: String?
    /// The one-time enrolment token (not needed for a rotation or a completed provisioning).
    public var token: String?
    /// The merchant the technician expects (checked by central against the token).
    public var merchantID: String?
    /// The site the technician expects.
    public var site: String?
    /// Central's TLS trust for the enrolment call (PEM); `nil` uses the system's CA store.
    public var caFile: String?
    /// Where `agent.toml`, `central-ca.pem` and the sealing key go.
    public var configDirectory: String
    /// Where the device key, certificate and the provisioning state go.
    public var stateDirectory: String
    /// Make a new key and certificate although provisioning is complete.
    public var rotate: Bool
    /// Run `systemctl enable --now kiosk-agent` (or `try-restart` after a rotation) at the end.
    public var startService: Bool
    /// The user that owns the device key when running as root.
    public var agentUser: String

    /// Creates options.
    public init(
        centralURL: String, enrolURL: String? = nil, token: String? = nil, merchantID: String? = nil,
        site: String? = nil, caFile: String? = nil, configDirectory: String = "/etc/kiosk-agent",
        stateDirectory: String = "/var/lib/kiosk-agent", rotate: Bool = false, startService: Bool = false,
        agentUser: String = "kiosk-agent"
    ) {
        self.centralURL = centralURL
        self.enrolURL = enrolURL
        self.token = token
        self.merchantID = merchantID
        self.site = site
        self.caFile = caFile
        self.configDirectory = configDirectory
        self.stateDirectory = stateDirectory
        self.rotate = rotate
        self.startService = startService
        self.agentUser = agentUser
    }
}

/// One step of provisioning, in order.
public enum ProvisionStep: String, Codable, Sendable, CaseIterable {
    /// Generate (or keep) the device key, P-256, mode 0600.
    case key
    /// Build the certificate signing request.
    case csr
    /// Enrol with central (token) or renew (current certificate).
    case enrol
    /// Store the device certificate, central's CA and sealing key.
    case store
    /// Write `agent.toml`.
    case config
    /// Enable and start kiosk-agent.
    case service
}

/// Progress of one step, as printed by `kioskctl provision`.
public struct ProvisionProgress: Sendable {
    /// The step.
    public var step: ProvisionStep
    /// `done`, `kept` (already done by an earlier run), or `skipped`.
    public var outcome: String
    /// What was done.
    public var detail: String
}

/// The persistent record of a provisioning (`provision.json` in the state directory), so a
/// re-run continues where the last one stopped. Never holds the token or a private key.
public struct ProvisionState: Codable, Sendable, Equatable {
    /// Steps completed, with the time.
    public var completed: [String: String] = [:]
    /// The device id central assigned.
    public var deviceID: String?
    /// The merchant central enrolled the device for.
    public var merchantID: String?
    /// The site.
    public var site: String?
    /// Central's sync URL.
    public var centralURL: String?
    /// The certificate's expiry.
    public var notAfter: String?
    /// When provisioning (or the last rotation) completed.
    public var provisionedAt: String?
    /// How many rotations were completed.
    public var rotations = 0
    /// Whether a rotation is under way (a new key waits in `device.key.new`).
    public var rotating = false

    enum CodingKeys: String, CodingKey {
        case completed
        case deviceID = "device_id"
        case merchantID = "merchant_id"
        case site
        case centralURL = "central_url"
        case notAfter = "not_after"
        case provisionedAt = "provisioned_at"
        case rotations, rotating
    }

    /// Creates an empty state.
    public init() {}
}

/// The result of `kioskctl provision` (its `--json` output).
public struct ProvisionResult: Codable, Sendable {
    /// `provisioned`, `rotated` or `already_provisioned`.
    public var status: String
    /// The device id.
    public var deviceID: String
    /// The merchant.
    public var merchantID: String
    /// The site.
    public var site: String?
    /// The certificate's expiry.
    public var notAfter: String?
    /// The files written.
    public var files: [String: String]
    /// Whether the service was started.
    public var serviceStarted: Bool

    enum CodingKeys: String, CodingKey {
        case status
        case deviceID = "device_id"
        case merchantID = "merchant_id"
        case site
        case notAfter = "not_after"
        case files
        case serviceStarted = "service_started"
    }
}

/// A provisioning failure: the step, what happened, central's reason code if any.
public struct ProvisionError: Error, Sendable, CustomStringConvertible {
    /// The step that failed.
    public var step: ProvisionStep
    /// What went wrong and what to do.
    public var message: String
    /// Central's machine-readable reason (e.g. `token_used`), when central refused.
    public var reason: String?

    /// `step: message`.
    public var description: String { "\(self.step.rawValue): \(self.message)" }
}

/// Provisions this kiosk: key on the device, CSR, enrolment with central, files, config, service.
///
/// Each step is recorded in `provision.json` in the state directory before the next starts, so
/// a failed run (network down, wrong token) can be re-run and continues; a completed
/// provisioning is a no-op unless ``ProvisionOptions/rotate``. The outbox is never touched.
public struct Provisioner: Sendable {
    /// The options.
    public let options: ProvisionOptions

    /// Creates a provisioner.
    public init(options: ProvisionOptions) { self.options = options }

    /// The device key (PEM, 0600).
    public var keyPath: String { self.state("device.key") }
    /// The device certificate (PEM).
    public var certificatePath: String { self.state("device.pem") }
    /// The CSR (PEM).
    public var csrPath: String { self.state("device.csr") }
    /// The provisioning record.
    public var statePath: String { self.state("provision.json") }
    /// The last enrolment answer (so a crash after enrolment never needs the token again).
    public var enrolmentPath: String { self.state("enrolment.json") }
    /// Central's CA (PEM).
    public var caPath: String { self.config("central-ca.pem") }
    /// Central's public sealing key (JSON: algorithm, base64 key).
    public var sealingKeyPath: String { self.config("central-sealing-key.json") }
    /// The agent config.
    public var configPath: String { self.config("agent.toml") }

    private func state(_ name: String) -> String { (self.options.stateDirectory as NSString).appendingPathComponent(name) }
    private func config(_ name: String) -> String { (self.options.configDirectory as NSString).appendingPathComponent(name) }

    /// The recorded state, or an empty one.
    public func loadState() -> ProvisionState {
        guard let data = FileManager.default.contents(atPath: self.statePath),
            let state = try? JSONDecoder().decode(ProvisionState.self, from: data)
        else { return ProvisionState() }
        return state
    }

    /// Runs the steps that are not done yet; `progress` is called once per step.
    public func run(progress: (ProvisionProgress) -> Void) throws(ProvisionError) -> ProvisionResult {
        var state = self.loadState()
        let complete = state.provisionedAt != nil && !state.rotating
        if complete && !self.options.rotate {
            for step in ProvisionStep.allCases {
                progress(ProvisionProgress(step: step, outcome: "kept", detail: "already provisioned"))
            }
            return self.result("already_provisioned", state, serviceStarted: false)
        }
        let rotating = self.options.rotate && complete || state.rotating
        if rotating && !state.rotating {
            // A new rotation: forget the steps of the last run.
            state.rotating = true
            state.completed = [:]
            try? FileManager.default.removeItem(atPath: self.enrolmentPath)
            try self.save(state, step: .key)
        }
        try self.makeDirectories()

        // 1. Key.
        let keyFile = rotating ? self.keyPath + ".new" : self.keyPath
        let key: P256.Signing.PrivateKey
        if let pem = try? String(contentsOfFile: keyFile, encoding: .utf8),
            let existing = try? P256.Signing.PrivateKey(pemRepresentation: pem)
        {
            key = existing
            progress(ProvisionProgress(step: .key, outcome: "kept", detail: keyFile))
        } else {
            key = P256.Signing.PrivateKey()
            try self.writeSecret(key.pemRepresentation + "\n", to: keyFile, step: .key)
            progress(ProvisionProgress(step: .key, outcome: "done", detail: "generated P-256 key \(keyFile) (0600)"))
        }
        state.completed[ProvisionStep.key.rawValue] = Self.now()
        try self.save(state, step: .key)

        // 2. CSR (cheap, always rebuilt from the key so it matches it).
        let csrPEM: String
        do {
            let subject = try DistinguishedName {
                OrganizationName("kiosk-agent")
                CommonName(state.deviceID ?? "kiosk-unenrolled")
            }
            let csr = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
            csrPEM = try csr.serializeAsPEM().pemString + "\n"
            try Self.write(csrPEM, to: self.csrPath, mode: 0o644)
        } catch {
            throw ProvisionError(step: .csr, message: "cannot build the CSR: \(error)")
        }
        state.completed[ProvisionStep.csr.rawValue] = Self.now()
        try self.save(state, step: .csr)
        progress(ProvisionProgress(step: .csr, outcome: "done", detail: self.csrPath))

        // 3. Enrol (or renew), unless an earlier run got the answer for this very key.
        let answer: EnrolAnswer
        if let data = FileManager.default.contents(atPath: self.enrolmentPath),
            let saved = try? JSONDecoder().decode(EnrolAnswer.self, from: data),
            Self.certificate(saved.certificatePEM, matches: key)
        {
            answer = saved
            progress(ProvisionProgress(step: .enrol, outcome: "kept", detail: "device \(saved.deviceID) (enrolled earlier)"))
        } else if rotating {
            answer = try self.call(
                url: Self.join(self.options.centralURL, "/v1/enrol/renew"), body: ["csr_pem": csrPEM],
                caFile: FileManager.default.fileExists(atPath: self.caPath) ? self.caPath : self.options.caFile,
                certFile: self.certificatePath, keyFile: self.keyPath)
            progress(ProvisionProgress(step: .enrol, outcome: "done", detail: "renewed the certificate of \(answer.deviceID)"))
        } else {
            guard let token = self.options.token, !token.isEmpty else {
                throw ProvisionError(step: .enrol, message: "missing --token (or KIOSK_ENROL_TOKEN in --from FILE)")
            }
            var body = ["token": token, "csr_pem": csrPEM]
            if let merchant = self.options.merchantID, !merchant.isEmpty { body["merchant_id"] = merchant }
            if let site = self.options.site, !site.isEmpty { body["site"] = site }
            answer = try self.call(
                url: Self.join(self.options.enrolURL ?? self.options.centralURL, "/v1/enrol"), body: body,
                caFile: self.options.caFile, certFile: nil, keyFile: nil)
            progress(ProvisionProgress(step: .enrol, outcome: "done", detail: "enrolled as \(answer.deviceID) for merchant \(answer.merchantID)"))
        }
        guard Self.certificate(answer.certificatePEM, matches: key) else {
            throw ProvisionError(step: .enrol, message: "central's certificate is not for this device's key")
        }
        do {
            try Self.write(String(decoding: try JSONEncoder().encode(answer), as: UTF8.self), to: self.enrolmentPath, mode: 0o600)
        } catch {
            throw ProvisionError(step: .enrol, message: "cannot record the enrolment: \(error)")
        }
        state.deviceID = answer.deviceID
        state.merchantID = answer.merchantID
        state.site = answer.site
        state.notAfter = answer.notAfter
        state.centralURL = self.options.centralURL
        state.completed[ProvisionStep.enrol.rawValue] = Self.now()
        try self.save(state, step: .enrol)

        // 4. Store: certificate, CA, sealing key; a rotation swaps the key in last.
        do {
            try Self.write(answer.caPEM, to: self.caPath, mode: 0o644)
            let sealing = try JSONSerialization.data(
                withJSONObject: ["algorithm": answer.sealingKeyAlgorithm, "public_key": answer.sealingPublicKey],
                options: [.sortedKeys, .prettyPrinted])
            try Self.write(String(decoding: sealing, as: UTF8.self) + "\n", to: self.sealingKeyPath, mode: 0o644)
            try Self.write(answer.certificatePEM, to: self.certificatePath + ".new", mode: 0o644)
            if rotating {
                try Self.rename(keyFile, self.keyPath)
            }
            try Self.rename(self.certificatePath + ".new", self.certificatePath)
        } catch {
            throw ProvisionError(step: .store, message: "cannot store the identity: \(error)")
        }
        state.completed[ProvisionStep.store.rawValue] = Self.now()
        try self.save(state, step: .store)
        progress(ProvisionProgress(step: .store, outcome: "done", detail: "\(self.certificatePath), \(self.caPath), \(self.sealingKeyPath)"))

        // 5. Config.
        do {
            try self.writeConfig(answer)
        } catch {
            throw ProvisionError(step: .config, message: "cannot write \(self.configPath): \(error)")
        }
        state.completed[ProvisionStep.config.rawValue] = Self.now()
        try self.save(state, step: .config)
        progress(ProvisionProgress(step: .config, outcome: "done", detail: self.configPath))

        // 6. Service.
        var started = false
        if self.options.startService {
            var arguments = rotating ? ["try-restart", "kiosk-agent.service"] : ["enable", "--now", "kiosk-agent.service"]
            if ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil {
                // Inside a unit ordered Before=kiosk-agent (kiosk-firstboot): waiting for the job would deadlock.
                arguments.insert("--no-block", at: 0)
            }
            let status = Self.runSystemctl(arguments)
            guard status == 0 else {
                throw ProvisionError(step: .service, message: "systemctl \(arguments.joined(separator: " ")) exited \(status)")
            }
            started = true
            progress(ProvisionProgress(step: .service, outcome: "done", detail: "systemctl \(arguments.joined(separator: " "))"))
        } else {
            progress(ProvisionProgress(step: .service, outcome: "skipped", detail: "not started (--no-start, not root, or no systemd)"))
        }
        state.completed[ProvisionStep.service.rawValue] = Self.now()
        state.provisionedAt = Self.now()
        if rotating {
            state.rotations += 1
            state.rotating = false
        }
        try self.save(state, step: .service)
        return self.result(rotating ? "rotated" : "provisioned", state, serviceStarted: started)
    }

    // MARK: Central

    /// The fields of central's enrolment answer the device keeps.
    struct EnrolAnswer: Codable {
        var deviceID: String
        var merchantID: String
        var site: String?
        var certificatePEM: String
        var caPEM: String
        var sealingPublicKey: String
        var sealingKeyAlgorithm: String
        var notAfter: String

        enum CodingKeys: String, CodingKey {
            case deviceID = "device_id"
            case merchantID = "merchant_id"
            case site
            case certificatePEM = "certificate_pem"
            case caPEM = "ca_pem"
            case sealingPublicKey = "sealing_public_key"
            case sealingKeyAlgorithm = "sealing_key_algorithm"
            case notAfter = "not_after"
        }
    }

    private func call(url: String, body: [String: String], caFile: String?, certFile: String?, keyFile: String?)
        throws(ProvisionError) -> EnrolAnswer
    {
        let response: HTTPResponse
        do {
            let client = try CurlHTTPClient(
                configuration: HTTPClientConfiguration(
                    caFile: caFile, certFile: certFile, keyFile: keyFile, connectTimeoutMillis: 10_000,
                    totalTimeoutMillis: 30_000))
            response = try client.perform(
                method: "POST", url: url, headers: ["Content-Type: application/json", "Accept: application/json"],
                body: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]))
        } catch {
            throw ProvisionError(
                step: .enrol, message: "cannot reach central at \(url): \(error) (network, URL or --ca-file; re-run to continue)")
        }
        guard response.status == 200 else {
            let refusal = try? JSONDecoder().decode(CentralRefusal.self, from: response.body)
            throw ProvisionError(
                step: .enrol,
                message: "central refused (HTTP \(response.status)): \(refusal?.error ?? String(decoding: response.body.prefix(300), as: UTF8.self))",
                reason: refusal?.reason)
        }
        do {
            return try JSONDecoder().decode(EnrolAnswer.self, from: response.body)
        } catch {
            throw ProvisionError(step: .enrol, message: "central's answer is not an enrolment response: \(error)")
        }
    }

    private struct CentralRefusal: Decodable {
        var error: String
        var reason: String?
    }

    static func certificate(_ pem: String, matches key: P256.Signing.PrivateKey) -> Bool {
        guard let certificate = try? Certificate(pemEncoded: pem) else { return false }
        return certificate.publicKey == Certificate.PrivateKey(key).publicKey
    }

    static func join(_ base: String, _ path: String) -> String {
        base.hasSuffix("/") ? String(base.dropLast()) + path : base + path
    }

    // MARK: Files

    private func makeDirectories() throws(ProvisionError) {
        for directory in [self.options.stateDirectory, self.options.configDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw ProvisionError(step: .key, message: "cannot create \(directory): \(error)")
            }
        }
    }

    private func save(_ state: ProvisionState, step: ProvisionStep) throws(ProvisionError) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try Self.write(String(decoding: try encoder.encode(state), as: UTF8.self) + "\n", to: self.statePath, mode: 0o600)
        } catch {
            throw ProvisionError(step: step, message: "cannot record progress in \(self.statePath): \(error)")
        }
    }

    /// Writes the key with mode 0600 from the start, owned by the agent user when root.
    private func writeSecret(_ text: String, to path: String, step: ProvisionStep) throws(ProvisionError) {
        do {
            try Self.write(text, to: path, mode: 0o600)
        } catch {
            throw ProvisionError(step: step, message: "cannot write \(path): \(error)")
        }
        if geteuid() == 0, let user = getpwnam(self.options.agentUser) {
            if chown(path, user.pointee.pw_uid, user.pointee.pw_gid) != 0 {
                throw ProvisionError(step: step, message: "cannot chown \(path) to \(self.options.agentUser): errno \(errno)")
            }
        }
    }

    /// Writes through a temporary file created with `mode`, fsync and rename.
    static func write(_ text: String, to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                close(fd)
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            written += n
        }
        fchmod(fd, mode)
        fsync(fd)
        close(fd)
        try rename(temporary, path)
    }

    static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// Sets the identity and sync keys in `agent.toml`, keeping everything else in it.
    private func writeConfig(_ answer: EnrolAnswer) throws {
        let existing = (try? String(contentsOfFile: self.configPath, encoding: .utf8)) ?? Self.configHeader
        var text = existing
        let values: [(String, String, String)] = [
            ("agent", "device_id", answer.deviceID),
            ("agent", "merchant_id", answer.merchantID),
            ("agent", "state_dir", self.options.stateDirectory),
            ("agent", "signing_key_file", self.keyPath),
            ("sync", "url", self.options.centralURL),
            ("sync", "ca_file", self.caPath),
            ("sync", "cert_file", self.certificatePath),
            ("sync", "key_file", self.keyPath),
            ("sync", "sealing_key_file", self.sealingKeyPath),
        ]
        for (table, key, value) in values {
            text = Self.setTOML(text, table: table, key: key, value: value)
        }
        try Self.write(text, to: self.configPath, mode: 0o640)
        if geteuid() == 0, let user = getpwnam(self.options.agentUser) {
            _ = chown(self.configPath, 0, user.pointee.pw_gid)
        }
    }

    static let configHeader = """
        # kiosk-agent configuration, written by `kioskctl provision` (other keys: Provisioning/agent.toml).

        [agent]

        [sync]

        """

    /// Sets `key = "value"` in `[table]`, replacing an existing line or adding one after the header.
    static func setTOML(_ text: String, table: String, key: String, value: String) -> String {
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let line = "\(key) = \"\(escaped)\""
        var lines = text.components(separatedBy: "\n")
        var current: String?
        var header: Int?
        for (index, raw) in lines.enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("[") {
                current = trimmed.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
                if current == table { header = index }
                continue
            }
            guard current == table else { continue }
            if !trimmed.isEmpty && !trimmed.hasPrefix("#") { header = index }  // insert after the table's last key
            let name = trimmed.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces)
            if name == key && !trimmed.hasPrefix("#") {
                lines[index] = line
                return lines.joined(separator: "\n")
            }
        }
        if let header {
            lines.insert(line, at: header + 1)
        } else {
            if lines.last == "" { lines.removeLast() }
            lines += ["", "[\(table)]", line, ""]
        }
        return lines.joined(separator: "\n")
    }

    // MARK: Plumbing

    private func result(_ status: String, _ state: ProvisionState, serviceStarted: Bool) -> ProvisionResult {
        ProvisionResult(
            status: status, deviceID: state.deviceID ?? "", merchantID: state.merchantID ?? "", site: state.site,
            notAfter: state.notAfter,
            files: [
                "key": self.keyPath, "certificate": self.certificatePath, "ca": self.caPath,
                "sealing_key": self.sealingKeyPath, "config": self.configPath, "state": self.statePath,
            ],
            serviceStarted: serviceStarted)
    }

    static func now() -> String { Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false, timeZone: .gmt)) }

    /// Whether systemd is the init system (`/run/systemd/system` exists) and we are root.
    public static var canManageService: Bool {
        geteuid() == 0 && FileManager.default.fileExists(atPath: "/run/systemd/system")
    }

    static func runSystemctl(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemctl")
        process.arguments = arguments
        do {
            try process.run()
        } catch {
            return -1
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Reads an `enrol.env` file: `KEY=VALUE` lines, `#` comments, optional quotes; never a shell.
public func readEnrolEnvironment(path: String) throws -> [String: String] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var values: [String: String] = [:]
    for (number, raw) in text.components(separatedBy: .newlines).enumerated() {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty || line.hasPrefix("#") { continue }
        guard let equals = line.firstIndex(of: "="), equals != line.startIndex else {
            throw ProvisionError(step: .key, message: "\(path):\(number + 1): not a KEY=VALUE line")
        }
        let key = String(line[..<equals]).trimmingCharacters(in: .whitespaces)
        var value = String(line[line.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
        if value.count >= 2, let first = value.first, first == value.last, first == "\"" || first == "'" {
            value = String(value.dropFirst().dropLast())
        }
        values[key] = value
    }
    return values
}
