import Crypto
import Foundation

/// A sealed application payload: HPKE ciphertext to central's key, signed with the device key.
///
/// The outbox row and the batch item carry this JSON instead of the plaintext payload. Only
/// the application id travels in clear (routing needs it, and central's `"id"` check reads it).
///
/// - Encryption: HPKE base mode, X25519 / HKDF-SHA256 / ChaCha20-Poly1305 (RFC 9180), to
///   central's sealing key. The HPKE `info` is `"kiosk-application-v1:" + id` and the AEAD
///   additional data is the id, so an envelope moved to another id does not open.
/// - Signature: ES256 by the device key over the canonical JSON of the envelope with
///   `signature` removed, i.e. over the *sealed* bytes (enc, ciphertext, id, key). Central
///   checks it before opening, and it reveals nothing about the plaintext (a signature over a
///   plaintext hash would let a disk copy confirm a guessed payload).
public struct SealedEnvelope: Codable, Sendable, Equatable {
    /// The envelope format version carried in `"sealed"`; always 1.
    public static let version = 1
    /// The HPKE suite, as central publishes it.
    public static let algorithm = "HPKE-Base-X25519-SHA256-ChaChaPoly"

    /// The format version (the `"sealed"` key marks a payload as an envelope).
    public var sealed: Int
    /// The application id (clear; bound into the seal as HPKE info and AAD).
    public var id: String
    /// The HPKE suite.
    public var algorithm: String
    /// The HPKE encapsulated key, base64.
    public var encapsulatedKey: String
    /// The ciphertext with its Poly1305 tag, base64.
    public var ciphertext: String
    /// The device key id (first 16 hex digits of the SHA-256 of the X9.63 public key).
    public var keyID: String
    /// The device's public key, X9.63 uncompressed, base64.
    public var publicKey: String
    /// The ES256 DER signature over ``signedBytes()``, base64; `nil` only while signing.
    public var signature: String?

    enum CodingKeys: String, CodingKey {
        case sealed, id, algorithm = "alg", encapsulatedKey = "enc", ciphertext
        case keyID = "key_id", publicKey = "public_key", signature
    }

    /// The bytes the device signature covers: the canonical JSON without `signature`.
    public func signedBytes() throws -> Data {
        var copy = self
        copy.signature = nil
        return try CanonicalJSON.encode(copy)
    }

    /// The HPKE `info` for an application id.
    public static func info(for id: String) -> Data { Data("kiosk-application-v1:\(id)".utf8) }

    /// Decodes `payload` as an envelope, or returns `nil` if it is not one (no `"sealed"` key).
    public static func decodeIfSealed(_ payload: Data) -> SealedEnvelope?? {
        struct Marker: Decodable { var sealed: Int? }
        guard let marker = try? JSONDecoder().decode(Marker.self, from: payload), marker.sealed != nil else { return nil }
        return .some(try? JSONDecoder().decode(SealedEnvelope.self, from: payload))
    }
}

/// Why an envelope could not be opened.
public enum SealError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The envelope is not valid JSON of the expected shape, version or algorithm.
    case malformed(String)
    /// The device signature does not verify (or its key id does not match its key).
    case badSignature
    /// The ciphertext does not open with central's key for this id (tampered or moved).
    case badSeal

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .malformed(what): "malformed sealed envelope: \(what)"
        case .badSignature: "the envelope's device signature does not verify"
        case .badSeal: "the envelope does not open (tampered ciphertext, wrong key or wrong id)"
        }
    }
}

/// Seals application payloads to central's public key and signs them with the device key.
public struct ApplicationSealer: Sendable {
    /// Central's raw 32-byte X25519 public sealing key.
    public let recipientKey: Data
    private let signer: AuthorizationSigner

    /// Creates a sealer; fails if `recipientKey` is not a 32-byte X25519 key.
    public init(recipientKey: Data, signer: AuthorizationSigner) throws {
        _ = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: recipientKey)
        self.recipientKey = recipientKey
        self.signer = signer
    }

    /// Loads the key file `kioskctl provision` writes (`{"algorithm": …, "public_key": base64}`).
    public init(keyFile path: String, signer: AuthorizationSigner) throws {
        struct File: Decodable {
            var algorithm: String
            var publicKey: String
            enum CodingKeys: String, CodingKey { case algorithm, publicKey = "public_key" }
        }
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        guard file.algorithm == SealedEnvelope.algorithm else {
            throw SealError.malformed("unsupported sealing algorithm \(file.algorithm) in \(path)")
        }
        guard let key = Data(base64Encoded: file.publicKey) else { throw SealError.malformed("sealing key in \(path) is not base64") }
        try self.init(recipientKey: key, signer: signer)
    }

    /// Seals `payload` for application `id`; returns the envelope as canonical JSON.
    public func seal(_ payload: Data, id: String) throws -> Data {
        let recipient = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: recipientKey)
        var sender = try HPKE.Sender(recipientKey: recipient, ciphersuite: .Curve25519_SHA256_ChachaPoly,
                                     info: SealedEnvelope.info(for: id))
        let ciphertext = try sender.seal(payload, authenticating: Data(id.utf8))
        let publicKey = signer.key.publicKey.x963Representation
        var envelope = SealedEnvelope(
            sealed: SealedEnvelope.version, id: id, algorithm: SealedEnvelope.algorithm,
            encapsulatedKey: sender.encapsulatedKey.base64EncodedString(), ciphertext: ciphertext.base64EncodedString(),
            keyID: AuthorizationSigner.keyID(of: publicKey), publicKey: publicKey.base64EncodedString(), signature: nil)
        envelope.signature = try signer.signatureRecord(over: envelope.signedBytes()).value
        return try CanonicalJSON.encode(envelope)
    }
}

/// Opens sealed envelopes with central's private sealing key.
public struct ApplicationOpener: Sendable {
    private let privateKey: Data

    /// Wraps central's raw 32-byte X25519 private key.
    public init(privateKey: Data) throws {
        _ = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
        self.privateKey = privateKey
    }

    /// What an opened envelope yields.
    public struct Opened: Sendable, Equatable {
        /// The plaintext payload.
        public var payload: Data
        /// The signing device's public key (X9.63).
        public var devicePublicKey: Data
        /// SHA-256 (hex) of the device public key's SubjectPublicKeyInfo DER, as enrolment records it.
        public var devicePublicKeySHA256: String
    }

    /// Verifies the device signature, then opens the ciphertext for `id`.
    public func open(_ envelope: SealedEnvelope, id: String) throws(SealError) -> Opened {
        guard envelope.sealed == SealedEnvelope.version else { throw .malformed("version \(envelope.sealed)") }
        guard envelope.algorithm == SealedEnvelope.algorithm else { throw .malformed("algorithm \(envelope.algorithm)") }
        guard envelope.id == id else { throw .badSeal }
        guard let pub = Data(base64Encoded: envelope.publicKey),
              let deviceKey = try? P256.Signing.PublicKey(x963Representation: pub) else { throw .malformed("public key") }
        guard AuthorizationSigner.keyID(of: pub) == envelope.keyID else { throw .badSignature }
        guard let sigB64 = envelope.signature, let der = Data(base64Encoded: sigB64),
              let signature = try? P256.Signing.ECDSASignature(derRepresentation: der),
              let bytes = try? envelope.signedBytes(), deviceKey.isValidSignature(signature, for: bytes)
        else { throw .badSignature }
        guard let enc = Data(base64Encoded: envelope.encapsulatedKey), let ct = Data(base64Encoded: envelope.ciphertext),
              let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
        else { throw .badSeal }
        do {
            var recipient = try HPKE.Recipient(privateKey: key, ciphersuite: .Curve25519_SHA256_ChachaPoly,
                                               info: SealedEnvelope.info(for: id), encapsulatedKey: enc)
            let plain = try recipient.open(ct, authenticating: Data(id.utf8))
            return Opened(payload: plain, devicePublicKey: pub, devicePublicKeySHA256: sha256Hex(deviceKey.derRepresentation))
        } catch {
            throw .badSeal
        }
    }
}

extension AuthorizationSigner {
    /// An ES256 signature over `bytes` with this key (key id, public key, DER value).
    func signatureRecord(over bytes: Data) throws -> AuthorizationSignature {
        let key = self.key
        let pub = key.publicKey.x963Representation
        let value = try key.signature(for: bytes).derRepresentation.base64EncodedString()
        return AuthorizationSignature(keyID: Self.keyID(of: pub), publicKey: pub.base64EncodedString(), value: value)
    }
}
