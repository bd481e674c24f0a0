import ArgumentParser
import Foundation

extension KioskCtl {
    /// `kioskctl metrics`: the agent's Prometheus metrics, as node_exporter's textfile collector reads them.
    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the agent's metrics in Prometheus text format (via the control socket).")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let reply = try global.call(["cmd": "metrics"])
            try requireOK(reply)
            guard let text = reply["text"] as? String else { throw AgentError(message: "kiosk-agent: no metrics in the reply") }
            if global.json { return try global.printJSON(["text": text]) }
            print(text, terminator: "")
        }
    }
}
