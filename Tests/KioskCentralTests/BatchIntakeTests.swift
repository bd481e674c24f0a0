import Foundation
import KioskCore
import KioskCentral
import Testing

@Suite("Batch intake over mutual TLS")
struct BatchIntakeTests {
    @Test("each item is accepted, duplicate or rejected with the documented reason")
    func itemOutcomes() async throws {
        try await withServer { server, curl in
            let notAnObject = "[1,2,3]"
            let wrongID = payload(id: "someone-else")
            let first = try await curl.perform(
                .post(
                    "/v1/applications/batch",
                    try batchBody([
                        item("app-1", sequence: 1),
                        item("app-2", sequence: 2, sha: String(repeating: "0", count: 64)),
                        item("app-3", sequence: 3, payload: notAnObject),
                        item("app-4", sequence: 4, payload: wrongID),
                        item("app-5", sequence: 5),
                        item("bad id!", sequence: 6, payload: payload(id: "bad id!")),
                    ])))
            #expect(first.status == 200, "\(first.body)")
            #expect(first.headers["content-type"] == "application/json")
            #expect(first.headers["content-length"] == String(first.body.utf8.count))
            #expect(
                try first.decode(BatchResponse.self).results == [
                    ItemResult(id: "app-1", status: .accepted),
                    ItemResult(id: "app-2", status: .rejected, reason: .checksumMismatch),
                    ItemResult(id: "app-3", status: .rejected, reason: .invalidPayload),
                    ItemResult(id: "app-4", status: .rejected, reason: .invalidPayload),
                    ItemResult(id: "app-5", status: .accepted),
                    ItemResult(id: "bad id!", status: .rejected, reason: .invalidPayload),
                ])
            // `reason` appears only on rejected items.
            #expect(!first.body.contains(#""reason":null"#))

            let changed = payload(id: "app-5", amount: "1.00")
            let second = try await curl.perform(
                .post(
                    "/v1/applications/batch",
                    try batchBody([
                        item("app-1", sequence: 1),
                        item("app-5", sequence: 5, payload: changed),
                        item("app-6", sequence: 6),
                        item("app-6", sequence: 6),
                        item("app-6", sequence: 6, payload: payload(id: "app-6", amount: "2.00")),
                    ])))
            #expect(second.status == 200, "\(second.body)")
            #expect(
                try second.decode(BatchResponse.self).results == [
                    ItemResult(id: "app-1", status: .duplicate),
                    ItemResult(id: "app-5", status: .rejected, reason: .conflict),
                    ItemResult(id: "app-6", status: .accepted),
                    ItemResult(id: "app-6", status: .duplicate),
                    ItemResult(id: "app-6", status: .rejected, reason: .conflict),
                ])

            // The store holds exactly the accepted items, first versions, exact bytes, in order.
            #expect(try await server.store.count() == 3)
            let stored = try await server.store.all()
            #expect(stored.map(\.id) == ["app-1", "app-5", "app-6"])
            #expect(stored.map(\.payload) == [payload(id: "app-1"), payload(id: "app-5"), payload(id: "app-6")])
            #expect(stored.allSatisfy { $0.deviceID == TestPKI.deviceA })
            #expect(stored.map(\.sequence) == [1, 5, 6])
            #expect(stored.allSatisfy { $0.payloadSHA256 == CentralStore.sha256Hex($0.payload) })

            let expectedStats = CentralStats(
                stored: 3, accepted: 3, duplicate: 2, rejected: 6, requests: 2, faultsInjected: 0)
            #expect(try await server.store.stats() == expectedStats)
            let overHTTP = try await curl.perform(.get("/v1/stats"))
            #expect(overHTTP.status == 200)
            #expect(try overHTTP.decode(CentralStats.self) == expectedStats)
        }
    }

    @Test("GET /v1/applications pages in arrival order with a cursor")
    func listingPages() async throws {
        try await withServer { _, curl in
            let items = (1...5).map { item("list-\($0)", sequence: Int64($0)) }
            let post = try await curl.perform(.post("/v1/applications/batch", try batchBody(items)))
            #expect(post.status == 200)

            let page1 = try await curl.perform(.get("/v1/applications?limit=2"))
            #expect(page1.status == 200, "\(page1.body)")
            let first = try page1.decode(ApplicationPage.self)
            #expect(first.applications.map(\.id) == ["list-1", "list-2"])
            #expect(first.applications.first?.payload == payload(id: "list-1"))
            #expect(first.applications.first?.deviceID == TestPKI.deviceA)
            let cursor = try #require(first.nextCursor)

            let page2 = try await curl.perform(.get("/v1/applications?after=\(cursor)&limit=1000"))
            let second = try page2.decode(ApplicationPage.self)
            #expect(second.applications.map(\.id) == ["list-3", "list-4", "list-5"])
            #expect(second.nextCursor == nil)
            #expect(page2.body.contains(#""next_cursor":null"#))
            #expect(second.applications.allSatisfy { CentralStats.isTimestamp($0.receivedAt) })
        }
    }

    @Test("several requests share one keep-alive connection")
    func keepAlive() async throws {
        try await withServer { server, curl in
            let body = try batchBody([item("ka-1"), item("ka-2")])
            let results = try await curl.perform([
                .get("/healthz"),
                .post("/v1/applications/batch", body),
                .post("/v1/applications/batch", body),
                .get("/v1/stats"),
                .get("/v1/applications"),
            ])
            #expect(results.map(\.status) == [200, 200, 200, 200, 200], "\(results.map(\.stderr))")
            #expect(results.map(\.exitCode) == [0, 0, 0, 0, 0])
            #expect(results.map(\.connects).reduce(0, +) == 1, "connections per transfer: \(results.map(\.connects))")
            #expect(results[0].body == "ok")
            #expect(try results[2].decode(BatchResponse.self).results.map(\.status) == [.duplicate, .duplicate])
            #expect(try await server.store.count() == 2)
        }
    }

    @Test("device_id must be the client certificate's CN")
    func deviceMustMatchCertificate() async throws {
        try await withServer { server, curl in
            let body = try batchBody([item("cn-1")], device: TestPKI.deviceB)
            let mismatch = try await curl.perform(.post("/v1/applications/batch", body))
            #expect(mismatch.status == 403, "\(mismatch.body)")
            #expect(try mismatch.decode(ErrorBody.self).error.contains(TestPKI.deviceA))
            #expect(try await server.store.count() == 0)

            let match = try await curl.perform(
                .post("/v1/applications/batch", body), identity: .device(TestPKI.deviceB))
            #expect(match.status == 200, "\(match.body)")
            #expect(try await server.store.application(id: "cn-1")?.deviceID == TestPKI.deviceB)
        }
    }

    @Test("a client without a certificate fails the TLS handshake")
    func noClientCertificate() async throws {
        try await withServer { server, curl in
            let health = try await curl.perform(.get("/healthz"), identity: .none)
            #expect(health.status == 0)
            #expect(health.exitCode != 0)
            let post = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("nocert-1")])), identity: .none)
            #expect(post.status == 0)
            #expect(post.exitCode != 0)
            #expect(try await server.store.count() == 0)
            // The server is still fine for a proper client afterwards.
            #expect(try await curl.perform(.get("/healthz")).status == 200)
        }
    }

    @Test("a certificate from another CA is refused, even with a valid device CN")
    func rogueCertificate() async throws {
        try await withServer { server, curl in
            let post = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("rogue-1")])), identity: .rogue)
            #expect(post.status == 0)
            #expect(post.exitCode != 0)
            #expect(post.stderr.lowercased().contains("alert") || post.stderr.contains("SSL"), "\(post.stderr)")
            #expect(try await server.store.count() == 0)
            #expect(try await server.store.stats().requests == 0)
        }
    }

    @Test("more than 1,000 items, or more than 8 MiB, is 413")
    func tooLarge() async throws {
        try await withServer { server, curl in
            let many = (0...1_000).map { item("many-\($0)", sequence: Int64($0)) }
            let tooMany = try await curl.perform(.post("/v1/applications/batch", try batchBody(many)))
            #expect(tooMany.status == 413, "\(tooMany.body)")
            #expect(try tooMany.decode(ErrorBody.self).error.contains("1001"))

            let exactly = Array(many.prefix(1_000))
            let ok = try await curl.perform(.post("/v1/applications/batch", try batchBody(exactly)))
            #expect(ok.status == 200)
            #expect(try ok.decode(BatchResponse.self).results.count == 1_000)

            // A body over 8 MiB: once with `Expect: 100-continue` (curl's default for big bodies:
            // refused before the body is sent), once without (read, discarded, refused).
            let directory = try makeTemporaryDirectory("big")
            defer { try? FileManager.default.removeItem(at: directory) }
            let bigPayload = payload(id: "big-1", amount: String(repeating: "9", count: 9 * 1024 * 1024))
            let bigFile = directory.appendingPathComponent("big.json")
            try Data(try batchBody([item("big-1", payload: bigPayload)]).utf8).write(to: bigFile)
            var withExpect = CurlRequest(method: "POST", path: "/v1/applications/batch", bodyFile: bigFile.path)
            withExpect.extraHeaders = ["Expect: 100-continue"]
            var withoutExpect = withExpect
            withoutExpect.extraHeaders = ["Expect:"]
            let refusedEarly = try await curl.perform(withExpect)
            #expect(refusedEarly.status == 413, "\(refusedEarly.stderr)")
            #expect(refusedEarly.headers["connection"] == "close")
            let refusedLate = try await curl.perform(withoutExpect)
            #expect(refusedLate.status == 413, "\(refusedLate.stderr)")
            #expect(try await server.store.application(id: "big-1") == nil)
            #expect(try await server.store.count() == 1_000)
        }
    }

    @Test("chunked uploads and Expect: 100-continue are handled without delay")
    func uploadFraming() async throws {
        try await withServer { server, curl in
            let directory = try makeTemporaryDirectory("framing")
            defer { try? FileManager.default.removeItem(at: directory) }
            // ~2 MiB: curl would wait up to 1 s for "100 Continue" if the server never sent it.
            let items = (0..<200).map { index in
                item(
                    "frame-\(index)", sequence: Int64(index),
                    payload: payload(id: "frame-\(index)", amount: String(repeating: "7", count: 10_000)))
            }
            let file = directory.appendingPathComponent("batch.json")
            try Data(try batchBody(items).utf8).write(to: file)
            var expecting = CurlRequest(method: "POST", path: "/v1/applications/batch", bodyFile: file.path)
            expecting.extraHeaders = ["Expect: 100-continue"]
            // curl waits this long for "100 Continue" before sending anyway: a server that never
            // answers it costs 30 s, one that does costs nothing (no tight timing on a loaded CI).
            expecting.extraArguments = ["--expect100-timeout", "30"]
            let continued = try await curl.perform(expecting)
            #expect(continued.status == 200, "\(continued.stderr)")
            #expect(continued.seconds < 25, "took \(continued.seconds) s: no 100 Continue?")
            #expect(try continued.decode(BatchResponse.self).results.count == 200)

            var chunked = CurlRequest(
                method: "POST", path: "/v1/applications/batch", body: try batchBody([item("chunked-1")]))
            chunked.extraHeaders = ["Transfer-Encoding: chunked"]
            let result = try await curl.perform(chunked)
            #expect(result.status == 200, "\(result.body)")
            #expect(try result.decode(BatchResponse.self).results == [ItemResult(id: "chunked-1", status: .accepted)])

            // Over 8 MiB without a Content-Length: found out while reading, still 413.
            let big = directory.appendingPathComponent("big.json")
            let bigPayload = payload(id: "big-2", amount: String(repeating: "9", count: 9 * 1024 * 1024))
            try Data(try batchBody([item("big-2", payload: bigPayload)]).utf8).write(to: big)
            var bigChunked = CurlRequest(method: "POST", path: "/v1/applications/batch", bodyFile: big.path)
            bigChunked.extraHeaders = ["Transfer-Encoding: chunked", "Expect:"]
            let refused = try await curl.perform(bigChunked)
            #expect(refused.status == 413, "\(refused.stderr)")
            #expect(try await server.store.count() == 201)
        }
    }

    @Test("unparseable or incomplete requests are 400; wrong media type 415; unknown routes 404/405")
    func badRequests() async throws {
        try await withServer { server, curl in
            let good = try batchBody([item("x-1")])
            let cases: [(String, CurlRequest, Int)] = [
                ("garbage", .post("/v1/applications/batch", "this is not json"), 400),
                ("empty", .post("/v1/applications/batch", ""), 400),
                ("array", .post("/v1/applications/batch", "[]"), 400),
                (
                    "missing items",
                    .post("/v1/applications/batch", #"{"device_id":"kiosk-0001","sent_at":"2026-11-23T10:00:00Z"}"#),
                    400
                ),
                (
                    "missing payload",
                    .post(
                        "/v1/applications/batch",
                        #"{"device_id":"kiosk-0001","sent_at":"2026-11-23T10:00:00Z","items":[{"id":"a","sequence":1,"payload_sha256":"00"}]}"#
                    ), 400
                ),
                (
                    "sequence as string",
                    .post(
                        "/v1/applications/batch",
                        #"{"device_id":"kiosk-0001","sent_at":"2026-11-23T10:00:00Z","items":[{"id":"a","sequence":"1","payload_sha256":"00","payload":"{}"}]}"#
                    ), 400
                ),
                ("negative sequence", .post("/v1/applications/batch", try batchBody([item("x-2", sequence: -1)])), 400),
                ("bad sent_at", .post("/v1/applications/batch", try batchBody([item("x-3")], sentAt: "yesterday")), 400),
                ("bad device_id", .post("/v1/applications/batch", try batchBody([item("x-4")], device: "")), 400),
                (
                    "form content type",
                    CurlRequest(
                        method: "POST", path: "/v1/applications/batch", body: good,
                        contentType: "application/x-www-form-urlencoded"), 415
                ),
                ("unknown path", .get("/v1/nothing"), 404),
                ("GET on batch", .get("/v1/applications/batch"), 405),
                ("POST on stats", .post("/v1/stats", "{}"), 405),
                ("limit too big", .get("/v1/applications?limit=5000"), 400),
                ("negative after", .get("/v1/applications?after=-1"), 400),
            ]
            let results = try await curl.perform(cases.map(\.1))
            for (index, (name, _, expected)) in cases.enumerated() {
                let result = results[index]
                #expect(result.status == expected, "\(name): \(result.status) \(result.body)")
                #expect(result.headers["content-type"] == "application/json", "\(name)")
                let error = try? result.decode(ErrorBody.self)
                #expect(error?.error.isEmpty == false, "\(name): \(result.body)")
            }
            #expect(results[11].headers["allow"] == "POST")
            #expect(try await server.store.count() == 0)
            // All those requests went over one connection: errors keep the connection alive.
            #expect(results.map(\.connects).reduce(0, +) == 1)

            // An offset sent_at and the fractional form are valid RFC 3339.
            let offset = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("x-5")], sentAt: "2026-11-23T11:00:00.250+01:00")))
            #expect(offset.status == 200, "\(offset.body)")
        }
    }

    @Test("committed batches survive a server stop and are found by a new store")
    func durability() async throws {
        let directory = try makeTemporaryDirectory("durable")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("central.sqlite").path
        let items = (1...20).map { item("durable-\($0)", sequence: Int64($0)) }

        try await withServer(databasePath: path) { server, curl in
            let result = try await curl.perform(.post("/v1/applications/batch", try batchBody(items)))
            #expect(result.status == 200)
            #expect(try await server.store.journalMode() == "wal")
            await server.stop()
            try server.store.close()
        }

        let reopened = try CentralStore(path: path, createIfMissing: false)
        #expect(try await reopened.count() == 20)
        #expect(try await reopened.all().map(\.id) == items.map(\.id))
        #expect(try await reopened.stats().accepted == 20)
        try reopened.close()

        // A new server on the same database recognises them as duplicates.
        try await withServer(databasePath: path) { server, curl in
            let again = try await curl.perform(.post("/v1/applications/batch", try batchBody(items)))
            #expect(try again.decode(BatchResponse.self).results.allSatisfy { $0.status == .duplicate })
            #expect(try await server.store.count() == 20)
        }
    }

    @Test("a missing database is reported, not created, when asked")
    func missingDatabase() async throws {
        let directory = try makeTemporaryDirectory("missing")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("nope.sqlite").path
        #expect(throws: CentralStoreError.databaseMissing(path: path)) {
            _ = try CentralStore(path: path, createIfMissing: false)
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("stop() lets an in-flight request finish, answered with Connection: close")
    func stopDuringRequest() async throws {
        // A slow fault keeps the request in flight while stop() runs.
        let faults = FaultConfiguration(rate: 1, kinds: [.slow], seed: 3, slowDelay: .seconds(4))
        try await withServer(faults: faults) { server, curl in
            let body = try batchBody([item("inflight-1")])
            async let inFlight = curl.perform(.post("/v1/applications/batch", body))
            // Not a fixed sleep: curl (a process) may take a while to start on a loaded runner.
            // Wait (bounded) until the server is answering the request, then stop.
            for _ in 0..<300 where server.requestsInFlight == 0 {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(server.requestsInFlight == 1)
            await server.stop()
            let result = try await inFlight
            #expect(result.status == 200, "\(result.stderr)")
            #expect(result.headers["connection"] == "close")
            #expect(try await server.store.application(id: "inflight-1") != nil)
        }
    }

    @Test("stop() is graceful and idempotent; start() twice is refused")
    func lifecycle() async throws {
        try await withServer { server, curl in
            #expect(server.port != nil)
            await #expect(throws: CentralServerError.alreadyStarted) {
                try await server.start()
            }
            #expect(try await curl.perform(.get("/healthz")).status == 200)
            await server.stop()
            await server.stop()
            #expect(server.port == nil)
            let after = try await curl.perform(.get("/healthz"))
            #expect(after.status == 0)
        }
    }
}

extension CentralStats {
    /// Whether `text` is an RFC 3339 UTC timestamp as central writes it.
    static func isTimestamp(_ text: String) -> Bool {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) != nil && text.hasSuffix("Z")
    }
}
