import Foundation
import KioskCore
import KioskCentral
import Testing

@Suite("OpenAPI contract")
struct ContractTests {
    @Test("openapi.yaml ships in the resource bundle and declares the contract's operations")
    func declaresOperations() throws {
        let text = try #require(CentralContract.openAPIDocument())
        #expect(text.hasPrefix("openapi: 3.1"))
        let contract = OpenAPIContract.parse(text)
        #expect(contract.operations["/v1/applications/batch"]?["post"] == [200, 400, 403, 413, 415, 429, 500])
        #expect(contract.operations["/v1/applications"]?["get"] == [200, 400, 500])
        #expect(contract.operations["/v1/stats"]?["get"] == [200, 500])
        #expect(contract.operations["/healthz"]?["get"] == [200])
        #expect(contract.componentResponses.isSuperset(of: ["NotFound", "MethodNotAllowed"]))
        #expect(contract.operations["/v1/enrol"]?["post"] == [200, 400, 401, 403, 404, 409, 415, 500])
        #expect(contract.operations["/v1/enrol/renew"]?["post"] == [200, 400, 403, 404, 415, 500])
        #expect(
            Set(contract.operations.keys)
                == ["/v1/applications/batch", "/v1/applications", "/v1/stats", "/healthz", "/v1/enrol", "/v1/enrol/renew"])
    }

    @Test("the contract check rejects what is not declared")
    func checkCanFail() throws {
        let contract = try OpenAPIContract.load()
        let undeclared: Set<ServedResponse> = [
            ServedResponse(method: "POST", route: "/v1/applications/batch", status: 418),
            ServedResponse(method: "GET", route: "/v1/applications/batch", status: 200),
            ServedResponse(method: "GET", route: "*", status: 200),
        ]
        #expect(contract.undeclared(undeclared).count == 3)
        #expect(contract.declares(ServedResponse(method: "POST", route: "/v1/applications/batch", status: 429)))
        #expect(contract.declares(ServedResponse(method: "DELETE", route: "/v1/stats", status: 405)))
        #expect(contract.declares(ServedResponse(method: "GET", route: "*", status: 404)))
    }

    @Test("the wire names and enums in openapi.yaml match the Swift types")
    func wireNamesMatch() throws {
        let text = try #require(CentralContract.openAPIDocument())
        for name in ["device_id", "sent_at", "payload_sha256", "next_cursor", "received_at", "faults_injected"] {
            #expect(text.contains("\(name):"), "\(name) missing from openapi.yaml")
        }
        #expect(text.contains("enum: [accepted, duplicate, rejected]"))
        let reasons: [RejectionReason] = [.checksumMismatch, .invalidPayload, .badSignature, .conflict,
                                        .badSeal, .wrongDevice, .replayed, .unsealed, .signerMismatch]
        #expect(text.contains("enum: [\(reasons.map(\.rawValue).joined(separator: ", "))]"))
        for kind in FaultKind.allCases {
            #expect(text.contains("`\(kind.rawValue)`"), "fault \(kind.rawValue) not documented")
        }
        // The JSON the server writes uses exactly these names.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let stats = String(decoding: try encoder.encode(CentralStats()), as: UTF8.self)
        #expect(
            stats == #"{"accepted":0,"duplicate":0,"faults_injected":0,"rejected":0,"requests":0,"stored":0}"#)
        let result = String(
            decoding: try encoder.encode(ItemResult(id: "a", status: .rejected, reason: .checksumMismatch)),
            as: UTF8.self)
        #expect(result == #"{"id":"a","reason":"checksum_mismatch","status":"rejected"}"#)
    }
}
