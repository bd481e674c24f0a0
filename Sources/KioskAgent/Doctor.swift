import Foundation
import Sync

/// The verdict of one `kioskctl doctor` check.
public enum DoctorStatus: String, Sendable, Codable, Comparable {
    /// Nothing to do.
    case ok = "OK"
    /// Works, but needs attention soon.
    case warn = "WARN"
    /// Broken: the kiosk cannot work this way.
    case fail = "FAIL"
    /// Not run (`--skip`, or a check it depends on failed).
    case skip = "SKIP"

    private var rank: Int {
        switch self {
        case .skip: return 0
        case .ok: return 1
        case .warn: return 2
        case .fail: return 3
        }
    }
    /// Orders by severity (FAIL highest).
    public static func < (a: DoctorStatus, b: DoctorStatus) -> Bool { a.rank < b.rank }
}

/// One line of `kioskctl doctor`: what was checked, the verdict, and what to do.
public struct DoctorResult: Sendable, Equatable, Codable {
    /// The check's name (`config`, `key`, `certificate`, `clock`, …).
    public var check: String
    /// The verdict.
    public var status: DoctorStatus
    /// What was found.
    public var message: String
    /// What to do about it (nil when OK).
    public var hint: String?

    /// Creates a result.
    public init(_ check: String, _ status: DoctorStatus, _ message: String, hint: String? = nil) {
        self.check = check
        self.status = status
        self.message = message
        self.hint = hint
    }
}

/// The individual checks of `kioskctl doctor`; each returns one ``DoctorResult`` and never throws.
public enum Doctor {
    /// Every check, in the order they run.
    public static let checkNames = ["config", "key", "certificate", "disk", "dns", "tcp", "tls", "mtls", "clock",
                                    "agent", "terminal", "camera", "outbox"]

    /// Loads the config with the agent's own loader.
    public static func configCheck(path: String?) -> (DoctorResult, AgentConfig?) {
        do {
            let config = try AgentConfig.load(path: path)
            return (DoctorResult("config", .ok, "\(path ?? "built-in defaults") is valid (device \(config.deviceID))"), config)
        } catch let e as ConfigError {
            return (DoctorResult("config", .fail, e.description, hint: "fix the key named above (see Provisioning/agent.toml for every key)"), nil)
        } catch {
            return (DoctorResult("config", .fail, "\(error)", hint: "check the file exists and is readable"), nil)
        }
    }

    /// The device key: present, and not readable by others.
    public static func keyCheck(path: String?) -> DoctorResult {
        guard let path else {
            return DoctorResult("key", .fail, "sync.key_file is not set", hint: "provision the kiosk (kioskctl provision) or set sync.key_file")
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            return DoctorResult("key", .fail, "\(path): \(String(cString: strerror(errno)))",
                                hint: "provision the kiosk (kioskctl provision) or point sync.key_file at the device key")
        }
        let mode = Int(st.st_mode) & 0o7777
        if mode & 0o004 != 0 {
            return DoctorResult("key", .fail, "\(path) is world-readable (mode \(String(mode, radix: 8)))",
                                hint: "chmod 600 \(path) (the agent refuses to start with it)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return DoctorResult("key", .warn, "\(path) exists (mode \(String(mode, radix: 8))) but this user cannot read it",
                                hint: "run kioskctl doctor as root or as the kiosk-agent user to check its content")
        }
        guard text.contains("PRIVATE KEY-----") else {
            return DoctorResult("key", .fail, "\(path) holds no PEM private key", hint: "re-provision the kiosk (kioskctl provision)")
        }
        return DoctorResult("key", .ok, "\(path) present, mode \(String(mode, radix: 8))")
    }

    /// The device certificate: present, valid now, and not expiring within `warnWithin`.
    public static func certificateCheck(path: String?, now: Date = Date(), warnWithin: TimeInterval = 14 * 86_400) -> DoctorResult {
        guard let path else {
            return DoctorResult("certificate", .fail, "sync.cert_file is not set",
                                hint: "provision the kiosk (kioskctl provision) or set sync.cert_file")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            return DoctorResult("certificate", .fail, "\(path): cannot read (\(error.localizedDescription))",
                                hint: "provision the kiosk (kioskctl provision) or point sync.cert_file at the device certificate")
        }
        let v: CertificateValidity
        do {
            v = try CertificateValidity.parse(pem: text)
        } catch {
            return DoctorResult("certificate", .fail, "\(path): \(error)", hint: "re-provision the kiosk (kioskctl provision)")
        }
        let iso = ISO8601DateFormatter()
        let cn = v.commonName.map { "CN=\($0), " } ?? ""
        if now < v.notBefore {
            return DoctorResult("certificate", .fail, "\(cn)not valid before \(iso.string(from: v.notBefore))",
                                hint: "check the clock (timedatectl); central rejects it until then")
        }
        if now >= v.notAfter {
            return DoctorResult("certificate", .fail, "\(cn)expired \(iso.string(from: v.notAfter))",
                                hint: "re-provision the kiosk to get a new certificate (kioskctl provision)")
        }
        let days = Int(v.notAfter.timeIntervalSince(now) / 86_400)
        if v.notAfter.timeIntervalSince(now) < warnWithin {
            return DoctorResult("certificate", .warn, "\(cn)expires \(iso.string(from: v.notAfter)) (in \(days) days)",
                                hint: "renew it before then (kioskctl provision rotates key and certificate)")
        }
        return DoctorResult("certificate", .ok, "\(cn)valid until \(iso.string(from: v.notAfter)) (\(days) days)")
    }

    /// Local clock minus central's: `serverDate` is an HTTP Date (whole seconds) taken when the
    /// response arrived at `localAt`; the request's round trip is allowed for.
    public static func clockSkew(localAt: Date, serverDate: Date, roundTrip: TimeInterval = 0) -> TimeInterval {
        let raw = localAt.timeIntervalSince(serverDate)
        // The Date header truncates to the second and was stamped up to one round trip earlier.
        let slack = 1 + max(0, roundTrip)
        if abs(raw) <= slack { return 0 }
        return raw > 0 ? raw - slack : raw + slack
    }

    /// WARN above `warnAfter`, FAIL above `failAfter`.
    public static func clockCheck(skew: TimeInterval, warnAfter: TimeInterval = 120, failAfter: TimeInterval = 600) -> DoctorResult {
        let text = skew == 0 ? "in step with central" : String(format: "%.0f s %@ central", abs(skew), skew > 0 ? "ahead of" : "behind")
        if abs(skew) > failAfter {
            return DoctorResult("clock", .fail, text, hint: "set the clock (timedatectl set-ntp true; check NTP reachability): TLS and signatures depend on it")
        }
        if abs(skew) > warnAfter {
            return DoctorResult("clock", .warn, text, hint: "enable time sync (timedatectl set-ntp true)")
        }
        return DoctorResult("clock", .ok, text)
    }

    /// Parses an HTTP Date header (IMF-fixdate, RFC 9110).
    public static func parseHTTPDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }

    /// Bytes available to unprivileged users on the filesystem of `path` (or its nearest existing parent).
    public static func freeBytes(at path: String) -> Int64? {
        var p = path
        while !FileManager.default.fileExists(atPath: p), p != "/", !p.isEmpty { p = (p as NSString).deletingLastPathComponent }
        var info = statvfs()
        guard statvfs(p.isEmpty ? "/" : p, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Free space for the outbox against `outbox.min_free_disk_bytes` (WARN under twice the minimum).
    public static func diskCheck(directory: String, minFree: Int64, free: Int64?) -> DoctorResult {
        guard let free else {
            return DoctorResult("disk", .fail, "cannot stat the filesystem of \(directory)", hint: "check agent.state_dir exists")
        }
        let text = "\(mib(free)) free for \(directory) (minimum \(mib(minFree)))"
        if free < minFree {
            return DoctorResult("disk", .fail, text + ": new applications are refused",
                                hint: "free space on that filesystem (journalctl --vacuum-size, old logs) or lower outbox.min_free_disk_bytes")
        }
        if free < minFree * 2 {
            return DoctorResult("disk", .warn, text, hint: "free space on that filesystem before the outbox refuses applications")
        }
        return DoctorResult("disk", .ok, text)
    }

    /// Outbox depth and the age of the oldest pending application (WARN beyond `warnAge`).
    public static func outboxCheck(pending: Int, rejected: Int = 0, quarantined: Int = 0, oldestAge: TimeInterval?,
                                   warnAge: TimeInterval = 3600) -> DoctorResult {
        var text = "\(pending) pending"
        if let oldestAge { text += String(format: ", oldest %.0f s", oldestAge) }
        if let oldestAge, oldestAge > warnAge {
            return DoctorResult("outbox", .warn, text + " (over \(Int(warnAge / 60)) min)",
                                hint: "applications are not reaching central: see the network checks above and kioskctl status")
        }
        if rejected > 0 {
            return DoctorResult("outbox", .warn, text + ", \(rejected) rejected by central",
                                hint: "an operator reviews them: kioskctl queue list --state rejected, then queue retry ID")
        }
        if quarantined > 0 {
            return DoctorResult("outbox", .warn, text + ", \(quarantined) quarantined (unreadable rows)",
                                hint: "report them to support with the agent's journal (kioskctl logs)")
        }
        return DoctorResult("outbox", .ok, text)
    }

    static func mib(_ n: Int64) -> String { String(format: "%.1f MiB", Double(n) / 1_048_576) }
}

// MARK: - Network checks

extension Doctor {
    /// Central's host and port from `sync.url`.
    public static func endpoint(of url: String) -> (host: String, port: Int)? {
        guard let c = URLComponents(string: url), let host = c.host, !host.isEmpty else { return nil }
        return (host, c.port ?? (c.scheme == "http" ? 80 : 443))
    }

    /// Resolves `host` (getaddrinfo, bounded by `timeout`); returns the numeric addresses.
    public static func dnsCheck(host: String, timeout: TimeInterval) -> (DoctorResult, [String]) {
        let box = Box<Resolution?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.set(resolve(host))
            done.signal()
        }
        thread.start()
        guard done.wait(timeout: .now() + timeout) == .success, let result = box.get() else {
            return (DoctorResult("dns", .fail, "resolving \(host) took over \(Int(timeout)) s",
                                 hint: "check the DNS servers (resolvectl status) and the network link"), [])
        }
        switch result {
        case let .addresses(addresses):
            return (DoctorResult("dns", .ok, "\(host) → \(addresses.joined(separator: ", "))"), addresses)
        case let .failure(message):
            return (DoctorResult("dns", .fail, "\(host): \(message)",
                                 hint: "check sync.url's host name and the DNS servers (resolvectl status)"), [])
        }
    }

    enum Resolution: Sendable {
        case addresses([String])
        case failure(String)
    }

    static func resolve(_ host: String) -> Resolution {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &res)
        guard rc == 0 else { return .failure(String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(res) }
        var out: [String] = []
        var p = res
        while let ai = p {
            var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0 {
                let s = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                if !out.contains(s) { out.append(s) }
            }
            p = ai.pointee.ai_next
        }
        return .addresses(out)
    }

    /// Opens a TCP connection to `address:port` (numeric), bounded by `timeout`.
    public static func tcpCheck(addresses: [String], port: Int, timeout: TimeInterval) -> DoctorResult {
        var errors: [String] = []
        for address in addresses {
            let t0 = Date()
            switch connectTCP(address: address, port: port, timeout: timeout) {
            case nil:
                return DoctorResult("tcp", .ok, String(format: "connected to %@ port %d in %.0f ms", address, port, Date().timeIntervalSince(t0) * 1000))
            case let message?:
                errors.append("\(address) port \(port): \(message)")
            }
        }
        return DoctorResult("tcp", .fail, errors.isEmpty ? "no address to connect to" : errors.joined(separator: "; "),
                            hint: "is kiosk-central up and sync.url's port right? Check the firewall and any proxy (sync.proxy)")
    }

    /// nil on success, else why.
    static func connectTCP(address: String, port: Int, timeout: TimeInterval) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, String(port), &hints, &res) == 0, let ai = res else { return "not a numeric address" }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        if connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let n = poll(&pfd, 1, Int32(timeout * 1000))
        if n == 0 { return "no answer within \(Int(timeout)) s" }
        if n < 0 { return String(cString: strerror(errno)) }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0 ? nil : String(cString: strerror(err))
    }

    /// What a HTTPS request to central showed.
    public struct Probe: Sendable {
        /// The response, when one arrived.
        public var response: HTTPResponse?
        /// The transport error, when none did.
        public var error: CurlError?
        /// When the answer arrived.
        public var at: Date
        /// Seconds from request to answer.
        public var roundTrip: TimeInterval
    }

    /// GETs `path` on central over libcurl (the sync client), with or without the client certificate.
    public static func probe(_ config: AgentConfig, path: String = "/healthz", clientCertificate: Bool, timeout: TimeInterval) -> Probe {
        var http = config.syncConfiguration.http
        if !clientCertificate {
            http.certFile = nil
            http.keyFile = nil
        }
        http.connectTimeoutMillis = Int(timeout * 1000)
        http.totalTimeoutMillis = Int(timeout * 1000)
        http.maxResponseBytes = 1 << 20
        let t0 = Date()
        do {
            let client = try CurlHTTPClient(configuration: http)
            let base = config.centralURL.hasSuffix("/") ? String(config.centralURL.dropLast()) : config.centralURL
            let r = try client.perform(method: "GET", url: base + path)
            return Probe(response: r, error: nil, at: Date(), roundTrip: Date().timeIntervalSince(t0))
        } catch let e as CurlError {
            return Probe(response: nil, error: e, at: Date(), roundTrip: Date().timeIntervalSince(t0))
        } catch {
            return Probe(response: nil, error: CurlError(code: -1, message: "\(error)"), at: Date(), roundTrip: Date().timeIntervalSince(t0))
        }
    }

    /// Whether a TLS failure is the server's alert after the client verified it (no client certificate sent).
    static func isPeerAlert(_ e: CurlError) -> Bool {
        let m = e.message.lowercased()
        if e.code == 52 { return true }  // empty reply: the server closed after the handshake
        return (e.code == 35 || e.code == 56) && (m.contains("alert") || m.contains("certificate required") || m.contains("reset by peer"))
    }

    /// TLS handshake verifying central's certificate with `sync.ca_file` (no client certificate).
    public static func tlsCheck(_ probe: Probe, caFile: String?) -> DoctorResult {
        let ca = caFile.map { "sync.ca_file \($0)" } ?? "the system CA store"
        if probe.response != nil {
            return DoctorResult("tls", .ok, "central's certificate verified with \(ca)")
        }
        guard let e = probe.error else { return DoctorResult("tls", .fail, "no answer") }
        if isPeerAlert(e) {
            return DoctorResult("tls", .ok, "central's certificate verified with \(ca); central requires a client certificate")
        }
        switch e.code {
        case 60, 51:
            return DoctorResult("tls", .fail, "central's certificate is not trusted: \(e.message)",
                                hint: "sync.ca_file must hold the CA that signed central's certificate; check the host name in sync.url and the clock")
        case 77:
            return DoctorResult("tls", .fail, "cannot use the CA file: \(e.message)", hint: "check sync.ca_file exists and is a PEM bundle")
        case 90, 91:
            return DoctorResult("tls", .fail, "central's public key does not match sync.pinned_public_key: \(e.message)",
                                hint: "update the pin after central's key rotation, or remove it")
        case 28:
            return DoctorResult("tls", .fail, "no TLS answer in time: \(e.message)", hint: "central or a proxy accepts TCP but does not answer TLS; check sync.url's port")
        default:
            return DoctorResult("tls", .fail, e.description, hint: "check sync.url speaks HTTPS and sync.ca_file is central's CA")
        }
    }

    /// A request with the device certificate accepted (GET /healthz, which requires mutual TLS).
    public static func mtlsCheck(_ probe: Probe) -> DoctorResult {
        if let r = probe.response {
            switch r.status {
            case 200..<300:
                return DoctorResult("mtls", .ok, String(format: "central accepted the device certificate (HTTP %d in %.0f ms)", r.status, probe.roundTrip * 1000))
            case 401, 403:
                return DoctorResult("mtls", .fail, "central refused this device (HTTP \(r.status))",
                                    hint: "the device may be revoked or unknown to central: re-provision it (kioskctl provision)")
            default:
                return DoctorResult("mtls", .warn, "TLS with the device certificate works, but /healthz answered HTTP \(r.status)",
                                    hint: "check sync.url points at kiosk-central")
            }
        }
        guard let e = probe.error else { return DoctorResult("mtls", .fail, "no answer") }
        if e.code == 58 {
            return DoctorResult("mtls", .fail, "the device certificate or key cannot be used: \(e.message)",
                                hint: "sync.cert_file and sync.key_file must be a matching PEM pair; re-provision if unsure")
        }
        if isPeerAlert(e) {
            return DoctorResult("mtls", .fail, "central refused the device certificate: \(e.message)",
                                hint: "the certificate is not signed by central's CA, expired, or revoked: re-provision (kioskctl provision)")
        }
        return DoctorResult("mtls", .fail, e.description, hint: "fix the TLS check first; then check the device certificate")
    }

    /// The clock against one Date header received at `receivedAt`; nil when there is no usable header.
    public static func clockCheck(dateHeader: String?, receivedAt: Date, roundTrip: TimeInterval) -> DoctorResult? {
        guard let dateHeader, let server = parseHTTPDate(dateHeader) else { return nil }
        return clockCheck(skew: clockSkew(localAt: receivedAt, serverDate: server, roundTrip: roundTrip))
    }

    /// The clock against central's Date header, from whichever probe answered.
    public static func clockCheck(probes: [Probe]) -> DoctorResult {
        for p in probes {
            if let r = clockCheck(dateHeader: p.response?.headers["date"], receivedAt: p.at, roundTrip: p.roundTrip) { return r }
        }
        return DoctorResult("clock", .warn, "not compared: no answer from central with a Date header",
                            hint: "fix the connectivity checks above; meanwhile check timedatectl shows 'System clock synchronized: yes'")
    }
}

/// A lock-protected value shared with a helper thread.
final class Box<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
}
