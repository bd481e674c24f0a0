import Crypto
import Foundation
import Testing
@testable import KioskCore

/// Sealing application payloads to central's key (HPKE) with a device signature.
@Suite struct SealingTests {
    /// Central's key pair (raw private, raw public).
    static let central: (privateKey: Data, publicKey: Data) = {
        let key = Curve25519.KeyAgreement.PrivateKey()
        return (key.rawRepresentation, key.publicKey.rawRepresentation)
    }()

    static func sealed(_ app: CreditApplication, signer: AuthorizationSigner = .generate()) throws -> (Data, SealedEnvelope) {
        let sealer = try ApplicationSealer(recipientKey: central.publicKey, signer: signer)
        let bytes = try sealer.seal(try app.canonicalPayload(), id: app.id)
        let envelope = try #require(SealedEnvelope.decodeIfSealed(bytes) ?? nil)
        return (bytes, envelope)
    }

    @Test func sealOpenRoundTripKeepsNoPlaintext() throws {
        let app = CreditApplication.sample()
        let signer = AuthorizationSigner.generate()
        let (bytes, envelope) = try Self.sealed(app, signer: signer)
        let text = String(decoding: bytes, as: UTF8.self)
        for secret in ["622202******1234", "A1B2C3", "instalment-consent", app.payment.transactionRef] {
            #expect(!text.contains(secret), "\(secret) visible in the envelope")
        }
        #expect(envelope.id == app.id)
        #expect(envelope.keyID == signer.keyID)
        let opened = try ApplicationOpener(privateKey: Self.central.privateKey).open(envelope, id: app.id)
        let plain = try app.canonicalPayload()
        #expect(opened.payload == plain)
        let key = try P256.Signing.PrivateKey(pemRepresentation: signer.pemRepresentation).publicKey
        #expect(opened.devicePublicKeySHA256 == sha256Hex(key.derRepresentation))
        // A plain payload is not an envelope.
        #expect(SealedEnvelope.decodeIfSealed(plain) == nil)
    }

    @Test func tamperedMovedOrReSignedEnvelopesDoNotOpen() throws {
        let app = CreditApplication.sample()
        let (_, envelope) = try Self.sealed(app)
        let opener = try ApplicationOpener(privateKey: Self.central.privateKey)

        // Tampered ciphertext, re-signed by an attacker's key so only the seal can catch it.
        var ct = try #require(Data(base64Encoded: envelope.ciphertext))
        ct[ct.startIndex + 5] ^= 0x01
        var tampered = envelope
        tampered.ciphertext = ct.base64EncodedString()
        #expect(throws: SealError.badSignature) { try opener.open(tampered, id: app.id) }
        let attacker = AuthorizationSigner.generate()
        let record = try attacker.signatureRecord(over: Data())
        tampered.keyID = record.keyID
        tampered.publicKey = record.publicKey
        tampered.signature = try attacker.signatureRecord(over: tampered.signedBytes()).value
        #expect(throws: SealError.badSeal) { try opener.open(tampered, id: app.id) }

        // Moved to another id (and re-signed): the HPKE info/AAD no longer match.
        var moved = envelope
        moved.id = "kiosk-other-id"
        moved.keyID = record.keyID
        moved.publicKey = record.publicKey
        moved.signature = try attacker.signatureRecord(over: moved.signedBytes()).value
        #expect(throws: SealError.badSeal) { try opener.open(moved, id: "kiosk-other-id") }
        #expect(throws: SealError.badSeal) { try opener.open(envelope, id: "kiosk-other-id") }

        // Another central's key cannot open it.
        let other = try ApplicationOpener(privateKey: Curve25519.KeyAgreement.PrivateKey().rawRepresentation)
        #expect(throws: SealError.badSeal) { try other.open(envelope, id: app.id) }
    }

    @Test func sealerLoadsTheProvisionedKeyFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sealing-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let json = #"{"algorithm":"HPKE-Base-X25519-SHA256-ChaChaPoly","public_key":"\#(Self.central.publicKey.base64EncodedString())"}"#
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        let sealer = try ApplicationSealer(keyFile: path, signer: .generate())
        #expect(sealer.recipientKey == Self.central.publicKey)
        try #"{"algorithm":"RSA","public_key":"AAAA"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: SealError.self) { try ApplicationSealer(keyFile: path, signer: .generate()) }
    }
}
