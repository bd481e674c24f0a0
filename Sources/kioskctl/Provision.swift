import ArgumentParser
import Foundation
import KioskAgent

#if canImport(Glibc)
import Glibc
#endif

extension KioskCtl {
    /// `kioskctl provision`: enrol this kiosk with central and write its identity and config.
    struct Provision: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrol this kiosk with kiosk-central: device key, CSR, certificate, config, service.",
            discussion: """
                Steps (each printed, and recorded in STATE_DIR/provision.json so a re-run continues where \
                a failed one stopped): key (P-256, generated here, 0600), csr, enrol (POST /v1/enrol with \
                the one-time token), store (device.pem, central-ca.pem, central-sealing-key.json), config \
                (agent.toml), service (systemctl enable --now kiosk-agent, only as root under systemd). \
                A completed provisioning re-run is a no-op; --rotate makes a new key and renews the \
                certificate with central, authenticated by the current one (no token needed). The outbox \
                is never touched. --from reads an enrol.env file (KIOSK_CENTRAL_URL, KIOSK_ENROL_URL, \
                KIOSK_ENROL_TOKEN, KIOSK_MERCHANT_ID, KIOSK_SITE, KIOSK_CA_FILE); flags win over it, and \
                the file is renamed to FILE.done on success (the token is single-use).
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: "Central's sync URL (mutual TLS), e.g. https://central.example:8443.")
        var centralURL: String?

        @Option(help: "Central's enrolment URL (TLS without a client certificate; default: --central-url).")
        var enrolURL: String?

        @Option(help: "The one-time enrolment token.")
        var token: String?

        @Option(help: "The merchant id the token must be for.")
        var merchantID: String?

        @Option(help: "The site the kiosk is installed at.")
        var site: String?

        @Option(help: "Central's CA (PEM) to trust for the enrolment call (default: the system's CA store).")
        var caFile: String?

        @Option(help: "Where agent.toml, central-ca.pem and the sealing key go.")
        var configDir = "/etc/kiosk-agent"

        @Option(help: "Where the device key, certificate and provisioning state go.")
        var stateDir = "/var/lib/kiosk-agent"

        @Option(help: "An enrol.env file (KEY=VALUE lines) with the values of the flags.")
        var from: String?

        @Flag(help: "Make a new key and certificate although the kiosk is provisioned (queued applications stay).")
        var rotate = false

        @Flag(help: "Do not enable or start kiosk-agent.")
        var noStart = false

        @Option(help: "The user that owns the device key when run as root.")
        var agentUser = "kiosk-agent"

        func run() throws {
            var file: [String: String] = [:]
            if let from {
                do {
                    file = try readEnrolEnvironment(path: from)
                } catch {
                    throw ValidationError("cannot read --from \(from): \(error)")
                }
            }
            let provisioner0 = Provisioner(
                options: ProvisionOptions(centralURL: "", configDirectory: self.configDir, stateDirectory: self.stateDir))
            let recorded = provisioner0.loadState()
            let needsToken = recorded.provisionedAt == nil && !recorded.rotating && !self.rotate
            let needsURL = recorded.centralURL == nil

            func value(_ flag: String?, _ key: String) -> String? {
                if let flag, !flag.isEmpty { return flag }
                if let v = file[key], !v.isEmpty { return v }
                return nil
            }
            func required(_ flag: String?, _ key: String, name: String, prompt: String) throws -> String {
                if let v = value(flag, key) { return v }
                if isatty(STDIN_FILENO) == 1 {
                    FileHandle.standardError.write(Data("\(prompt): ".utf8))
                    if let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty {
                        return line.trimmingCharacters(in: .whitespaces)
                    }
                }
                throw ValidationError("missing \(name) (or \(key) in --from FILE)")
            }

            let url: String =
                try needsURL
                ? required(self.centralURL, "KIOSK_CENTRAL_URL", name: "--central-url", prompt: "Central URL (https://…)")
                : (value(self.centralURL, "KIOSK_CENTRAL_URL") ?? recorded.centralURL ?? "")
            let token: String? =
                try needsToken
                ? required(self.token, "KIOSK_ENROL_TOKEN", name: "--token", prompt: "Enrolment token")
                : value(self.token, "KIOSK_ENROL_TOKEN")
            let options = ProvisionOptions(
                centralURL: url, enrolURL: value(self.enrolURL, "KIOSK_ENROL_URL"), token: token,
                merchantID: value(self.merchantID, "KIOSK_MERCHANT_ID"), site: value(self.site, "KIOSK_SITE"),
                caFile: value(self.caFile, "KIOSK_CA_FILE"), configDirectory: self.configDir,
                stateDirectory: self.stateDir, rotate: self.rotate,
                startService: !self.noStart && Provisioner.canManageService, agentUser: self.agentUser)

            let json = self.global.json
            let steps = ProvisionStep.allCases.count
            let result: ProvisionResult
            do throws(ProvisionError) {
                result = try Provisioner(options: options).run { progress in
                    let index = (ProvisionStep.allCases.firstIndex(of: progress.step) ?? 0) + 1
                    let line = "[\(index)/\(steps)] \(pad(progress.step.rawValue, 7)) \(pad(progress.outcome, 7)) \(progress.detail)\n"
                    // With --json, stdout carries only the result; progress goes to stderr.
                    if json {
                        FileHandle.standardError.write(Data(line.utf8))
                    } else {
                        FileHandle.standardOutput.write(Data(line.utf8))
                    }
                }
            } catch {
                if json {
                    var object: [String: Any] = ["ok": false, "step": error.step.rawValue, "error": error.message]
                    if let reason = error.reason { object["reason"] = reason }
                    try self.global.printJSON(object)
                }
                throw AgentError(message: "provision failed at step \(error.step.rawValue): \(error.message)")
            }
            if let from, FileManager.default.fileExists(atPath: from) {
                // The token is spent: keep the file from being offered again at the next boot.
                _ = Glibc.rename(from, from + ".done")
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                switch result.status {
                case "already_provisioned":
                    print("already provisioned as \(result.deviceID) (merchant \(result.merchantID)); nothing to do (--rotate for a new key)")
                case "rotated":
                    print("rotated the key and certificate of \(result.deviceID); valid until \(result.notAfter ?? "-")")
                default:
                    print("provisioned as \(result.deviceID) for merchant \(result.merchantID); config \(result.files["config"] ?? "-")")
                }
            }
        }
    }
}
