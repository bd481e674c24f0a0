import Crypto
import Foundation

/// A device signature over an authorization record (ECDSA P-256 over SHA-256).
public struct AuthorizationSignature: Codable, Sendable, Equatable {
    /// The algorithm: always "ES256" (ECDSA P-256, SHA-256, DER-encoded signature).
    public var algorithm: String
    /// Identifier of the signing key: the first 16 hex digits of the SHA-256 of its public key (X9.63).
    public var keyID: String
    /// The signer's public key, X9.63 uncompressed, base64. Central binds it to the device's
    /// registered key; on its own it proves integrity, not authenticity.
    public var publicKey: String
    /// The DER signature, base64.
    public var value: String

    /// Creates a signature record.
    public init(algorithm: String = "ES256", keyID: String, publicKey: String, value: String) {
        self.algorithm = algorithm
        self.keyID = keyID
        self.publicKey = publicKey
        self.value = value
    }

    enum CodingKeys: String, CodingKey {
        case algorithm = "alg", keyID = "key_id", publicKey = "public_key", value
    }
}

/// Why a signature did not verify.
public enum AuthorizationSignatureError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The record carries no signature.
    case unsigned
    /// The algorithm is not ES256.
    case unsupportedAlgorithm(String)
    /// The public key or signature bytes are not valid base64 / P-256 / DER.
    case malformed(String)
    /// The key id does not match the public key.
    case keyIDMismatch
    /// The signature does not match the record (tampered).
    case invalid

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .unsigned: "the authorization is not signed"
        case let .unsupportedAlgorithm(a): "unsupported signature algorithm \(a)"
        case let .malformed(what): "malformed signature: \(what)"
        case .keyIDMismatch: "the signature's key id does not match its public key"
        case .invalid: "the signature does not match the authorization record"
        }
    }
}

/// Signs authorization records with the device key.
///
/// The signed bytes are the canonical JSON of the ``Authorization`` with `signature` removed;
/// any change to the consent hash, times, method, terminal serial, transaction reference or
/// request id breaks it.
public struct AuthorizationSigner: Sendable {
    /// The private scalar (P256.Signing.PrivateKey is not `Sendable`; it is rebuilt per use).
    private let raw: Data
    var key: P256.Signing.PrivateKey {
        // `raw` came from a valid key, so this cannot fail.
        (try? P256.Signing.PrivateKey(rawRepresentation: raw)) ?? P256.Signing.PrivateKey()
    }

    /// Wraps a private key.
    public init(key: P256.Signing.PrivateKey) {
        raw = key.rawRepresentation
    }

    /// Loads a PEM (PKCS#8 or SEC1) private key.
    public init(pem: String) throws {
        raw = try P256.Signing.PrivateKey(pemRepresentation: pem).rawRepresentation
    }

    /// A new random key (for tests and the first start of a development kiosk).
    public static func generate() -> AuthorizationSigner { AuthorizationSigner(key: P256.Signing.PrivateKey()) }

    /// The private key as PKCS#8 PEM (to store with mode 0600).
    public var pemRepresentation: String { key.pemRepresentation }

    /// The key id (see ``AuthorizationSignature/keyID``).
    public var keyID: String { Self.keyID(of: key.publicKey.x963Representation) }

    static func keyID(of publicKey: Data) -> String { String(sha256Hex(publicKey).prefix(16)) }

    /// The bytes a signature covers.
    public static func signedBytes(_ authorization: Authorization) throws -> Data {
        var a = authorization
        a.signature = nil
        return try CanonicalJSON.encode(a)
    }

    /// Returns `authorization` with its signature set.
    public func sign(_ authorization: Authorization) throws -> Authorization {
        let key = self.key
        let signature = try key.signature(for: Self.signedBytes(authorization))
        var a = authorization
        let pub = key.publicKey.x963Representation
        a.signature = AuthorizationSignature(keyID: Self.keyID(of: pub), publicKey: pub.base64EncodedString(),
                                             value: signature.derRepresentation.base64EncodedString())
        return a
    }

    /// Verifies the signature of a record; returns the signer's key id.
    @discardableResult
    public static func verify(_ authorization: Authorization) throws(AuthorizationSignatureError) -> String {
        guard let sig = authorization.signature else { throw .unsigned }
        guard sig.algorithm == "ES256" else { throw .unsupportedAlgorithm(sig.algorithm) }
        guard let pubBytes = Data(base64Encoded: sig.publicKey), let key = try? P256.Signing.PublicKey(x963Representation: pubBytes) else {
            throw .malformed("public key")
        }
        guard keyID(of: pubBytes) == sig.keyID else { throw .keyIDMismatch }
        guard let der = Data(base64Encoded: sig.value), let signature = try? P256.Signing.ECDSASignature(derRepresentation: der) else {
            throw .malformed("signature value")
        }
        guard let bytes = try? signedBytes(authorization), key.isValidSignature(signature, for: bytes) else { throw .invalid }
        return sig.keyID
    }
}
