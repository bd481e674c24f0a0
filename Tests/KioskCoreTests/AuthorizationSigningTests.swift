import Crypto
import Foundation
import Testing
@testable import KioskCore

/// The device signature over an authorization record: it verifies, it survives the canonical
/// JSON round trip, and any change to what the shopper agreed to breaks it.
@Suite struct AuthorizationSigningTests {
    static let authorization = CreditApplication.sample().authorization

    @Test func aSignedAuthorizationVerifiesAndNamesItsKey() throws {
        let signer = AuthorizationSigner.generate()
        let signed = try signer.sign(Self.authorization)
        #expect(signed.signature?.algorithm == "ES256")
        #expect(try AuthorizationSigner.verify(signed) == signer.keyID)
        #expect(signer.keyID.count == 16)
    }

    @Test func theSignatureSurvivesTheApplicationsCanonicalJSON() throws {
        let signer = AuthorizationSigner.generate()
        var app = CreditApplication.sample()
        app.authorization = try signer.sign(app.authorization)
        let decoded = try JSONDecoder().decode(CreditApplication.self, from: try app.canonicalPayload())
        #expect(decoded.authorization == app.authorization)
        #expect(try AuthorizationSigner.verify(decoded.authorization) == signer.keyID)
    }

    @Test func thePEMRoundTripKeepsTheKey() throws {
        let signer = AuthorizationSigner.generate()
        let again = try AuthorizationSigner(pem: signer.pemRepresentation)
        #expect(again.keyID == signer.keyID)
        #expect(try AuthorizationSigner.verify(try again.sign(Self.authorization)) == signer.keyID)
        #expect(throws: (any Error).self) { try AuthorizationSigner(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") }
    }

    /// Each field change that must break the signature.
    static let tamperings: [(String, @Sendable (inout Authorization) -> Void)] = [
        ("consent hash", { $0.consentSHA256 = String(repeating: "0", count: 64) }),
        ("consent version", { $0.consentVersion = "2099.1" }),
        ("confirmed-at", { $0.confirmedAt.wallClockMillis += 1 }),
        ("method", { $0.method = $0.method == .terminalButton ? .kioskScreen : .terminalButton }),
        ("terminal serial", { $0.terminalSerial = "OTHER" }),
        ("transaction ref", { $0.transactionRef = "TX-OTHER" }),
        ("request id", { $0.requestID = ($0.requestID ?? 0) + 1 }),
    ]

    @Test(arguments: 0..<tamperings.count)
    func anyChangeToTheRecordBreaksTheSignature(_ index: Int) throws {
        var a = try AuthorizationSigner.generate().sign(Self.authorization)
        Self.tamperings[index].1(&a)
        #expect(throws: AuthorizationSignatureError.invalid, "\(Self.tamperings[index].0)") { try AuthorizationSigner.verify(a) }
    }

    @Test func unsignedForeignAndMalformedSignaturesAreTold() throws {
        #expect(throws: AuthorizationSignatureError.unsigned) { try AuthorizationSigner.verify(Self.authorization) }

        // A signature by one key presented with another key's public key and id.
        let a = try AuthorizationSigner.generate().sign(Self.authorization)
        let b = try AuthorizationSigner.generate().sign(Self.authorization)
        var swapped = a
        swapped.signature?.publicKey = b.signature!.publicKey
        swapped.signature?.keyID = b.signature!.keyID
        #expect(throws: AuthorizationSignatureError.invalid) { try AuthorizationSigner.verify(swapped) }

        var wrongID = a
        wrongID.signature?.keyID = "0000000000000000"
        #expect(throws: AuthorizationSignatureError.keyIDMismatch) { try AuthorizationSigner.verify(wrongID) }

        var alg = a
        alg.signature?.algorithm = "none"
        #expect(throws: AuthorizationSignatureError.unsupportedAlgorithm("none")) { try AuthorizationSigner.verify(alg) }

        var garbage = a
        garbage.signature?.value = "not base64 !"
        #expect(throws: AuthorizationSignatureError.malformed("signature value")) { try AuthorizationSigner.verify(garbage) }
    }
}
