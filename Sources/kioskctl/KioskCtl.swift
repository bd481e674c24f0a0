import ArgumentParser
import Foundation
import KioskAgent
import KioskCore

/// kioskctl: the field technician's command line for kiosk-agent.
@main
struct KioskCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kioskctl",
        abstract: "Inspect and operate the kiosk agent.",
        version: kioskAgentVersion,
        subcommands: [Status.self, Provision.self, Queue.self, Watch.self, Checkouts.self, Devices.self, Terminal.self, Scanner.self, CameraCommand.self, LivenessCmd.self, Dev.self,
                      DoctorCommand.self,
                      Logs.self,
                      Metrics.self]
    )
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The agent's config file (to find the control socket).")
    var config: String?

    @Option(name: .long, help: "The control socket (overrides the config).")
    var socket: String?

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    /// The control socket path from the flags, the config, or the default.
    func socketPath() throws -> String {
        if let socket { return socket }
        let path = config ?? (FileManager.default.fileExists(atPath: "/etc/kiosk-agent/agent.toml") ? "/etc/kiosk-agent/agent.toml" : nil)
        return try AgentConfig.load(path: path).controlSocket
    }

    /// Sends a request to the agent and returns the decoded reply; fails with a clear message.
    func call(_ request: [String: Any]) throws -> [String: Any] {
        let path = try socketPath()
        let body = try JSONSerialization.data(withJSONObject: request)
        let reply: Data
        do {
            reply = try ControlClient.request(socketPath: path, body)
        } catch {
            throw ValidationError("cannot reach kiosk-agent at \(path): \(error). Is the service running? (systemctl status kiosk-agent)")
        }
        guard let obj = try JSONSerialization.jsonObject(with: reply) as? [String: Any] else {
            throw ValidationError("the agent's reply is not a JSON object")
        }
        return obj
    }

    /// Prints a reply as JSON.
    func printJSON(_ obj: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// A reply with `ok: false` becomes a non-zero exit with the agent's message.
struct AgentError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

func requireOK(_ reply: [String: Any]) throws {
    if reply["ok"] as? Bool != true {
        throw AgentError(message: "kiosk-agent: " + ((reply["error"] as? String) ?? "request failed"))
    }
}

func text(_ v: Any?) -> String {
    switch v {
    case nil, is NSNull: return "-"
    case let s as String: return s
    case let n as NSNumber: return n.stringValue
    default: return "\(v!)"
    }
}

/// Left-aligns text in a column of the given width.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
