import ArgumentParser
import Foundation
import KioskAgent

extension KioskCtl {
    /// `kioskctl watch`: follow checkouts and terminal changes live.
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow checkouts and terminal events live (Ctrl-C to stop).",
            discussion: "Each event is one line; with --json, the agent's JSON object as is (one per line).")
        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "Stop after this many events (0: never).")
        var count = 0

        func run() throws {
            let path = try global.socketPath()
            var seen = 0
            do {
                try ControlClient.watch(socketPath: path) { line in
                    seen += 1
                    if global.json {
                        print(String(decoding: line, as: UTF8.self))
                    } else if let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any] {
                        print(Self.describe(obj))
                    }
                    fflush(nil)
                    return count == 0 || seen < count
                }
            } catch {
                throw ValidationError("cannot watch kiosk-agent at \(path): \(error). Is the service running? (systemctl status kiosk-agent)")
            }
        }

        /// One human line per event.
        static func describe(_ e: [String: Any]) -> String {
            let at = (text(e["at"]).split(separator: "T").last).map(String.init) ?? "-"
            switch e["event"] as? String {
            case "checkout":
                var s = "\(at)  checkout \(text(e["checkout_id"]))  \(pad(text(e["state"]), 16)) \(text(e["amount_minor"])) \(text(e["currency"]))  card \(text(e["masked_pan"]))"
                if let app = e["application_id"] as? String { s += "  application \(app)" }
                if let r = e["reason"] as? String { s += "  (\(r))" }
                return s
            case "terminal":
                return "\(at)  terminal \(text(e["state"]))  \(text(e["serial"]))  \(text(e["terminal"]))"
            default:
                return "\(at)  \(text(e["event"]))  \(e.filter { !["event", "at", "seq"].contains($0.key) }.map { "\($0.key)=\(text($0.value))" }.sorted().joined(separator: " "))"
            }
        }
    }

    /// `kioskctl checkouts`: the most recent checkouts and how each ended.
    struct Checkouts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List recent checkouts with their state and history.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "How many (newest first).")
        var limit = 20

        func run() throws {
            let reply = try global.call(["cmd": "checkouts", "limit": limit])
            try requireOK(reply)
            if global.json { return try global.printJSON(reply) }
            let items = reply["items"] as? [[String: Any]] ?? []
            print("\(pad("CHECKOUT", 38)) \(pad("STATE", 16)) \(pad("AMOUNT", 14)) APPLICATION / REASON")
            for c in items {
                let p = c["payment"] as? [String: Any] ?? [:]
                let history = c["history"] as? [[String: Any]] ?? []
                var detail = (c["application_id"] as? String) ?? (history.last?["reason"] as? String) ?? ""
                if let plan = c["plan"] as? [String: Any] {
                    // The plan chosen on the screen: instalments × amount (minor units), total, lender.
                    detail += "  plan \(text(plan["instalments"]))×\(text(plan["instalment_minor"])) total \(text(plan["total_minor"])) \(text(plan["currency"])) \(text(plan["lender"]))"
                }
                print("\(pad(text(c["id"]), 38)) \(pad(text(c["state"]), 16)) \(pad("\(text(p["amount_minor"])) \(text(p["currency"]))", 14)) \(detail)")
            }
            for bad in reply["corrupt"] as? [String] ?? [] { print("CORRUPT  \(bad)") }
        }
    }
}
