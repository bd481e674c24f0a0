import ArgumentParser
import Foundation

extension KioskCtl {
    /// `kioskctl queue …`: the outbox's applications.
    struct Queue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, inspect and act on queued applications.",
            subcommands: [List.self, Show.self, Retry.self, PurgeSynced.self],
            defaultSubcommand: List.self
        )
    }
}

extension KioskCtl.Queue {
    /// `kioskctl queue list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List queued applications in delivery order.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only these states (pending, in_flight, synced, rejected); repeatable.")
        var state: [String] = []
        @Option(help: "At most this many rows.")
        var limit = 50

        func run() throws {
            var req: [String: Any] = ["cmd": "queue_list", "limit": limit]
            if !state.isEmpty { req["states"] = state }
            let reply = try global.call(req)
            try requireOK(reply)
            let items = reply["items"] as? [[String: Any]] ?? []
            if global.json { return try global.printJSON(items) }
            print("SEQ       ID                                    STATE       ATTEMPTS  CREATED                 LAST ERROR / REASON")
            for i in items {
                let err = text(i["reject_reason"]) != "-" ? text(i["reject_reason"]) : text(i["last_error"])
                print(pad(text(i["sequence"]), 9), pad(text(i["id"]), 37), pad(text(i["state"]), 11), pad(text(i["attempts"]), 9),
                      pad(text(i["created_at"]), 23), String(err.prefix(60)))
            }
            if items.isEmpty { print("(empty)") }
        }
    }

    /// `kioskctl queue show ID`.
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one application and its delivery state.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The application id.") var id: String

        func run() throws {
            let reply = try global.call(["cmd": "queue_show", "id": id])
            try requireOK(reply)
            try global.printJSON(reply["item"] ?? [:])
        }
    }

    /// `kioskctl queue retry ID`.
    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a rejected application again (operator action).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The application id.") var id: String

        func run() throws {
            let reply = try global.call(["cmd": "queue_retry", "id": id])
            try requireOK(reply)
            if global.json { return try global.printJSON(reply) }
            print("\(id) queued for delivery")
        }
    }

    /// `kioskctl queue purge-synced`.
    struct PurgeSynced: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "purge-synced", abstract: "Delete synced applications now.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only those synced more than this many seconds ago.") var olderThan: Double = 0

        func run() throws {
            let reply = try global.call(["cmd": "queue_purge_synced", "older_than_s": olderThan])
            try requireOK(reply)
            if global.json { return try global.printJSON(reply) }
            print("purged \(text(reply["purged"])) synced applications")
        }
    }
}
