import Foundation
import KioskCore
import KioskCentral
import Testing

@Suite("Fault injection")
struct FaultInjectionTests {
    /// What a client observes, reduced to what distinguishes the faults.
    enum Observation: Equatable, CustomStringConvertible {
        case normal
        case status(Int)
        case noReply
        case html
        case malformedJSON
        case cutBody

        var description: String {
            switch self {
            case .normal: "normal 200"
            case .status(let code): "status \(code)"
            case .noReply: "no reply"
            case .html: "html page"
            case .malformedJSON: "malformed JSON"
            case .cutBody: "body cut short"
            }
        }
    }

    static func observe(_ result: CurlResult, items: Int) -> Observation {
        if result.status == 0 { return .noReply }
        if result.exitCode == 18 { return .cutBody }  // CURLE_PARTIAL_FILE
        if result.status != 200 { return .status(result.status) }
        if result.headers["content-type"]?.hasPrefix("text/html") == true { return .html }
        guard let decoded = try? result.decode(BatchResponse.self), decoded.results.count == items else {
            return .malformedJSON
        }
        return .normal
    }

    static func expectedObservation(_ kind: FaultKind) -> Observation {
        switch kind {
        case .serverError, .serverErrorAfter: .status(500)
        case .tooManyRequests: .status(429)
        case .dropBefore, .dropAfter: .noReply
        case .slow: .normal
        case .malformed: .malformedJSON
        case .html: .html
        case .resetMidBody: .cutBody
        }
    }

    @Test("each fault behaves as documented", arguments: FaultKind.allCases)
    func eachFault(_ kind: FaultKind) async throws {
        let faults = FaultConfiguration(rate: 1, kinds: [kind], seed: 42, slowDelay: .milliseconds(300))
        try await withServer(faults: faults) { server, curl in
            let id = "fault-\(kind.rawValue)"
            let result = try await curl.perform(.post("/v1/applications/batch", try batchBody([item(id)])))
            #expect(Self.observe(result, items: 1) == Self.expectedObservation(kind), "\(result)")
            let stored = try await server.store.application(id: id) != nil
            #expect(stored == kind.storesBatch, "\(kind.rawValue) stored: \(stored)")
            let stats = try await server.store.stats()
            #expect(stats.requests == 1)
            #expect(stats.faultsInjected == 1)
            #expect(stats.accepted == (kind.storesBatch ? 1 : 0))

            switch kind {
            case .tooManyRequests:
                #expect(result.headers["retry-after"] == "1")
            case .slow:
                #expect(result.seconds >= 0.3, "took \(result.seconds) s")
            case .malformed:
                #expect(result.headers["content-type"] == "application/json")
                #expect(result.body.hasPrefix("{"))
            case .serverErrorAfter:
                #expect(try result.decode(ErrorBody.self).error.contains("stored"))
            default:
                break
            }
            // Unfaulted endpoints keep working, and the retry of a stored batch is a duplicate
            // (or, for faults that stored nothing, the next attempt is faulted again).
            #expect(try await curl.perform(.get("/healthz")).body == "ok")
        }
    }

    @Test("the same seed gives the same fault sequence")
    func reproducibleSequence() {
        let configuration = FaultConfiguration(rate: 0.5, kinds: FaultKind.allCases, seed: 2026)
        let first = FaultInjector(configuration: configuration)
        let second = FaultInjector(configuration: configuration)
        let a = (0..<500).map { _ in first.next() }
        let b = (0..<500).map { _ in second.next() }
        #expect(a == b)
        #expect(first.seed == 2026)

        let faulted = a.compactMap { $0 }
        #expect((175...325).contains(faulted.count), "rate 0.5 gave \(faulted.count)/500")
        #expect(Set(faulted) == Set(FaultKind.allCases))

        let other = FaultInjector(configuration: FaultConfiguration(rate: 0.5, kinds: FaultKind.allCases, seed: 2027))
        #expect((0..<500).map { _ in other.next() } != a)

        let never = FaultInjector(configuration: FaultConfiguration(rate: 0, kinds: FaultKind.allCases, seed: 1))
        #expect((0..<200).allSatisfy { _ in never.next() == nil })
        let always = FaultInjector(configuration: FaultConfiguration(rate: 1, kinds: [.slow], seed: 1))
        #expect((0..<200).allSatisfy { _ in always.next() == .slow })
    }

    @Test("a seeded server produces every kind of fault, in the predicted order")
    func seededServerProducesEveryFault() async throws {
        let faults = FaultConfiguration(rate: 1, kinds: FaultKind.allCases, seed: 7, slowDelay: .milliseconds(50))
        // A twin injector predicts the server's decisions.
        let twin = FaultInjector(configuration: faults)
        var predicted: [FaultKind] = []
        while Set(predicted).count < FaultKind.allCases.count && predicted.count < 200 {
            if let kind = twin.next() { predicted.append(kind) }
        }
        try #require(Set(predicted).count == FaultKind.allCases.count)

        try await withServer(faults: faults) { server, curl in
            for (index, kind) in predicted.enumerated() {
                let id = "seeded-\(index)"
                let result = try await curl.perform(.post("/v1/applications/batch", try batchBody([item(id)])))
                #expect(
                    Self.observe(result, items: 1) == Self.expectedObservation(kind),
                    "request \(index): predicted \(kind.rawValue), got \(result.status) exit \(result.exitCode)")
                let stored = try await server.store.application(id: id) != nil
                #expect(stored == kind.storesBatch, "request \(index) (\(kind.rawValue)) stored: \(stored)")
            }
            let stats = try await server.store.stats()
            #expect(stats.requests == Int64(predicted.count))
            #expect(stats.faultsInjected == Int64(predicted.count))
            #expect(stats.stored == Int64(predicted.filter(\.storesBatch).count))
        }
    }

    @Test("fault lists parse, with 'all' and unknown names")
    func parsing() throws {
        #expect(try FaultConfiguration.parseKinds("500, 429,drop-after") == [.serverError, .tooManyRequests, .dropAfter])
        #expect(try FaultConfiguration.parseKinds("all") == FaultKind.allCases)
        #expect(throws: CentralConfigurationError.unknownFault("teapot")) {
            try FaultConfiguration.parseKinds("500,teapot")
        }
        #expect(FaultConfiguration(rate: 7, kinds: []).rate == 1)
        let loopback = try CentralConfiguration.parseListenAddress("127.0.0.1:0")
        #expect(loopback.host == "127.0.0.1" && loopback.port == 0)
        let v6 = try CentralConfiguration.parseListenAddress("[::1]:8443")
        #expect(v6.host == "::1" && v6.port == 8443)
        #expect(throws: CentralConfigurationError.invalidListenAddress("localhost")) {
            try CentralConfiguration.parseListenAddress("localhost")
        }
    }
}
