import Foundation
import KioskCentral
import Testing
@testable import KioskCore

/// Sealed (HPKE) and device-signed applications through the batch endpoint.
@Suite("sealed applications: open, verify, bind to the enrolled device")
struct SealedIntakeTests {
    static func sealedItem(_ app: CreditApplication, sealingKey: String, signer: AuthorizationSigner,
                           sequence: Int64 = 1) throws -> BatchItem {
        let key = try #require(Data(base64Encoded: sealingKey))
        let sealed = try ApplicationSealer(recipientKey: key, signer: signer).seal(try app.canonicalPayload(), id: app.id)
        let text = String(decoding: sealed, as: UTF8.self)
        return BatchItem(id: app.id, sequence: sequence, payloadSHA256: CentralStore.sha256Hex(text), payload: text)
    }

    @Test("an enrolled device's sealed items are opened and stored; tampered, other-device and replayed ones are refused")
    func sealedItemsOfAnEnrolledDevice() async throws {
        try await withServer(enrolment: true) { server, curl in
            let enrolPort = try #require(server.enrolmentPort)
            let token = try await server.store.createToken(merchantID: "merchant-42", site: nil, ttl: .seconds(3600))
            let device = try await TestDeviceKey.make()
            let enrolled = try await Curl(pki: curl.pki, port: enrolPort)
                .perform(.post("/v1/enrol", try device.enrolBody(token: token.token)), identity: .none)
            #expect(enrolled.status == 200, "\(enrolled.body)")
            let answer = try enrolled.decode(EnrolResponse.self)
            try answer.certificatePEM.write(toFile: device.certificatePath, atomically: true, encoding: .utf8)
            let signer = try AuthorizationSigner(pem: String(contentsOfFile: device.keyPath, encoding: .utf8))
            let identity = ClientIdentity.files(certificate: device.certificatePath, key: device.keyPath)

            var good = CreditApplication.sample(deviceID: answer.deviceID)
            good.authorization = try signer.sign(good.authorization)
            let goodItem = try Self.sealedItem(good, sealingKey: answer.sealingPublicKey, signer: signer)

            var tamperedItem = try Self.sealedItem(CreditApplication.sample(deviceID: answer.deviceID),
                                                   sealingKey: answer.sealingPublicKey, signer: signer)
            tamperedItem.payload = tamperedItem.payload.replacingOccurrences(of: #""ciphertext":""#, with: #""ciphertext":"AAAA"#)
            tamperedItem.payloadSHA256 = CentralStore.sha256Hex(tamperedItem.payload)

            let otherItem = try Self.sealedItem(CreditApplication.sample(deviceID: answer.deviceID),
                                                sealingKey: answer.sealingPublicKey, signer: .generate())

            var changed = good
            changed.payment.amountMinor += 1
            let replayItem = try Self.sealedItem(changed, sealingKey: answer.sealingPublicKey, signer: signer, sequence: 2)
            let resent = goodItem  // the same envelope again (a retry after a lost response)

            let response = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([goodItem, tamperedItem, otherItem, replayItem, resent],
                                                              device: answer.deviceID)),
                identity: identity)
            #expect(response.status == 200, "\(response.body)")
            let results = try response.decode(BatchResponse.self).results
            #expect(results.map(\.status) == [.accepted, .rejected, .rejected, .rejected, .duplicate])
            #expect(results.map(\.reason) == [nil, .badSignature, .wrongDevice, .replayed, nil])

            // Stored opened: central reads the payment fields, and the SHA is the plaintext's.
            let stored = try #require(try await server.store.application(id: good.id))
            let plain = String(decoding: try good.canonicalPayload(), as: UTF8.self)
            #expect(stored.payload == plain)
            #expect(stored.payloadSHA256 == CentralStore.sha256Hex(plain))
            let opened = try CanonicalJSON.decode(CreditApplication.self, from: Data(stored.payload.utf8))
            #expect(opened.payment.maskedPAN == "622202******1234")
            #expect(opened.payment.approvalCode == "A1B2C3")
        }
    }

    @Test("a ciphertext tampered and re-signed is bad_seal; plain items still work")
    func badSealAndPlainItems() async throws {
        try await withServer { server, curl in
            let key = try await server.store.sealingPublicKey()
            let signer = AuthorizationSigner.generate()
            let app = CreditApplication.sample(deviceID: TestPKI.deviceA)
            var item = try Self.sealedItem(app, sealingKey: key.base64EncodedString(), signer: signer)
            var envelope = try #require(SealedEnvelope.decodeIfSealed(Data(item.payload.utf8)) ?? nil)
            var ct = try #require(Data(base64Encoded: envelope.ciphertext))
            ct[ct.startIndex] ^= 0x80
            envelope.ciphertext = ct.base64EncodedString()
            // Re-signed with the same device key (an attacker holding it): only the seal catches it.
            envelope.signature = try signer.signatureRecord(over: envelope.signedBytes()).value
            item.payload = String(decoding: try CanonicalJSON.encode(envelope), as: UTF8.self)
            item.payloadSHA256 = CentralStore.sha256Hex(item.payload)
            let response = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item, KioskCentralTests.item("plain-1")])))
            #expect(response.status == 200, "\(response.body)")
            let results = try response.decode(BatchResponse.self).results
            #expect(results.map(\.reason) == [.badSeal, nil])
            #expect(results.map(\.status) == [.rejected, .accepted])
        }
    }

    @Test("an authorization signed by another key than the envelope's is signer_mismatch")
    func authorizationSignedByAnotherKey() async throws {
        try await withServer { server, curl in
            let key = try await server.store.sealingPublicKey().base64EncodedString()
            let device = AuthorizationSigner.generate()
            var lifted = CreditApplication.sample(deviceID: TestPKI.deviceA)
            lifted.authorization = try AuthorizationSigner.generate().sign(lifted.authorization)  // signed elsewhere
            var own = CreditApplication.sample(deviceID: TestPKI.deviceA)
            own.authorization = try device.sign(own.authorization)
            let items = [try Self.sealedItem(lifted, sealingKey: key, signer: device),
                         try Self.sealedItem(own, sealingKey: key, signer: device, sequence: 2)]
            let response = try await curl.perform(.post("/v1/applications/batch", try batchBody(items)))
            #expect(response.status == 200, "\(response.body)")
            let results = try response.decode(BatchResponse.self).results
            #expect(results.map(\.status) == [.rejected, .accepted])
            #expect(results.map(\.reason) == [.signerMismatch, nil])
            #expect(try await server.store.application(id: lifted.id) == nil)
        }
    }

    @Test("with requireSealed a plain item is rejected unsealed and a sealed one accepted; bodies are captured as sent")
    func requireSealedAndCapture() async throws {
        let capture = try makeTemporaryDirectory("kiosk-central-capture")
        defer { try? FileManager.default.removeItem(at: capture) }
        try await withServer(requireSealed: true, captureDirectory: capture.path) { server, curl in
            let key = try await server.store.sealingPublicKey().base64EncodedString()
            let sealed = try Self.sealedItem(CreditApplication.sample(deviceID: TestPKI.deviceA), sealingKey: key,
                                             signer: .generate(), sequence: 2)
            let body = try batchBody([KioskCentralTests.item("plain-1"), sealed])
            let response = try await curl.perform(.post("/v1/applications/batch", body))
            #expect(response.status == 200, "\(response.body)")
            let results = try response.decode(BatchResponse.self).results
            #expect(results.map(\.reason) == [.unsealed, nil])
            #expect(try await server.store.application(id: "plain-1") == nil)
            let files = try FileManager.default.contentsOfDirectory(atPath: capture.path)
            #expect(files.count == 1)
            let captured = try Data(contentsOf: capture.appendingPathComponent(try #require(files.first)))
            #expect(captured == Data(body.utf8))
        }
    }
}
