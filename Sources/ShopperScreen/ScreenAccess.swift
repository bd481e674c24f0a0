/// Who may talk to the screen server: loopback clients, with a Host and Origin of the page itself.
///
/// The page is for the kiosk's own browser. A non-loopback client is refused (unless the server
/// is explicitly configured to allow them), as is a request whose `Host` is not one of the
/// server's own names (DNS rebinding) or whose `Origin` is another site (cross-site requests
/// from any other page the browser might show). Answers must carry an `Origin`.
public struct ScreenAccess: Sendable, Equatable {
    /// The port the server is bound to.
    public var port: Int
    /// Whether clients from other addresses are allowed (`screen.allow_non_loopback`).
    public var allowNonLoopback: Bool
    /// Extra host names (`host` or `host:port`) accepted in `Host`/`Origin` besides the loopback names.
    public var extraHosts: [String]

    /// Creates the policy.
    public init(port: Int, allowNonLoopback: Bool = false, extraHosts: [String] = []) {
        self.port = port
        self.allowNonLoopback = allowNonLoopback
        self.extraHosts = extraHosts
    }

    /// Whether `ip` (textual IPv4 or IPv6) is a loopback address.
    public static func isLoopback(_ ip: String) -> Bool {
        let a = ip.lowercased()
        return a.hasPrefix("127.") || a == "::1" || a.hasPrefix("::ffff:127.") || a == "0:0:0:0:0:0:0:1"
    }

    /// The `Host` values accepted.
    public var allowedHosts: Set<String> {
        var s: Set<String> = ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)"]
        for h in extraHosts { s.insert(h.contains(":") ? h.lowercased() : "\(h.lowercased()):\(port)") }
        return s
    }

    /// Why the request is refused, or nil when it is allowed.
    public func refusal(remoteIP: String?, host: String?, origin: String?, isStateChanging: Bool) -> String? {
        guard let remoteIP else { return "no peer address" }
        if !allowNonLoopback, !Self.isLoopback(remoteIP) { return "client \(remoteIP) is not on loopback" }
        guard let host, allowedHosts.contains(host.lowercased()) else { return "unexpected Host \(host ?? "(none)")" }
        if let origin {
            let o = origin.lowercased()
            guard o.hasPrefix("http://"), allowedHosts.contains(String(o.dropFirst("http://".count))) else {
                return "unexpected Origin \(origin)"
            }
        } else if isStateChanging {
            return "missing Origin"
        }
        return nil
    }
}
