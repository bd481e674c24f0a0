import Foundation
import Testing
@testable import KioskAgent

@Suite struct PrometheusTextTests {
    @Test func helpAndTypeBeforeSamples() {
        let text = PrometheusText.render([
            .single("kiosk_agent_outbox_depth", "Applications waiting.", .gauge, 3),
            .labelled("kiosk_agent_sync_requests_total", "Batch requests.", .counter, label: "result", ["success": 7, "failure": 2]),
        ])
        #expect(text == """
            # HELP kiosk_agent_outbox_depth Applications waiting.
            # TYPE kiosk_agent_outbox_depth gauge
            kiosk_agent_outbox_depth 3
            # HELP kiosk_agent_sync_requests_total Batch requests.
            # TYPE kiosk_agent_sync_requests_total counter
            kiosk_agent_sync_requests_total{result="failure"} 2
            kiosk_agent_sync_requests_total{result="success"} 7

            """)
    }

    @Test func escapesLabelValuesAndHelp() {
        let f = MetricFamily(name: "m", help: "a \\ b\nc", type: .gauge,
                             samples: [MetricSample("m", [("path", "C:\\dir \"x\"\nnext"), ("k", "v")], 1.5)])
        let text = PrometheusText.render([f])
        #expect(text.contains("# HELP m a \\\\ b\\nc\n"))
        #expect(text.contains("m{path=\"C:\\\\dir \\\"x\\\"\\nnext\",k=\"v\"} 1.5\n"))
    }

    @Test func values() {
        #expect(PrometheusText.format(42) == "42")
        #expect(PrometheusText.format(0.25) == "0.25")
        #expect(PrometheusText.format(.infinity) == "+Inf")
        #expect(PrometheusText.format(-.infinity) == "-Inf")
        #expect(PrometheusText.format(.nan) == "NaN")
    }

    @Test func histogramBucketsAreCumulative() {
        let h = LabelledHistogram(name: "d_seconds", help: "D.", labelNames: ["decision"], buckets: [1, 5, 0.5])
        for v in [0.25, 0.75, 0.875, 3, 10] { h.observe(["pass"], v) }
        h.observe(["fail"], 0.5)
        let text = PrometheusText.render([h.family])
        #expect(text == """
            # HELP d_seconds D.
            # TYPE d_seconds histogram
            d_seconds_bucket{decision="fail",le="0.5"} 1
            d_seconds_bucket{decision="fail",le="1"} 1
            d_seconds_bucket{decision="fail",le="5"} 1
            d_seconds_bucket{decision="fail",le="+Inf"} 1
            d_seconds_sum{decision="fail"} 0.5
            d_seconds_count{decision="fail"} 1
            d_seconds_bucket{decision="pass",le="0.5"} 1
            d_seconds_bucket{decision="pass",le="1"} 3
            d_seconds_bucket{decision="pass",le="5"} 4
            d_seconds_bucket{decision="pass",le="+Inf"} 5
            d_seconds_sum{decision="pass"} 14.875
            d_seconds_count{decision="pass"} 5

            """)
    }

    @Test func countersNeverGoDown() {
        let c = LabelledCounter(name: "x_total", help: "X.", labelNames: ["outcome"])
        c.increment(["enqueued"])
        c.increment(["enqueued"], by: 2)
        c.increment(["enqueued"], by: -5)
        c.increment(["a", "b"])  // wrong label count: ignored
        #expect(c.value(["enqueued"]) == 3)
        #expect(c.family.samples == [MetricSample("x_total", [("outcome", "enqueued")], 3)])
    }
}

@Suite struct MetricsTextfileTests {
    func dir() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiosk-prom-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func writesAtomicallyAndReplaces() throws {
        let d = try dir()
        let path = d.appendingPathComponent("kiosk_agent.prom").path
        try MetricsTextfile.write("a 1\n", to: path)
        try MetricsTextfile.write("a 2\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "a 2\n")
        // Only the target remains: the temporary file was renamed, not left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.path) == ["kiosk_agent.prom"])
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o644)
    }

    @Test func aReaderNeverSeesAPartialFile() async throws {
        let d = try dir()
        let path = d.appendingPathComponent("kiosk_agent.prom").path
        let big = String(repeating: "kiosk_agent_x{a=\"b\"} 1\n", count: 20_000)
        try MetricsTextfile.write(big, to: path)
        let writer = Task.detached {
            for _ in 0..<30 { try MetricsTextfile.write(big, to: path) }
        }
        for _ in 0..<200 {
            let s = try String(contentsOfFile: path, encoding: .utf8)
            #expect(s.count == big.count)
        }
        try await writer.value
    }

    @Test func missingDirectoryIsAClearError() {
        #expect(throws: MetricsWriteError.self) { try MetricsTextfile.write("x 1\n", to: "/nonexistent-dir/kiosk_agent.prom") }
    }
}

@Suite struct MetricsListenTests {
    @Test func listenMustBeLoopback() throws {
        #expect(throws: ConfigError.self) { try AgentConfig.load(path: nil, environment: ["KIOSK_AGENT_METRICS_LISTEN": "0.0.0.0:9478"]) }
        #expect(throws: ConfigError.self) { try AgentConfig.load(path: nil, environment: ["KIOSK_AGENT_METRICS_LISTEN": "9478"]) }
        let c = try AgentConfig.load(path: nil, environment: ["KIOSK_AGENT_METRICS_LISTEN": "127.0.0.1:9478"])
        #expect(c.metricsListen == "127.0.0.1:9478")
        #expect(try AgentConfig.load(path: nil, environment: [:]).metricsListen == nil)
    }

    @Test func answersGetMetricsOnly() {
        let ok = MetricsHTTPService.respond(to: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") { "a 1\n" }
        #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(ok.hasSuffix("Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"))
        #expect(MetricsHTTPService.respond(to: "GET / HTTP/1.1\r\n\r\n") { "" }.hasPrefix("HTTP/1.1 404"))
        #expect(MetricsHTTPService.respond(to: "POST /metrics HTTP/1.1\r\n\r\n") { "" }.hasPrefix("HTTP/1.1 405"))
        #expect(MetricsHTTPService.respond(to: "HEAD /metrics HTTP/1.1\r\n\r\n") { "a 1\n" }.hasSuffix("\r\n\r\n"))
    }
}
