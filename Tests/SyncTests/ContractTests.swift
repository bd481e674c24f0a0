import Foundation
import KioskCore
import Outbox
import Testing
@testable import Sync

/// The agent's side of the OpenAPI contract: what it sends matches Sources/KioskCentral/openapi.yaml.
@Suite struct AgentContractTests {
    static let spec: String = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/KioskCentral/openapi.yaml")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    /// The `required` list and property names of a component schema (a small reader for this file's layout).
    static func schema(_ name: String) -> (required: Set<String>, properties: Set<String>) {
        let lines = spec.components(separatedBy: "\n")
        guard let start = lines.firstIndex(of: "    \(name):") else { return ([], []) }
        var required = Set<String>(), properties = Set<String>()
        var inProperties = false
        for line in lines[(start + 1)...] {
            if line.hasPrefix("    ") && !line.hasPrefix("     ") { break }  // next schema
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("required: [") {
                required = Set(t.dropFirst("required: [".count).dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            }
            if line == "      properties:" { inProperties = true; continue }
            if inProperties, line.hasPrefix("        "), !line.hasPrefix("         "), t.hasSuffix(":") {
                properties.insert(String(t.dropLast()))
            } else if inProperties, line.hasPrefix("      "), !line.hasPrefix("       ") {
                inProperties = false
            }
        }
        return (required, properties)
    }

    @Test func theSpecDeclaresTheBatchOperation() {
        #expect(Self.spec.contains("  /v1/applications/batch:"))
        #expect(Self.spec.contains("    post:"))
    }

    @Test func requestBodyMatchesTheBatchRequestSchema() throws {
        let payload = try CreditApplication.sample(id: "0190aaaa-0000-7000-8000-000000000009").canonicalPayload()
        let record = OutboxRecord(sequence: 7, id: "0190aaaa-0000-7000-8000-000000000009", payload: payload,
                                  payloadSHA256: sha256Hex(payload), state: .inFlight, attempts: 0, nextAttemptAt: Date(),
                                  lastError: nil, createdAt: Date(), syncedAt: nil, rejectReason: nil)
        let body = SyncEngine.requestBody(deviceID: "kiosk-1", batch: [record], now: Date(timeIntervalSince1970: 1_763_900_000))
        let obj = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        let request = Self.schema("BatchRequest")
        #expect(!request.required.isEmpty)
        #expect(Set(obj.keys) == request.properties)
        #expect(request.required.isSubset(of: Set(obj.keys)))
        let item = try #require((obj["items"] as? [[String: Any]])?.first)
        let itemSchema = Self.schema("BatchItem")
        #expect(Set(item.keys) == itemSchema.properties)
        #expect(itemSchema.required.isSubset(of: Set(item.keys)))
        #expect(obj["sent_at"] as? String == "2025-11-23T12:13:20Z")
        #expect(item["payload"] as? String == String(decoding: payload, as: UTF8.self), "the payload must travel byte for byte")
    }

    @Test func responseDecodingFollowsTheItemResultSchema() throws {
        let schema = Self.schema("ItemResult")
        #expect(schema.properties == ["id", "status", "reason"])
        let json = #"{"results":[{"id":"a","status":"accepted"},{"id":"b","status":"rejected","reason":"some_future_reason"}]}"#
        let decoded = try JSONDecoder().decode(BatchResponse.self, from: Data(json.utf8))
        #expect(decoded.results[1].reason?.rawValue == "some_future_reason")
    }
}
