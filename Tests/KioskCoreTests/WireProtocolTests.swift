import Foundation
import Testing
@testable import KioskCore

/// The hand-written batch body: strings escaped as `JSONEncoder` escapes them, keys in the contract's
/// order, and the same request once decoded.
@Suite struct WireProtocolTests {
    static func encoderBody(_ request: BatchRequest) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return try encoder.encode(request)
    }

    static func item(_ payload: String, sequence: Int64 = 1) -> BatchItem {
        BatchItem(id: "0190aaaa-0000-7000-8000-00000000000\(sequence % 10)", sequence: sequence,
                  payloadSHA256: sha256Hex(Data(payload.utf8)), payload: payload)
    }

    /// `JSONEncoder`'s text for one string: an array of one (its key order varies from run to run, an array's does not).
    static func encoderString(_ s: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode([s]).dropFirst().dropLast())
    }

    @Test func aBatchOfRealPayloadsDecodesToTheSameRequest() throws {
        let payloads = try (1...3).map { n in
            String(decoding: try CreditApplication.sample(id: "0190aaaa-0000-7000-8000-00000000000\(n)").canonicalPayload(), as: UTF8.self)
        }
        let request = BatchRequest(deviceID: "kiosk-0001", sentAt: "2026-12-02T10:00:00Z",
                                   items: payloads.enumerated().map { Self.item($1, sequence: Int64($0 + 1)) })
        let body = request.jsonData()
        #expect(try JSONDecoder().decode(BatchRequest.self, from: body) == request)
        #expect(body.count == (try Self.encoderBody(request)).count, "the same document, keys in another order")
        let prefix = #"{"device_id":"kiosk-0001","sent_at":"2026-12-02T10:00:00Z","items":[{"id":"0190aaaa-0000-7000-8000-000000000001","sequence":1,"payload_sha256":""#
        #expect(String(decoding: body, as: UTF8.self).hasPrefix(prefix))
    }

    @Test(arguments: [
        "", "plain", #"{"a":"b\"c"}"#, #"back\slash \\ and "quotes""#, "slash / stays", "line\nbreak\r\ttab",
        "\u{08}\u{0C}\u{00}\u{01}\u{1F}\u{7F}", "é ü ß 中文 🙂", "\u{2028}\u{2029}",
    ])
    func escapingMatchesJSONEncoderAndRoundTrips(_ payload: String) throws {
        var ours: [UInt8] = []
        JSONText.appendString(payload, to: &ours)
        #expect(ours == (try Self.encoderString(payload)), "\(String(decoding: ours, as: UTF8.self))")
        let request = BatchRequest(deviceID: "kiosk \"0001\"", sentAt: "2026-12-02T10:00:00Z",
                                   items: [Self.item(payload), Self.item(payload + "x", sequence: 2)])
        let body = request.jsonData()
        #expect(try JSONDecoder().decode(BatchRequest.self, from: body) == request)
        #expect(body.count == (try Self.encoderBody(request)).count)
    }

    @Test func anEmptyBatchIsStillAnObjectWithItems() throws {
        let request = BatchRequest(deviceID: "k", sentAt: "t", items: [])
        #expect(String(decoding: request.jsonData(), as: UTF8.self) == #"{"device_id":"k","sent_at":"t","items":[]}"#)
        #expect(try JSONDecoder().decode(BatchRequest.self, from: request.jsonData()) == request)
    }
}
