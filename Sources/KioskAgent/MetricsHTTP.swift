import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Serves `GET /metrics` on a loopback address (`metrics.listen`) for a local Prometheus agent.
///
/// A minimal HTTP/1.1 responder: one request per connection, `Connection: close`; anything but
/// `GET /metrics` gets 404 (405 for other methods). Bound to loopback only (checked by the config).
struct MetricsHTTPService: Service {
    let host: String
    let port: Int
    let logger: Logger
    let render: @Sendable () -> String

    func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        logger.info("metrics listening", metadata: ["address": "\(host):\(port)"])
        let render = self.render
        try? await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { _ = try? await Self.serve(connection, render: render) }
                    }
                }
            }
        }
    }

    /// The response bytes for a request head.
    static func respond(to head: String, render: () -> String) -> String {
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        func reply(_ status: String, _ type: String, _ body: String) -> String {
            "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        }
        guard parts.count >= 2 else { return reply("400 Bad Request", "text/plain", "bad request\n") }
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return reply("405 Method Not Allowed", "text/plain", "GET only\n") }
        let path = parts[1].split(separator: "?").first.map(String.init) ?? ""
        guard path == "/metrics" else { return reply("404 Not Found", "text/plain", "see /metrics\n") }
        let full = reply("200 OK", PrometheusText.contentType, render())
        if parts[0] == "HEAD", let end = full.range(of: "\r\n\r\n") { return String(full[..<end.upperBound]) }
        return full
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, render: @Sendable () -> String) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var pending = [UInt8]()
            for try await chunk in inbound {
                pending += chunk.readableBytesView
                if pending.count > 16 << 10 { return }
                let text = String(decoding: pending, as: UTF8.self)
                if text.contains("\r\n\r\n") {
                    try await outbound.write(ByteBuffer(string: respond(to: text, render: render)))
                    return
                }
            }
        }
    }
}
