import Foundation
import KioskCore
import Outbox
import ShopperScreen
import Sync

/// The agent's configuration, read from a TOML file with environment overrides.
public struct AgentConfig: Sendable, Equatable {
    /// This kiosk's id (the CN of its client certificate).
    public var deviceID = "kiosk-dev-0001"
    /// The merchant the kiosk is installed at.
    public var merchantID = "merchant-dev"
    /// Where the agent keeps its database and keys.
    public var stateDirectory = "/var/lib/kiosk-agent"
    /// Log level: trace, debug, info, notice, warning, error, critical.
    public var logLevel = "info"

    /// Outbox capacity.
    public var outboxLimits = OutboxLimits()
    /// How long synced rows are kept, in hours.
    public var retentionSyncedHours = 72

    /// Central's base URL; empty disables sync.
    public var centralURL = ""
    /// CA bundle for central's certificate.
    public var caFile: String?
    /// The device certificate (PEM).
    public var certFile: String?
    /// The device key (PEM); must not be world-readable.
    public var keyFile: String?
    /// Optional public-key pin (`sha256//…`).
    public var pinnedPublicKey: String?
    /// Central's public sealing key (`central-sealing-key.json` from `kioskctl provision`);
    /// when set, application payloads are sealed to it before they reach the outbox.
    public var sealingKeyFile: String?
    /// Optional proxy URL.
    public var proxy: String?
    /// Connect timeout.
    public var connectTimeoutMillis = 5_000
    /// Whole-request timeout.
    public var totalTimeoutMillis = 15_000
    /// Applications per batch.
    public var batchSize = 200
    /// First backoff step.
    public var backoffBaseMillis = 500
    /// Backoff cap.
    public var backoffCapMillis = 300_000
    /// Largest Retry-After obeyed.
    public var retryAfterCapSeconds = 900
    /// Idle poll (and heartbeat) of the sync loop.
    public var idlePollMillis = 5_000

    /// Path of the control socket.
    public var controlSocket = "/run/kiosk-agent/control.sock"
    /// Group allowed to use the control socket (mode 0660); empty keeps the process's group.
    public var controlGroup = ""
    /// Whether the control socket accepts `submit` (test and demo feeds; off in production).
    public var allowSubmit = false

    /// The key that signs authorization records (PEM, P-256); created on first start when absent
    /// (a development key until provisioning installs the device's own). Default: `<state_dir>/authorization-key.pem`.
    public var signingKeyFile: String?

    /// Payment terminal driver: "none", "usb" (libusb, by profile) or "simulated" (demo, tests).
    public var terminalDriver = "none"
    /// The USB terminal's device profile (JSON, see Devices/profiles).
    public var terminalProfile = "/usr/share/kiosk-agent/profiles/kiosk-emulated-terminal.json"
    /// The terminal's serial, when several of the profile's terminals are plugged in.
    public var terminalSerial: String?
    /// The simulated terminal's scenario (see `terminal-emulator --help`).
    public var simulatedScenario = "pay-confirm"
    /// Payments the simulated terminal plays.
    public var simulatedPayments = 3
    /// Pause between the simulated terminal's payments.
    public var simulatedIntervalMillis = 1_500
    /// How long the simulated shopper takes to answer.
    public var simulatedAnswerMillis = 500
    /// How long the simulated terminal waits for an offer after a payment before the next one.
    public var simulatedOfferWaitMillis = 60_000

    /// Smallest amount offered credit, in minor units.
    public var minAmountMinor: Int64 = 10_000
    /// Largest amount offered credit, in minor units.
    public var maxAmountMinor: Int64 = 5_000_000
    /// Currencies offered credit, comma-separated ISO 4217 codes.
    public var currencies = "CNY"
    /// Merchants offered credit, comma-separated; empty: this kiosk's merchant.
    public var merchants = ""
    /// No second offer for the same payment token within this many seconds.
    public var cooldownSeconds = 600
    /// How long the shopper has to answer the consent prompt.
    public var promptTimeoutSeconds = 60
    /// Extra wait beyond the prompt's timeout for the terminal's own "timed out" answer.
    public var answerGraceMillis = 5_000
    /// Whether a passed liveness check is required before an application is created.
    public var requireLiveness = true
    /// Liveness step: "camera" (V4L2 or replayed frames, checked locally), "none" (no check:
    /// offers suspended when liveness is required) or "simulated" (demo stand-in, always passes).
    public var livenessMode = "none"
    /// `liveness.cascade_dir`: OpenCV's Haar cascades (Debian's opencv-data).
    public var cascadeDirectory = "/usr/share/opencv4/haarcascades"
    /// `liveness.thresholds_file`: JSON thresholds (per camera profile); nil = built-in defaults.
    public var thresholdsFile: String?
    /// `liveness.time_limit_s`: how long a shopper has for the check.
    public var livenessTimeLimitSeconds = 20
    /// `camera.device`: the camera's identity `card@bus_info[#serial]`; empty = the first camera.
    public var cameraDevice = ""
    /// `camera.profiles_dir`: camera profiles (Devices/cameras).
    public var cameraProfilesDirectory = "/usr/share/kiosk-agent/cameras"
    /// `camera.replay_dir`: frames (PGM/PPM) replayed instead of a V4L2 camera (demo, tests).
    public var cameraReplayDirectory: String?
    /// `camera.replay_fps`: the replay's frame rate.
    public var cameraReplayFPS = 15
    /// `scanner.profile`: a USB HID QR/barcode scanner's profile (Devices/scanners); nil = none.
    public var scannerProfile: String?
    /// `scanner.serial`: which scanner, when several of the profile are plugged in.
    public var scannerSerial: String?
    /// The consent text shown (UTF-8 file); empty: the built-in sample text.
    public var consentFile: String?
    /// The consent text's id.
    public var consentID = "instalment-consent"
    /// The consent text's version.
    public var consentVersion = "2026.11-sample"
    /// The consent text's language (BCP 47).
    public var consentLanguage = "en"

    /// `screen.enabled`: serve the shopper's page (consent, liveness guidance, result).
    public var screenEnabled = false
    /// `screen.listen`: the page's address (`host:port`; loopback unless `screen.allow_non_loopback`).
    public var screenListen = "127.0.0.1:8780"
    /// `screen.language`: the page's first language (`zh-Hans` or `en`; the shopper may switch).
    public var screenLanguage = "zh-Hans"
    /// `screen.consent_dir`: the consent texts, `<checkout.consent_id>.<language>.txt` (version: `checkout.consent_version`).
    public var screenConsentDir = "/usr/share/kiosk-agent/consent"
    /// `screen.allow_non_loopback`: allow a non-loopback listen address and clients (never on a kiosk).
    public var screenAllowNonLoopback = false
    /// `screen.result_s`: how long a result stays on screen before the page returns to idle.
    public var screenResultSeconds = 15
    /// `screen.lender`: the lender's name on the offer.
    public var screenLender = "Sample Lender"
    /// `screen.instalment_months`: plan lengths offered, comma-separated.
    public var screenInstalmentMonths = "3,6,12"
    /// `screen.fee_bp_per_month`: the plan fee per month, in basis points of the amount.
    public var screenFeeBasisPointsPerMonth = 60
    /// `metrics.textfile`: where to write Prometheus metrics for node_exporter's textfile collector; nil = not written.
    public var metricsTextfile: String?
    /// `metrics.listen`: a loopback `host:port` serving `GET /metrics`; nil = no listener.
    public var metricsListen: String?
    /// `metrics.interval_s`: how often the metrics textfile is rewritten.
    public var metricsIntervalSeconds = 15
    /// `liveness.simulated_ms`: how long the simulated liveness check takes (0: instant).
    public var simulatedLivenessMillis = 0

    /// The defaults.
    public init() {}

    /// The signing key's path.
    public var signingKeyPath: String {
        signingKeyFile ?? (stateDirectory as NSString).appendingPathComponent("authorization-key.pem")
    }

    /// The built-in consent text (a sample, plainly marked; deployments configure their lender's).
    public static let sampleConsentText = """
        SAMPLE — NOT A REAL CREDIT AGREEMENT.
        By confirming, you apply for instalment credit for this purchase. The lender will assess your \
        application, may check your credit record, and will send you the agreement to sign before any \
        credit is granted. You may withdraw within 14 days. Your payment token, masked card number and a \
        face-liveness result are sent to the lender with this application; no card number or photo is stored.
        """

    /// The checkout rules and consent text, as the state machine takes them.
    public func checkoutContext() throws -> CheckoutContext {
        let text: String
        if let consentFile {
            do {
                text = try String(contentsOfFile: consentFile, encoding: .utf8)
            } catch {
                throw ConfigError(source: consentFile, key: "checkout.consent_file", message: "cannot read: \(error.localizedDescription)")
            }
        } else {
            text = Self.sampleConsentText
        }
        let list = { (s: String) in Set(s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }) }
        let merchantSet = list(merchants)
        let rules = EligibilityRules(minAmountMinor: minAmountMinor, maxAmountMinor: maxAmountMinor, currencies: list(currencies),
                                     merchants: merchantSet.isEmpty ? [merchantID] : merchantSet, cooldownSeconds: TimeInterval(cooldownSeconds))
        return CheckoutContext(deviceID: deviceID, merchantID: merchantID, rules: rules,
                               consent: ConsentText(id: consentID, version: consentVersion, language: consentLanguage, text: text),
                               requireLiveness: requireLiveness)
    }

    /// `screen.instalment_months` as numbers.
    public var screenInstalmentMonthsList: [Int] {
        screenInstalmentMonths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 && $0 <= 120 }
    }

    /// The outbox database path.
    public var databasePath: String { (stateDirectory as NSString).appendingPathComponent("outbox.sqlite") }

    /// The sync engine's configuration.
    public var syncConfiguration: SyncConfiguration {
        var http = HTTPClientConfiguration(caFile: caFile, certFile: certFile, keyFile: keyFile,
                                           pinnedPublicKey: pinnedPublicKey, proxy: proxy,
                                           connectTimeoutMillis: connectTimeoutMillis, totalTimeoutMillis: totalTimeoutMillis)
        http.maxResponseBytes = 16 << 20
        var c = SyncConfiguration(centralURL: centralURL, deviceID: deviceID, http: http)
        c.batchSize = batchSize
        c.backoff = Backoff(base: .milliseconds(backoffBaseMillis), cap: .milliseconds(backoffCapMillis),
                            retryAfterCap: .seconds(retryAfterCapSeconds))
        c.idlePoll = .milliseconds(idlePollMillis)
        return c
    }
}

/// The config could not be used; says which key, where, and why.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or "environment").
    public var source: String
    /// The line, when known.
    public var line: Int?
    /// The key, when known (`table.key`).
    public var key: String?
    /// What is wrong.
    public var message: String

    /// Creates the error.
    public init(source: String, line: Int? = nil, key: String? = nil, message: String) {
        self.source = source
        self.line = line
        self.key = key
        self.message = message
    }

    /// `file:line: key: message`.
    public var description: String {
        var s = source
        if let line { s += ":\(line)" }
        if let key { s += ": \(key)" }
        return s + ": " + message
    }
}

extension AgentConfig {
    private enum Kind: Sendable { case string, optionalString, int, bool }
    private struct Field: Sendable {
        let kind: Kind
        let apply: @Sendable (inout AgentConfig, TOMLValue) throws -> Void
    }

    private static func str(_ kp: WritableKeyPath<AgentConfig, String> & Sendable) -> Field {
        Field(kind: .string) { c, v in
            guard case let .string(s) = v else { throw Mismatch(expected: "string", got: v.typeName) }
            c[keyPath: kp] = s
        }
    }
    private static func optStr(_ kp: WritableKeyPath<AgentConfig, String?> & Sendable) -> Field {
        Field(kind: .optionalString) { c, v in
            guard case let .string(s) = v else { throw Mismatch(expected: "string", got: v.typeName) }
            c[keyPath: kp] = s.isEmpty ? nil : s
        }
    }
    private static func int(_ kp: WritableKeyPath<AgentConfig, Int> & Sendable, _ range: ClosedRange<Int>) -> Field {
        Field(kind: .int) { c, v in
            guard case let .integer(i) = v else { throw Mismatch(expected: "integer", got: v.typeName) }
            guard range.contains(Int(i)) else { throw OutOfRange(value: Int(i), range: range) }
            c[keyPath: kp] = Int(i)
        }
    }
    private static func int64(_ kp: WritableKeyPath<AgentConfig, Int64> & Sendable, _ range: ClosedRange<Int64>) -> Field {
        Field(kind: .int) { c, v in
            guard case let .integer(i) = v else { throw Mismatch(expected: "integer", got: v.typeName) }
            guard range.contains(i) else { throw OutOfRange(value: Int(i), range: Int(range.lowerBound)...Int(range.upperBound)) }
            c[keyPath: kp] = i
        }
    }
    private static func bool(_ kp: WritableKeyPath<AgentConfig, Bool> & Sendable) -> Field {
        Field(kind: .bool) { c, v in
            guard case let .boolean(b) = v else { throw Mismatch(expected: "boolean (true or false)", got: v.typeName) }
            c[keyPath: kp] = b
        }
    }
    private struct Mismatch: Error { let expected: String; let got: String }
    private struct OutOfRange: Error { let value: Int; let range: ClosedRange<Int> }

    private static let fields: [String: Field] = [
        "agent.device_id": str(\.deviceID),
        "agent.merchant_id": str(\.merchantID),
        "agent.state_dir": str(\.stateDirectory),
        "agent.log_level": str(\.logLevel),
        "outbox.max_rows": int(\.outboxLimits.maxRows, 1...100_000_000),
        "outbox.max_bytes": int64(\.outboxLimits.maxBytes, 1024...(1 << 40)),
        "outbox.min_free_disk_bytes": int64(\.outboxLimits.minFreeDiskBytes, 0...(1 << 40)),
        "outbox.retention_synced_hours": int(\.retentionSyncedHours, 0...100_000),
        "sync.url": str(\.centralURL),
        "sync.ca_file": optStr(\.caFile),
        "sync.cert_file": optStr(\.certFile),
        "sync.key_file": optStr(\.keyFile),
        "sync.pinned_public_key": optStr(\.pinnedPublicKey),
        "sync.sealing_key_file": optStr(\.sealingKeyFile),
        "sync.proxy": optStr(\.proxy),
        "sync.connect_timeout_ms": int(\.connectTimeoutMillis, 100...600_000),
        "sync.timeout_ms": int(\.totalTimeoutMillis, 100...600_000),
        "sync.batch_size": int(\.batchSize, 1...1000),
        "sync.backoff_base_ms": int(\.backoffBaseMillis, 1...600_000),
        "sync.backoff_cap_ms": int(\.backoffCapMillis, 1...86_400_000),
        "sync.retry_after_cap_s": int(\.retryAfterCapSeconds, 0...86_400),
        "sync.idle_poll_ms": int(\.idlePollMillis, 10...600_000),
        "control.socket": str(\.controlSocket),
        "control.group": str(\.controlGroup),
        "control.allow_submit": bool(\.allowSubmit),
        "agent.signing_key_file": optStr(\.signingKeyFile),
        "terminal.driver": str(\.terminalDriver),
        "terminal.profile": str(\.terminalProfile),
        "terminal.serial": optStr(\.terminalSerial),
        "terminal.simulated_scenario": str(\.simulatedScenario),
        "terminal.simulated_payments": int(\.simulatedPayments, 0...1_000_000),
        "terminal.simulated_interval_ms": int(\.simulatedIntervalMillis, 0...3_600_000),
        "terminal.simulated_answer_ms": int(\.simulatedAnswerMillis, 0...600_000),
        "terminal.simulated_offer_wait_ms": int(\.simulatedOfferWaitMillis, 100...3_600_000),
        "checkout.min_amount_minor": int64(\.minAmountMinor, 1...(1 << 50)),
        "checkout.max_amount_minor": int64(\.maxAmountMinor, 1...(1 << 50)),
        "checkout.currencies": str(\.currencies),
        "checkout.merchants": str(\.merchants),
        "checkout.cooldown_s": int(\.cooldownSeconds, 0...31_536_000),
        "checkout.prompt_timeout_s": int(\.promptTimeoutSeconds, 1...600),
        "checkout.require_liveness": bool(\.requireLiveness),
        "checkout.answer_grace_ms": int(\.answerGraceMillis, 0...600_000),
        "checkout.consent_file": optStr(\.consentFile),
        "checkout.consent_id": str(\.consentID),
        "checkout.consent_version": str(\.consentVersion),
        "checkout.consent_language": str(\.consentLanguage),
        "liveness.mode": str(\.livenessMode),
        "liveness.cascade_dir": str(\.cascadeDirectory),
        "liveness.thresholds_file": optStr(\.thresholdsFile),
        "liveness.time_limit_s": int(\.livenessTimeLimitSeconds, 3...300),
        "camera.device": str(\.cameraDevice),
        "camera.profiles_dir": str(\.cameraProfilesDirectory),
        "camera.replay_dir": optStr(\.cameraReplayDirectory),
        "camera.replay_fps": int(\.cameraReplayFPS, 1...120),
        "scanner.profile": optStr(\.scannerProfile),
        "scanner.serial": optStr(\.scannerSerial),
        "screen.enabled": bool(\.screenEnabled),
        "screen.listen": str(\.screenListen),
        "screen.language": str(\.screenLanguage),
        "screen.consent_dir": str(\.screenConsentDir),
        "screen.allow_non_loopback": bool(\.screenAllowNonLoopback),
        "screen.result_s": int(\.screenResultSeconds, 1...3600),
        "screen.lender": str(\.screenLender),
        "screen.instalment_months": str(\.screenInstalmentMonths),
        "screen.fee_bp_per_month": int(\.screenFeeBasisPointsPerMonth, 0...10_000),
        "metrics.textfile": optStr(\.metricsTextfile),
        "metrics.listen": optStr(\.metricsListen),
        "metrics.interval_s": int(\.metricsIntervalSeconds, 1...3600),
        "liveness.simulated_ms": int(\.simulatedLivenessMillis, 0...60_000),
    ]

    /// Every key the config understands, as `table.key`.
    public static var knownKeys: [String] { fields.keys.sorted() }

    /// Reads a config file (TOML), then applies `KIOSK_AGENT_<TABLE>_<KEY>` environment overrides.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AgentConfig {
        var config = AgentConfig()
        if let path {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigError(source: path, message: "cannot read: \(error.localizedDescription)")
            }
            try config.apply(toml: text, source: path)
        }
        try config.apply(environment: environment)
        try config.validate(source: path ?? "config")
        return config
    }

    /// Applies a TOML document over the current values.
    public mutating func apply(toml text: String, source: String) throws {
        let entries: [String: TOMLEntry]
        do {
            entries = try TOMLParser.parse(text)
        } catch let e as TOMLError {
            throw ConfigError(source: source, line: e.line, message: e.message)
        }
        for (key, entry) in entries.sorted(by: { $0.value.line < $1.value.line }) {
            guard let field = Self.fields[key] else {
                throw ConfigError(source: source, line: entry.line, key: key,
                                  message: "unknown key" + Self.suggestion(for: key))
            }
            try apply(field, entry.value, key: key, source: source, line: entry.line)
        }
    }

    /// Applies `KIOSK_AGENT_<TABLE>_<KEY>=value` overrides (e.g. `KIOSK_AGENT_SYNC_URL`).
    public mutating func apply(environment: [String: String]) throws {
        let prefix = "KIOSK_AGENT_"
        for (name, raw) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count).lowercased()
            guard let key = Self.fields.keys.first(where: { $0.replacingOccurrences(of: ".", with: "_") == rest }),
                  let field = Self.fields[key] else {
                throw ConfigError(source: "environment", key: name, message: "unknown override")
            }
            let value: TOMLValue
            switch field.kind {
            case .string, .optionalString: value = .string(raw)
            case .int:
                guard let i = Int64(raw.replacingOccurrences(of: "_", with: "")) else {
                    throw ConfigError(source: "environment", key: name, message: "expected an integer, got '\(raw)'")
                }
                value = .integer(i)
            case .bool:
                guard let b = ["true": true, "1": true, "yes": true, "false": false, "0": false, "no": false][raw.lowercased()] else {
                    throw ConfigError(source: "environment", key: name, message: "expected true or false, got '\(raw)'")
                }
                value = .boolean(b)
            }
            try apply(field, value, key: name, source: "environment", line: nil)
        }
    }

    private mutating func apply(_ field: Field, _ value: TOMLValue, key: String, source: String, line: Int?) throws {
        do {
            try field.apply(&self, value)
        } catch let m as Mismatch {
            throw ConfigError(source: source, line: line, key: key, message: "expected \(m.expected), got \(m.got)")
        } catch let r as OutOfRange {
            throw ConfigError(source: source, line: line, key: key,
                              message: "\(r.value) is out of range \(r.range.lowerBound)…\(r.range.upperBound)")
        }
    }

    /// Cross-field checks: log level, URL scheme, TLS files.
    public func validate(source: String) throws {
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(logLevel) else {
            throw ConfigError(source: source, key: "agent.log_level", message: "must be one of \(levels.joined(separator: ", "))")
        }
        guard ApplicationID.isValid(deviceID) else {
            throw ConfigError(source: source, key: "agent.device_id", message: "must be 1–64 characters of [A-Za-z0-9._-]")
        }
        guard ["none", "usb", "simulated"].contains(terminalDriver) else {
            throw ConfigError(source: source, key: "terminal.driver", message: "must be none, usb or simulated (got \(terminalDriver))")
        }
        guard ["none", "simulated", "camera"].contains(livenessMode) else {
            throw ConfigError(source: source, key: "liveness.mode", message: "must be camera, none or simulated (got \(livenessMode))")
        }
        if screenEnabled {
            guard let (host, _) = ShopperScreenServer.Configuration.parseListen(screenListen) else {
                throw ConfigError(source: source, key: "screen.listen", message: "must be host:port (got \(screenListen))")
            }
            guard screenAllowNonLoopback || host == "localhost" || ScreenAccess.isLoopback(host) else {
                throw ConfigError(source: source, key: "screen.listen",
                                  message: "\(host) is not loopback; the page is for the kiosk's own browser (screen.allow_non_loopback = true overrides)")
            }
            guard !screenInstalmentMonthsList.isEmpty else {
                throw ConfigError(source: source, key: "screen.instalment_months", message: "needs at least one positive number of months")
            }
        }
        if let metricsListen {
            guard let (host, _) = ShopperScreenServer.Configuration.parseListen(metricsListen) else {
                throw ConfigError(source: source, key: "metrics.listen", message: "must be host:port (got \(metricsListen))")
            }
            guard host == "localhost" || ScreenAccess.isLoopback(host) else {
                throw ConfigError(source: source, key: "metrics.listen",
                                  message: "\(host) is not loopback; metrics are for a local collector (use metrics.textfile with node_exporter)")
            }
        }
        guard minAmountMinor <= maxAmountMinor else {
            throw ConfigError(source: source, key: "checkout.min_amount_minor", message: "is above checkout.max_amount_minor")
        }
        if !centralURL.isEmpty {
            guard centralURL.hasPrefix("https://") else {
                throw ConfigError(source: source, key: "sync.url", message: "must be an https:// URL (got \(centralURL))")
            }
            guard (certFile == nil) == (keyFile == nil) else {
                throw ConfigError(source: source, key: "sync.cert_file", message: "cert_file and key_file go together")
            }
        }
    }

    private static func suggestion(for key: String) -> String {
        let close = fields.keys.filter { levenshtein($0, key) <= 2 }.sorted()
        return close.isEmpty ? "" : " (did you mean \(close.joined(separator: " or "))?)"
    }

    private static func levenshtein(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
