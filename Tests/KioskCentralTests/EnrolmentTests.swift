import Foundation
import KioskCentral
import KioskCore
import Testing

/// A device key and CSR made with the openssl CLI (an independent CSR producer).
struct TestDeviceKey {
    let directory: URL
    var keyPath: String { self.directory.appendingPathComponent("device.key").path }
    var csrPath: String { self.directory.appendingPathComponent("device.csr").path }
    var certificatePath: String { self.directory.appendingPathComponent("device.pem").path }

    static func make(cn: String = "kiosk-unenrolled") async throws -> TestDeviceKey {
        let directory = try makeTemporaryDirectory("device-key")
        let key = TestDeviceKey(directory: directory)
        let genkey = try await runProcess(
            "/usr/bin/openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.keyPath])
        guard genkey.status == 0 else { throw HarnessError.processFailed(genkey.stderr) }
        let req = try await runProcess(
            "/usr/bin/openssl", ["req", "-new", "-sha256", "-key", key.keyPath, "-subj", "/CN=\(cn)", "-out", key.csrPath])
        guard req.status == 0 else { throw HarnessError.processFailed(req.stderr) }
        return key
    }

    var csrPEM: String { (try? String(contentsOfFile: self.csrPath, encoding: .utf8)) ?? "" }

    func enrolBody(token: String, merchant: String? = nil, site: String? = nil) throws -> String {
        String(decoding: try JSONEncoder().encode(EnrolRequest(token: token, csrPEM: self.csrPEM, merchantID: merchant, site: site)), as: UTF8.self)
    }
}

@Suite("enrolment: tokens, CSR signing, registry, revocation")
struct EnrolmentTests {
    @Test("a token enrols one device; the certificate chains to the CA and syncs; a second use is token_used")
    func tokenIsSingleUse() async throws {
        try await withServer(enrolment: true) { server, curl in
            let enrolPort = try #require(server.enrolmentPort)
            let open = Curl(pki: curl.pki, port: enrolPort)
            let token = try await server.store.createToken(merchantID: "merchant-42", site: "mall-7", ttl: .seconds(3600))
            #expect(token.token.hasPrefix("ket_"))

            let device = try await TestDeviceKey.make()
            let first = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: token.token, merchant: "merchant-42")), identity: .none)
            #expect(first.status == 200, "\(first.body)")
            let answer = try first.decode(EnrolResponse.self)
            #expect(answer.merchantID == "merchant-42")
            #expect(answer.site == "mall-7")
            #expect(answer.sealingKeyAlgorithm == CentralStore.sealingKeyAlgorithm)
            #expect(Data(base64Encoded: answer.sealingPublicKey)?.count == 32)
            try answer.certificatePEM.write(toFile: device.certificatePath, atomically: true, encoding: .utf8)

            // The issued certificate chains to the CA, is for clientAuth and names the device.
            let verify = try await runProcess("/usr/bin/openssl", ["verify", "-purpose", "sslclient", "-CAfile", curl.pki.caPath, device.certificatePath])
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            let subject = try await runProcess("/usr/bin/openssl", ["x509", "-noout", "-subject", "-in", device.certificatePath])
            #expect(subject.stdout.contains("CN=\(answer.deviceID)") || subject.stdout.contains("CN = \(answer.deviceID)"))

            // The registry has it; the token is spent.
            let record = try #require(try await server.store.device(id: answer.deviceID))
            #expect(record.status == "active")
            #expect(record.merchantID == "merchant-42")

            let again = try await TestDeviceKey.make()
            let second = try await open.perform(.post("/v1/enrol", try again.enrolBody(token: token.token)), identity: .none)
            #expect(second.status == 409)
            #expect(try second.decode(ErrorBody.self).reason == "token_used")

            // The issued certificate syncs on the mutual-TLS listener.
            let sync = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("enrolled-1")], device: answer.deviceID)),
                identity: .files(certificate: device.certificatePath, key: device.keyPath))
            #expect(sync.status == 200, "\(sync.body)")
            #expect(try sync.decode(BatchResponse.self).results.first?.status == .accepted)
        }
    }

    @Test("unknown, expired and wrong-merchant tokens are refused with a reason; the token is not spent")
    func badTokens() async throws {
        try await withServer(enrolment: true) { server, _ in
            let open = Curl(pki: try await TestPKI.shared(), port: try #require(server.enrolmentPort))
            let device = try await TestDeviceKey.make()

            let unknown = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: "ket_nope")), identity: .none)
            #expect(unknown.status == 401)
            #expect(try unknown.decode(ErrorBody.self).reason == "token_unknown")

            let past = Date().addingTimeInterval(-7200)
            let expired = try await server.store.createToken(merchantID: "m1", site: nil, ttl: .seconds(3600), now: past)
            let late = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: expired.token)), identity: .none)
            #expect(late.status == 403)
            #expect(try late.decode(ErrorBody.self).reason == "token_expired")

            let token = try await server.store.createToken(merchantID: "m1", site: "s1", ttl: .seconds(600))
            let wrong = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: token.token, merchant: "m2")), identity: .none)
            #expect(wrong.status == 403)
            #expect(try wrong.decode(ErrorBody.self).reason == "merchant_mismatch")
            let wrongSite = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: token.token, site: "s2")), identity: .none)
            #expect(try wrongSite.decode(ErrorBody.self).reason == "site_mismatch")

            // Refusals did not spend it.
            let right = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: token.token, merchant: "m1")), identity: .none)
            #expect(right.status == 200, "\(right.body)")
            #expect(try await server.store.devices().count == 1)
        }
    }

    @Test("a CSR that is not PEM, or whose signature does not verify, is bad_csr and spends nothing")
    func badCSR() async throws {
        try await withServer(enrolment: true) { server, _ in
            let open = Curl(pki: try await TestPKI.shared(), port: try #require(server.enrolmentPort))
            let token = try await server.store.createToken(merchantID: "m1", site: nil, ttl: .seconds(600))
            let garbage = String(decoding: try JSONEncoder().encode(EnrolRequest(token: token.token, csrPEM: "hello")), as: UTF8.self)
            let first = try await open.perform(.post("/v1/enrol", garbage), identity: .none)
            #expect(first.status == 400)
            #expect(try first.decode(ErrorBody.self).reason == "bad_csr")

            // Flip one byte of the signature (the end of the DER) of a real CSR.
            let device = try await TestDeviceKey.make()
            let lines = device.csrPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }
            var der = try #require(Data(base64Encoded: lines.joined()))
            der[der.count - 3] ^= 0x01
            let tampered = "-----BEGIN CERTIFICATE REQUEST-----\n\(der.base64EncodedString(options: [.lineLength64Characters]))\n-----END CERTIFICATE REQUEST-----\n"
            let body = String(decoding: try JSONEncoder().encode(EnrolRequest(token: token.token, csrPEM: tampered)), as: UTF8.self)
            let second = try await open.perform(.post("/v1/enrol", body), identity: .none)
            #expect(second.status == 400)
            #expect(try second.decode(ErrorBody.self).reason == "bad_csr")
            #expect(try await server.store.devices().isEmpty)
        }
    }

    @Test("the enrolment listener serves nothing else, and the batch endpoint still needs a client certificate")
    func enrolmentListenerIsNarrow() async throws {
        try await withServer(enrolment: true) { server, _ in
            let open = Curl(pki: try await TestPKI.shared(), port: try #require(server.enrolmentPort))
            let batch = try await open.perform(.post("/v1/applications/batch", try batchBody([item("x-1")])), identity: .none)
            #expect(batch.status == 404)
            let stats = try await open.perform(.get("/v1/stats"), identity: .none)
            #expect(stats.status == 404)
        }
    }

    @Test("a revoked device is refused at sync (403 device_revoked), also after a certificate rotation")
    func revokedDeviceIsRefused() async throws {
        try await withServer(enrolment: true) { server, curl in
            let open = Curl(pki: curl.pki, port: try #require(server.enrolmentPort))
            let token = try await server.store.createToken(merchantID: "m1", site: nil, ttl: .seconds(600))
            let device = try await TestDeviceKey.make()
            let enrolled = try await open.perform(.post("/v1/enrol", try device.enrolBody(token: token.token)), identity: .none)
            let answer = try enrolled.decode(EnrolResponse.self)
            try answer.certificatePEM.write(toFile: device.certificatePath, atomically: true, encoding: .utf8)
            let identity = ClientIdentity.files(certificate: device.certificatePath, key: device.keyPath)

            // Rotation: a new key, renewed with the current certificate; the old certificate is superseded.
            let rotated = try await TestDeviceKey.make(cn: answer.deviceID)
            let renew = try await curl.perform(
                .post("/v1/enrol/renew", String(decoding: try JSONEncoder().encode(RenewRequest(csrPEM: rotated.csrPEM)), as: UTF8.self)),
                identity: identity)
            #expect(renew.status == 200, "\(renew.body)")
            let renewed = try renew.decode(EnrolResponse.self)
            #expect(renewed.deviceID == answer.deviceID)
            try renewed.certificatePEM.write(toFile: rotated.certificatePath, atomically: true, encoding: .utf8)
            let newIdentity = ClientIdentity.files(certificate: rotated.certificatePath, key: rotated.keyPath)

            let old = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("rot-1")], device: answer.deviceID)), identity: identity)
            #expect(old.status == 403)
            #expect(try old.decode(ErrorBody.self).reason == "certificate_superseded")
            let fresh = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("rot-2")], device: answer.deviceID)), identity: newIdentity)
            #expect(fresh.status == 200, "\(fresh.body)")

            #expect(try await server.store.revoke(deviceID: answer.deviceID))
            let refused = try await curl.perform(
                .post("/v1/applications/batch", try batchBody([item("rev-1")], device: answer.deviceID)), identity: newIdentity)
            #expect(refused.status == 403)
            let body = try refused.decode(ErrorBody.self)
            #expect(body.reason == "device_revoked")
            #expect(body.error.contains("revoked"))
            // A revoked device cannot rotate its way back in.
            let again = try await TestDeviceKey.make(cn: answer.deviceID)
            let renewRevoked = try await curl.perform(
                .post("/v1/enrol/renew", String(decoding: try JSONEncoder().encode(RenewRequest(csrPEM: again.csrPEM)), as: UTF8.self)),
                identity: newIdentity)
            #expect(renewRevoked.status == 403)
            #expect(try renewRevoked.decode(ErrorBody.self).reason == "device_revoked")
            #expect(try await server.store.application(id: "rev-1") == nil)

            // Dev-PKI devices (never enrolled here) are unaffected.
            let dev = try await curl.perform(.post("/v1/applications/batch", try batchBody([item("dev-1")])))
            #expect(dev.status == 200)
        }
    }
}
