import ArgumentParser
import Foundation
import KioskCentral

/// `kiosk-central token …`: one-time enrolment tokens.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage one-time enrolment tokens.", subcommands: [Create.self])
}

/// `kiosk-central device …`: the device registry.
struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "List and revoke enrolled devices.", subcommands: [ListDevices.self, Revoke.self])
}

/// Parses `30m`, `24h`, `7d` or a number of seconds.
func parseTTL(_ text: String) -> Duration? {
    let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
    if let unit = text.last, let factor = units[unit], let value = Int(text.dropLast()), value > 0 {
        return .seconds(value * factor)
    }
    if let value = Int(text), value > 0 { return .seconds(value) }
    return nil
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension TokenCommand {
    /// `kiosk-central token create`: prints a new token once; only its hash is stored.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a one-time enrolment token for a merchant (and site).",
            discussion: "The token is printed once; the database keeps only its SHA-256. It enrols one device.")

        @Option(help: "SQLite database path (created if missing).")
        var db: String

        @Option(help: "The merchant the token enrols a device for.")
        var merchantID: String

        @Option(help: "The site (store, mall) the device is for.")
        var site: String?

        @Option(help: "Time to live: e.g. 30m, 24h, 7d, or seconds.")
        var ttl = "24h"

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard parseTTL(self.ttl) != nil else { throw ValidationError("--ttl must look like 30m, 24h, 7d or 3600") }
            guard CentralStore.isValidID(self.merchantID) else {
                throw ValidationError("--merchant-id must be 1-64 characters of [A-Za-z0-9._-]")
            }
        }

        func run() async throws {
            let store = try CentralStore(path: self.db)
            let issued = try await store.createToken(merchantID: self.merchantID, site: self.site, ttl: parseTTL(self.ttl)!)
            if self.json {
                try printJSON(issued)
            } else {
                print(issued.token)
                FileHandle.standardError.write(
                    Data("token for merchant \(issued.merchantID), expires \(issued.expiresAt); single use\n".utf8))
            }
        }
    }
}

extension DeviceCommand {
    /// `kiosk-central device list`: the registry.
    struct ListDevices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List enrolled devices.")

        @Option(help: "SQLite database path.")
        var db: String

        @Flag(help: "Print JSON ({\"devices\":[...]}).")
        var json = false

        func run() async throws {
            let store = try CentralStore(path: self.db, createIfMissing: false)
            let devices = try await store.devices()
            if self.json {
                try printJSON(["devices": devices])
            } else {
                print("device_id\tmerchant_id\tsite\tstatus\tnot_after\tenrolled_at")
                for d in devices {
                    print("\(d.deviceID)\t\(d.merchantID)\t\(d.site ?? "-")\t\(d.status)\t\(d.notAfter)\t\(d.enrolledAt)")
                }
            }
        }
    }

    /// `kiosk-central device revoke ID`: refuse the device's syncs and renewals from now on.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device: its syncs are refused (403 device_revoked), also with a rotated certificate.")

        @Argument(help: "The device id.")
        var deviceID: String

        @Option(help: "SQLite database path.")
        var db: String

        func run() async throws {
            let store = try CentralStore(path: self.db, createIfMissing: false)
            guard try await store.revoke(deviceID: self.deviceID) else {
                throw ValidationError("no device \(self.deviceID) in the registry")
            }
            print("revoked \(self.deviceID)")
        }
    }
}
