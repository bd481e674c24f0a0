import ArgumentParser
import Foundation

extension KioskCtl {
    /// `kioskctl status`: queue depth, sync state, offers.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the agent's queue and sync status.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let reply = try global.call(["cmd": "status"])
            try requireOK(reply)
            if global.json { return try global.printJSON(reply) }
            let q = reply["queue"] as? [String: Any] ?? [:]
            let s = reply["sync"] as? [String: Any] ?? [:]
            let o = reply["offers"] as? [String: Any] ?? [:]
            print("device        \(text(reply["device_id"]))  merchant \(text(reply["merchant_id"]))  agent \(text(reply["version"]))")
            print("offers        \(o["accepting"] as? Bool == true ? "accepting" : "SUSPENDED: \(text(o["reason"]))")")
            print("queue         pending \(text(q["pending"]))  in-flight \(text(q["in_flight"]))  synced \(text(q["synced"]))  rejected \(text(q["rejected"]))  quarantined \(text(q["quarantined"]))")
            if let age = q["oldest_pending_age_s"] as? Double { print("oldest        \(Int(age)) s pending") }
            print("central       \(text(s["central_url"]))")
            print("last success  \(text(s["last_success_at"]))")
            print("last error    \(text(s["last_error"]))  (consecutive failures \(text(s["consecutive_failures"])))")
            if let db = reply["database"] as? [String: Any], !(db["set_aside"] is NSNull), db["set_aside"] != nil {
                print("WARNING       corrupt database set aside at \(text(db["set_aside"]))")
            }
            if let t = reply["terminal"] as? [String: Any] { print("terminal      \(text(t["driver"]))") }
            if let cam = reply["camera"] as? [String: Any] {
                print("camera        \(text(cam["status"]))  (opened \(text(cam["opens"])) times, \(text(cam["failures"])) failures)")
            }
            if let sc = reply["scanner"] as? [String: Any] {
                print("scanner       \(text(sc["profile"]))  \(sc["connected"] as? Bool == true ? "connected" : "not connected"): \(text(sc["detail"]))  codes \(text(sc["codes_read"]))")
            }
            if let c = reply["checkouts"] as? [String: Any], let since = c["since_start"] as? [String: Any] {
                let parts = since.sorted { $0.key < $1.key }.map { "\($0.key) \(text($0.value))" }
                print("checkouts     since start: \(parts.isEmpty ? "none" : parts.joined(separator: "  "))")
            }
        }
    }
}
