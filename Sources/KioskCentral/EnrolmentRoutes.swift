import Foundation
import NIOCore
import NIOHTTP1

extension CentralRouter {
    /// `POST /v1/enrol`: token + CSR → device certificate, CA, sealing key.
    func enrol(_ request: CentralRequest) async -> CentralReply {
        guard let ca = self.ca else {
            return .error(.notFound, "enrolment is not configured on this server (kiosk-central serve --ca-key)")
        }
        let body: EnrolRequest
        switch self.decode(EnrolRequest.self, request) {
        case .success(let value): body = value
        case .failure(let refusal): return refusal.reply
        }
        guard !body.token.isEmpty else {
            return .refusal(.tokenUnknown, Self.explain(.tokenUnknown, device: nil))
        }
        let csr: DeviceCA.VerifiedCSR
        do throws(EnrolmentRefusal) {
            csr = try DeviceCA.verify(csrPEM: body.csrPEM)
        } catch {
            return .refusal(error, Self.explain(error, device: nil))
        }
        do {
            switch try await self.store.enrol(body, csr: csr, ca: ca) {
            case .refused(let refusal):
                self.logger.info("enrolment refused", metadata: ["reason": "\(refusal.rawValue)"])
                return .refusal(refusal, Self.explain(refusal, device: nil))
            case .issued(let record, let pem):
                self.logger.info("device enrolled", metadata: ["device": "\(record.deviceID)", "merchant": "\(record.merchantID)"])
                return try await self.issuedReply(record, pem: pem, ca: ca)
            }
        } catch {
            self.logger.error("enrolment failure", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "storage failure")
        }
    }

    /// `POST /v1/enrol/renew`: a new CSR, authenticated by the device's current client certificate.
    func renew(_ request: CentralRequest) async -> CentralReply {
        guard let ca = self.ca else {
            return .error(.notFound, "enrolment is not configured on this server (kiosk-central serve --ca-key)")
        }
        guard let deviceID = request.peerCommonName else {
            return .refusal(.deviceNotRegistered, "renewal needs the device's current client certificate")
        }
        let body: RenewRequest
        switch self.decode(RenewRequest.self, request) {
        case .success(let value): body = value
        case .failure(let refusal): return refusal.reply
        }
        let csr: DeviceCA.VerifiedCSR
        do throws(EnrolmentRefusal) {
            csr = try DeviceCA.verify(csrPEM: body.csrPEM)
        } catch {
            return .refusal(error, Self.explain(error, device: deviceID))
        }
        do {
            switch try await self.store.renew(
                deviceID: deviceID, presentedCertificateSHA256: request.peerCertificateSHA256, csr: csr, ca: ca)
            {
            case .refused(let refusal):
                return .refusal(refusal, Self.explain(refusal, device: deviceID))
            case .issued(let record, let pem):
                self.logger.info("device certificate rotated", metadata: ["device": "\(deviceID)"])
                return try await self.issuedReply(record, pem: pem, ca: ca)
            }
        } catch {
            self.logger.error("renewal failure", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "storage failure")
        }
    }

    private func issuedReply(_ record: DeviceRecord, pem: String, ca: DeviceCA) async throws -> CentralReply {
        let sealing = try await self.store.sealingPublicKey()
        return .json(
            .ok,
            EnrolResponse(
                deviceID: record.deviceID, merchantID: record.merchantID, site: record.site, certificatePEM: pem,
                caPEM: ca.certificatePEM, sealingPublicKey: sealing.base64EncodedString(),
                sealingKeyAlgorithm: CentralStore.sealingKeyAlgorithm, notAfter: record.notAfter))
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: CentralRequest) -> Result<T, Refusal> {
        let contentType = request.headers.first(name: "content-type")?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? ""
        guard mediaType == "application/json" else {
            return .failure(Refusal(reply: .error(.unsupportedMediaType, "Content-Type must be application/json")))
        }
        do {
            return .success(try JSONDecoder().decode(type, from: Data(request.body.readableBytesView)))
        } catch {
            return .failure(Refusal(reply: .error(.badRequest, "unparseable body: \(error)")))
        }
    }

    /// A sentence for each refusal, naming what to do.
    static func explain(_ refusal: EnrolmentRefusal, device: String?) -> String {
        let who = device.map { "device \($0)" } ?? "the device"
        switch refusal {
        case .tokenUnknown: return "unknown enrolment token (check it, or ask the operator for a new one)"
        case .tokenExpired: return "the enrolment token has expired (ask the operator for a new one)"
        case .tokenUsed: return "the enrolment token was already used (tokens are single-use; ask for a new one)"
        case .merchantMismatch: return "the enrolment token was issued for another merchant"
        case .siteMismatch: return "the enrolment token was issued for another site"
        case .badCSR: return "csr_pem is not a valid P-256 certificate signing request with a verifying signature"
        case .deviceRevoked: return "\(who) is revoked; it must be re-enrolled with a new token"
        case .certificateSuperseded: return "\(who) presented a certificate that was replaced by a newer one"
        case .deviceNotRegistered: return "\(who) is not registered here; enrol it with a token"
        }
    }
}
