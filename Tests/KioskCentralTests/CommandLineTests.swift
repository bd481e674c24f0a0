import Foundation
import KioskCore
import KioskCentral
import Testing

/// The `kiosk-central` executable that `swift test` builds next to the test bundle.
func centralExecutable() -> String? {
    var directories: [URL] = [Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL]
    if let executable = Bundle.main.executableURL {
        directories.append(executable.deletingLastPathComponent())
        directories.append(executable.deletingLastPathComponent().deletingLastPathComponent())
    }
    for directory in directories {
        let candidate = directory.appendingPathComponent("kiosk-central").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

@Suite("kiosk-central command line")
struct CommandLineTests {
    @Test("serve writes its port, serves, stops on SIGTERM; list and stats read the database")
    func serveListStats() async throws {
        let executable = try #require(centralExecutable(), "kiosk-central not built next to the tests")
        let pki = try await TestPKI.shared()
        let directory = try makeTemporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("central.sqlite").path
        let portFile = directory.appendingPathComponent("port").path

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "serve", "--listen", "127.0.0.1:0", "--cert", pki.serverCertificatePath, "--key", pki.serverKeyPath,
            "--ca", pki.caPath, "--db", database, "--port-file", portFile, "--log-level", "warning",
        ]
        process.standardInput = FileHandle.nullDevice
        let (exits, exit) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { finished in
            exit.yield(finished.terminationStatus)
            exit.finish()
        }
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        var port: Int?
        for _ in 0..<400 where port == nil {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8) {
                port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if port == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let boundPort = try #require(port, "no port file within 20 s")
        #expect(boundPort > 0)

        let curl = Curl(pki: pki, port: boundPort)
        let post = try await curl.perform(.post("/v1/applications/batch", try batchBody([item("cli-1"), item("cli-2")])))
        #expect(post.status == 200, "\(post.body) \(post.stderr)")

        process.terminate()  // SIGTERM
        var status: Int32?
        for await code in exits { status = code }
        #expect(status == 0)
        #expect(process.terminationReason == .exit)

        let stats = try await runProcess(executable, ["stats", "--db", database, "--json"])
        #expect(stats.status == 0, "\(stats.stderr)")
        let decoded = try JSONDecoder().decode(CentralStats.self, from: Data(stats.stdout.utf8))
        #expect(decoded == CentralStats(stored: 2, accepted: 2, requests: 1))

        let list = try await runProcess(executable, ["list", "--db", database, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let page = try JSONDecoder().decode(ApplicationPage.self, from: Data(list.stdout.utf8))
        #expect(page.applications.map(\.id) == ["cli-1", "cli-2"])

        let text = try await runProcess(executable, ["list", "--db", database])
        #expect(text.stdout.contains("cli-2\t\(TestPKI.deviceA)\t1\t"))

        let missing = try await runProcess(
            executable, ["stats", "--db", directory.appendingPathComponent("nope.sqlite").path])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no database"))

        let spec = try await runProcess(executable, ["openapi"])
        #expect(spec.stdout == CentralContract.openAPIDocument())
    }

    @Test("serve refuses bad options before binding")
    func badOptions() async throws {
        let executable = try #require(centralExecutable(), "kiosk-central not built next to the tests")
        let pki = try await TestPKI.shared()
        let common = [
            "serve", "--cert", pki.serverCertificatePath, "--key", pki.serverKeyPath, "--ca", pki.caPath,
            "--db", "/nonexistent/never.sqlite",
        ]
        let cases: [([String], String)] = [
            (["--faults", "teapot"], "unknown fault 'teapot'"),
            (["--fault-rate", "2"], "--fault-rate must be within 0...1"),
            (["--listen", "nowhere"], "invalid listen address 'nowhere'"),
        ]
        for (extra, message) in cases {
            let result = try await runProcess(executable, common + extra)
            #expect(result.status != 0, "\(extra) was accepted")
            #expect(result.stderr.contains(message), "\(extra): \(result.stderr)")
        }
    }
}
