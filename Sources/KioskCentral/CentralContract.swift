import Foundation
import KioskCore

/// Access to the wire contract (`openapi.yaml`, OpenAPI 3.1) that ships with ``CentralServer``.
public enum CentralContract {
    /// The file name of the contract inside the `KioskCentral` resource bundle.
    public static let fileName = "openapi.yaml"

    /// The OpenAPI document's text, or `nil` if the resource bundle cannot be found.
    ///
    /// Looks for SwiftPM's resource bundle next to the running executable (and next to the test
    /// bundle), without SwiftPM's generated `Bundle.module`, which traps when the bundle is missing.
    public static func openAPIDocument() -> String? {
        for url in self.candidateURLs() {
            if let text = try? String(contentsOf: url, encoding: .utf8) {
                return text
            }
        }
        return nil
    }

    private static func candidateURLs() -> [URL] {
        let bundleNames = ["kiosk-agent_KioskCentral.resources", "kiosk-agent_KioskCentral.bundle"]
        var directories: [URL] = [Bundle.main.bundleURL]
        if let executable = Bundle.main.executableURL {
            directories.append(executable.deletingLastPathComponent())
        }
        if let argument = CommandLine.arguments.first {
            directories.append(URL(fileURLWithPath: argument).deletingLastPathComponent())
        }
        var urls: [URL] = []
        for directory in directories {
            for name in bundleNames {
                let bundle = directory.appendingPathComponent(name)
                urls.append(bundle.appendingPathComponent(fileName))
                urls.append(bundle.appendingPathComponent("Contents/Resources").appendingPathComponent(fileName))
            }
            // A test bundle (`*.xctest`) lives beside the resource bundles.
            urls.append(
                directory.deletingLastPathComponent().appendingPathComponent(bundleNames[0])
                    .appendingPathComponent(fileName))
        }
        // Last resort while developing: the source tree this file was compiled from.
        urls.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(fileName))
        return urls
    }
}
