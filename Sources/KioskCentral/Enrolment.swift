import Crypto
import Foundation
import KioskCore
import SwiftASN1
import X509

/// How central enrols devices: the listener without client certificates and the issuing CA.
public struct EnrolmentConfiguration: Sendable {
    /// The address of the enrolment listener (TLS, server certificate only), e.g. `127.0.0.1`.
    public var host: String
    /// Its TCP port; `0` picks an ephemeral port (see ``CentralServer/enrolmentPort``).
    public var port: Int
    /// The issuing CA's certificate (PEM; the first certificate whose key matches ``caKeyPath``).
    public var caCertificatePath: String
    /// The issuing CA's private key (PEM, P-256).
    public var caKeyPath: String
    /// How long an issued device certificate is valid.
    public var certificateValidity: Duration

    /// The default validity of a device certificate: 90 days.
    public static let defaultValidity = Duration.seconds(90 * 24 * 3600)

    /// Creates an enrolment configuration.
    public init(
        host: String = "127.0.0.1", port: Int = 0, caCertificatePath: String, caKeyPath: String,
        certificateValidity: Duration = EnrolmentConfiguration.defaultValidity
    ) {
        self.host = host
        self.port = port
        self.caCertificatePath = caCertificatePath
        self.caKeyPath = caKeyPath
        self.certificateValidity = certificateValidity
    }
}

/// Why an enrolment, a renewal or a sync is refused; the raw value is the wire `reason`.
public enum EnrolmentRefusal: String, Error, Sendable, Codable, CaseIterable {
    /// The token was never issued (or is malformed).
    case tokenUnknown = "token_unknown"
    /// The token's time to live has passed.
    case tokenExpired = "token_expired"
    /// The token was already used to enrol a device.
    case tokenUsed = "token_used"
    /// The request names another merchant than the token.
    case merchantMismatch = "merchant_mismatch"
    /// The request names another site than the token.
    case siteMismatch = "site_mismatch"
    /// The CSR is not PEM, not a CSR, not P-256, or its signature does not verify.
    case badCSR = "bad_csr"
    /// The device was revoked by an operator.
    case deviceRevoked = "device_revoked"
    /// The client certificate is not the device's current one (it was rotated since).
    case certificateSuperseded = "certificate_superseded"
    /// The client certificate's CN is not a registered device (renewal only).
    case deviceNotRegistered = "device_not_registered"

    /// The HTTP status this refusal is answered with.
    public var httpStatus: Int {
        switch self {
        case .tokenUnknown: 401
        case .tokenUsed: 409
        case .badCSR: 400
        case .tokenExpired, .merchantMismatch, .siteMismatch, .deviceRevoked, .certificateSuperseded,
            .deviceNotRegistered:
            403
        }
    }
}

/// `POST /v1/enrol`: a one-time token and a CSR made on the device.
public struct EnrolRequest: Codable, Sendable, Equatable {
    /// The one-time enrolment token (`kiosk-central token create`).
    public var token: String
    /// The PKCS#10 certificate signing request, PEM, P-256, signed by the device key.
    public var csrPEM: String
    /// The merchant the technician expects; must equal the token's when given.
    public var merchantID: String?
    /// The site the technician expects; must equal the token's when the token names one.
    public var site: String?

    /// Creates a request.
    public init(token: String, csrPEM: String, merchantID: String? = nil, site: String? = nil) {
        self.token = token
        self.csrPEM = csrPEM
        self.merchantID = merchantID
        self.site = site
    }

    enum CodingKeys: String, CodingKey {
        case token
        case csrPEM = "csr_pem"
        case merchantID = "merchant_id"
        case site
    }
}

/// `POST /v1/enrol/renew`: a new CSR, authenticated by the device's current certificate.
public struct RenewRequest: Codable, Sendable, Equatable {
    /// The PKCS#10 certificate signing request for the new key, PEM.
    public var csrPEM: String

    /// Creates a request.
    public init(csrPEM: String) { self.csrPEM = csrPEM }

    enum CodingKeys: String, CodingKey { case csrPEM = "csr_pem" }
}

/// The answer to an enrolment or a renewal: everything the device needs to sync.
public struct EnrolResponse: Codable, Sendable, Equatable {
    /// The device id assigned by central (the issued certificate's CN).
    public var deviceID: String
    /// The merchant the token enrolled the device for.
    public var merchantID: String
    /// The site, if the token named one.
    public var site: String?
    /// The issued client certificate, PEM.
    public var certificatePEM: String
    /// Central's CA certificate, PEM (the issuer of device certificates and, in the reference
    /// deployment, of central's server certificate).
    public var caPEM: String
    /// Central's public sealing key, base64 of the raw 32-byte X25519 public key.
    public var sealingPublicKey: String
    /// The sealing key's algorithm (HPKE suite).
    public var sealingKeyAlgorithm: String
    /// The certificate's expiry, RFC 3339.
    public var notAfter: String

    /// Creates a response.
    public init(
        deviceID: String, merchantID: String, site: String?, certificatePEM: String, caPEM: String,
        sealingPublicKey: String, sealingKeyAlgorithm: String, notAfter: String
    ) {
        self.deviceID = deviceID
        self.merchantID = merchantID
        self.site = site
        self.certificatePEM = certificatePEM
        self.caPEM = caPEM
        self.sealingPublicKey = sealingPublicKey
        self.sealingKeyAlgorithm = sealingKeyAlgorithm
        self.notAfter = notAfter
    }

    enum CodingKeys: String, CodingKey {
        case deviceID = "device_id"
        case merchantID = "merchant_id"
        case site
        case certificatePEM = "certificate_pem"
        case caPEM = "ca_pem"
        case sealingPublicKey = "sealing_public_key"
        case sealingKeyAlgorithm = "sealing_key_algorithm"
        case notAfter = "not_after"
    }
}

/// A device in central's registry.
public struct DeviceRecord: Codable, Sendable, Equatable {
    /// The device id (its certificate's CN).
    public var deviceID: String
    /// The merchant it was enrolled for.
    public var merchantID: String
    /// The site, if any.
    public var site: String?
    /// `active` or `revoked`.
    public var status: String
    /// SHA-256 (hex) of the DER of the device's current certificate.
    public var certificateSHA256: String
    /// SHA-256 (hex) of the DER SubjectPublicKeyInfo of the device's current key.
    public var publicKeySHA256: String
    /// The current certificate's expiry, RFC 3339.
    public var notAfter: String
    /// When the device was enrolled, RFC 3339.
    public var enrolledAt: String
    /// When its certificate was last rotated, if ever.
    public var rotatedAt: String?
    /// When it was revoked, if it was.
    public var revokedAt: String?

    /// Whether the device was revoked.
    public var isRevoked: Bool { self.status == "revoked" }

    enum CodingKeys: String, CodingKey {
        case deviceID = "device_id"
        case merchantID = "merchant_id"
        case site, status
        case certificateSHA256 = "certificate_sha256"
        case publicKeySHA256 = "public_key_sha256"
        case notAfter = "not_after"
        case enrolledAt = "enrolled_at"
        case rotatedAt = "rotated_at"
        case revokedAt = "revoked_at"
    }
}

/// A freshly created enrolment token; the clear text is shown once and stored only hashed.
public struct IssuedToken: Codable, Sendable, Equatable {
    /// The token to hand to the technician.
    public var token: String
    /// The merchant it enrols devices for.
    public var merchantID: String
    /// The site, if any.
    public var site: String?
    /// When it expires, RFC 3339.
    public var expiresAt: String

    enum CodingKeys: String, CodingKey {
        case token
        case merchantID = "merchant_id"
        case site
        case expiresAt = "expires_at"
    }
}

/// A failure to load or use the issuing CA.
public struct DeviceCAError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// The message.
    public var description: String { self.message }
}

/// Central's issuing CA: signs device certificates from verified CSRs (swift-certificates).
public struct DeviceCA: Sendable {
    /// The CA certificate.
    public let certificate: Certificate
    /// The CA certificate, PEM.
    public let certificatePEM: String
    private let key: Certificate.PrivateKey
    /// How long issued certificates are valid.
    public let validity: Duration

    /// Loads the CA certificate and key; the certificate is the first in the file whose key matches.
    public init(certificatePath: String, keyPath: String, validity: Duration = EnrolmentConfiguration.defaultValidity)
        throws(DeviceCAError)
    {
        do {
            let keyPEM = try String(contentsOfFile: keyPath, encoding: .utf8)
            let signingKey = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
            self.key = Certificate.PrivateKey(signingKey)
            let bundle = try String(contentsOfFile: certificatePath, encoding: .utf8)
            let documents = try PEMDocument.parseMultiple(pemString: bundle)
            var match: Certificate?
            for document in documents where document.discriminator == "CERTIFICATE" {
                let certificate = try Certificate(pemDocument: document)
                if certificate.publicKey == self.key.publicKey {
                    match = certificate
                    break
                }
            }
            guard let match else {
                throw DeviceCAError(message: "no certificate in \(certificatePath) matches the key \(keyPath)")
            }
            self.certificate = match
            self.certificatePEM = try match.serializeAsPEM().pemString + "\n"
        } catch let error as DeviceCAError {
            throw error
        } catch {
            throw DeviceCAError(message: "cannot load the CA: \(error)")
        }
        self.validity = validity
    }

    /// A CSR that parsed and whose self-signature verified.
    public struct VerifiedCSR: Sendable {
        /// The requested public key (P-256).
        public var publicKey: Certificate.PublicKey
        /// SHA-256 hex of the DER SubjectPublicKeyInfo.
        public var publicKeySHA256: String
    }

    /// Parses a PEM CSR and checks its signature and key type.
    public static func verify(csrPEM: String) throws(EnrolmentRefusal) -> VerifiedCSR {
        guard let csr = try? CertificateSigningRequest(pemEncoded: csrPEM) else { throw .badCSR }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else { throw .badCSR }
        guard P256.Signing.PublicKey(csr.publicKey) != nil else { throw .badCSR }
        var serializer = DER.Serializer()
        guard (try? serializer.serialize(csr.publicKey)) != nil else { throw .badCSR }
        return VerifiedCSR(publicKey: csr.publicKey, publicKeySHA256: sha256Hex(Data(serializer.serializedBytes)))
    }

    /// An issued certificate.
    public struct Issued: Sendable {
        /// PEM of the certificate.
        public var pem: String
        /// SHA-256 hex of its DER.
        public var sha256: String
        /// Its expiry.
        public var notAfter: Date
    }

    /// Signs a client certificate (CN = device id, clientAuth) for a verified key.
    public func issue(deviceID: String, publicKey: Certificate.PublicKey, now: Date = Date()) throws(DeviceCAError)
        -> Issued
    {
        let notAfter = now.addingTimeInterval(TimeInterval(self.validity.components.seconds))
        do {
            let subject = try DistinguishedName {
                OrganizationName("kiosk-agent")
                CommonName(deviceID)
            }
            var extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                SubjectKeyIdentifier(hash: publicKey)
            }
            if let ski = try self.certificate.extensions.subjectKeyIdentifier {
                try extensions.append(Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: ski.keyIdentifier), critical: false))
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-300), notValidAfter: notAfter,
                issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: self.key)
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return Issued(
                pem: try certificate.serializeAsPEM().pemString + "\n",
                sha256: sha256Hex(Data(serializer.serializedBytes)), notAfter: notAfter)
        } catch {
            throw DeviceCAError(message: "cannot issue a certificate for \(deviceID): \(error)")
        }
    }
}
