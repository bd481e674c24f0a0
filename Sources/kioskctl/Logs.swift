import ArgumentParser
import Foundation

extension KioskCtl {
    /// `kioskctl logs`: the agent's journal (`journalctl -u kiosk-agent`), with follow, since and lines passed through.
    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show kiosk-agent's journal (journalctl -u kiosk-agent).",
            discussion: "Runs journalctl in place of kioskctl; reading another unit's journal needs group systemd-journal or adm, or root.")

        @Flag(name: [.short, .long], help: "Keep printing new entries.")
        var follow = false

        @Option(name: .long, help: "Entries since a time journalctl understands (\"1 hour ago\", \"today\", \"2026-12-01 08:00\").")
        var since: String?

        @Option(name: [.customShort("n"), .long], help: "The last N entries.")
        var lines: Int?

        @Option(name: .long, help: "The systemd unit.")
        var unit = "kiosk-agent"

        @Option(name: .long, help: "The journalctl binary (default: found on PATH).")
        var journalctl: String?

        /// journalctl's arguments for these options.
        var arguments: [String] {
            var args = ["-u", unit, "--no-pager"]
            if follow { args.append("--follow") }
            if let since { args += ["--since", since] }
            if let lines { args += ["--lines", String(lines)] }
            return args
        }

        func run() throws {
            guard let binary = journalctl ?? Self.find("journalctl") else {
                throw ValidationError("journalctl not found on PATH: this system does not run systemd's journal; the agent logs to stderr")
            }
            let argv = [binary] + arguments
            var cargs = argv.map { strdup($0) } + [nil]
            execv(binary, &cargs)
            throw ValidationError("cannot run \(binary): \(String(cString: strerror(errno)))")
        }

        /// The first executable `name` on PATH.
        static func find(_ name: String) -> String? {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            for dir in path.split(separator: ":") {
                let candidate = "\(dir)/\(name)"
                if access(candidate, X_OK) == 0 { return candidate }
            }
            return nil
        }
    }
}
