import ArgumentParser
import Foundation
import KioskCore

extension KioskCtl {
    /// `kioskctl dev …`: development and demo helpers (need `control.allow_submit = true`).
    struct Dev: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Development helpers: sample applications, a synthetic shopper for the camera.",
            subcommands: [SubmitSample.self, SynthShopper.self, FeedShopper.self]
        )
    }
}

extension KioskCtl.Dev {
    /// `kioskctl dev submit-sample --count N`.
    struct SubmitSample: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "submit-sample", abstract: "Submit sample applications.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "How many.") var count = 1
        @Option(help: "Device id written into the samples.") var deviceID = "kiosk-dev-0001"

        func run() throws {
            var results: [[String: Any]] = []
            for n in 0..<count {
                let app = CreditApplication.sample(deviceID: deviceID, amountMinor: 10_000 + Int64(n) * 137)
                let obj = try JSONSerialization.jsonObject(with: CanonicalJSON.encode(app))
                let reply = try global.call(["cmd": "submit", "application": obj])
                try requireOK(reply)
                results.append(["id": app.id, "sequence": reply["sequence"] ?? NSNull()])
                if !global.json { print("queued \(app.id) as #\(text(reply["sequence"])) (\(app.payment.amountMinor) \(app.payment.currency) minor units)") }
            }
            if global.json { try global.printJSON(results) }
        }
    }
}
