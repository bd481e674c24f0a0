import Crypto
import Foundation
import GRDB
import KioskCore

/// The outcome of an enrolment or renewal transaction: the issued identity, or why not.
public enum EnrolmentOutcome: Sendable {
    /// A certificate was issued and the registry updated.
    case issued(DeviceRecord, certificatePEM: String)
    /// The request was refused; nothing changed.
    case refused(EnrolmentRefusal)
}

extension CentralStore {
    /// The HPKE suite of central's sealing key, as published to devices.
    public static let sealingKeyAlgorithm = "HPKE-Base-X25519-SHA256-ChaChaPoly"

    /// The hash under which a clear token is stored.
    public static func tokenHash(_ token: String) -> String { sha256Hex(token) }

    // MARK: Tokens

    /// Creates a one-time enrolment token for a merchant (and site), valid for `ttl`.
    public func createToken(merchantID: String, site: String?, ttl: Duration, now: Date = Date())
        async throws(CentralStoreError) -> IssuedToken
    {
        let token = "ket_" + Self.randomHex(20)
        let expires = now.addingTimeInterval(TimeInterval(ttl.components.seconds))
        let created = now.formatted(Self.timestampStyle)
        let expiresText = expires.formatted(Self.timestampStyle)
        let hash = Self.tokenHash(token)
        try await self.write { db in
            try db.execute(
                sql: """
                    INSERT INTO enrolment_tokens (token_sha256, merchant_id, site, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [hash, merchantID, site, created, expiresText])
        }
        return IssuedToken(token: token, merchantID: merchantID, site: site, expiresAt: expiresText)
    }

    // MARK: Enrolment

    /// Checks the token, assigns a device id, issues its certificate and registers it, in one transaction.
    ///
    /// Order of checks: unknown token (401 `token_unknown`), used (409 `token_used`), expired
    /// (403 `token_expired`), merchant or site differing from the token's (403). The token is
    /// marked used only when the certificate was issued.
    public func enrol(
        _ request: EnrolRequest, csr: DeviceCA.VerifiedCSR, ca: DeviceCA, now: Date = Date()
    ) async throws(CentralStoreError) -> EnrolmentOutcome {
        let hash = Self.tokenHash(request.token)
        let timestamp = now.formatted(Self.timestampStyle)
        return try await self.write { db -> EnrolmentOutcome in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT merchant_id, site, expires_at, used_at FROM enrolment_tokens WHERE token_sha256 = ?",
                    arguments: [hash])
            else { return .refused(.tokenUnknown) }
            let merchantID: String = row["merchant_id"]
            let site: String? = row["site"]
            let expiresAt: String = row["expires_at"]
            if (row["used_at"] as String?) != nil { return .refused(.tokenUsed) }
            if let expiry = try? Self.timestampStyle.parse(expiresAt), expiry <= now { return .refused(.tokenExpired) }
            if let wanted = request.merchantID, !wanted.isEmpty, wanted != merchantID { return .refused(.merchantMismatch) }
            if let wanted = request.site, !wanted.isEmpty, let site, wanted != site { return .refused(.siteMismatch) }

            var deviceID = "kiosk-" + Self.randomHex(6)
            while try Bool.fetchOne(db, sql: "SELECT 1 FROM devices WHERE device_id = ?", arguments: [deviceID]) == true {
                deviceID = "kiosk-" + Self.randomHex(6)
            }
            let issued = try ca.issue(deviceID: deviceID, publicKey: csr.publicKey, now: now)
            let record = DeviceRecord(
                deviceID: deviceID, merchantID: merchantID, site: site ?? request.site, status: "active",
                certificateSHA256: issued.sha256, publicKeySHA256: csr.publicKeySHA256,
                notAfter: issued.notAfter.formatted(Self.timestampStyle), enrolledAt: timestamp)
            try db.execute(
                sql: """
                    INSERT INTO devices (device_id, merchant_id, site, status, certificate_sha256, public_key_sha256,
                                         certificate_pem, not_after, enrolled_at)
                    VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    deviceID, merchantID, record.site, issued.sha256, csr.publicKeySHA256, issued.pem, record.notAfter,
                    timestamp,
                ])
            try Self.registerKey(db, deviceID: deviceID, publicKeySHA256: csr.publicKeySHA256, at: timestamp)
            try db.execute(
                sql: "UPDATE enrolment_tokens SET used_at = ?, device_id = ? WHERE token_sha256 = ?",
                arguments: [timestamp, deviceID, hash])
            return .issued(record, certificatePEM: issued.pem)
        }
    }

    /// Issues a new certificate for a registered, active device that authenticated with its
    /// current certificate; the old certificate is superseded at once.
    public func renew(
        deviceID: String, presentedCertificateSHA256: String?, csr: DeviceCA.VerifiedCSR, ca: DeviceCA,
        now: Date = Date()
    ) async throws(CentralStoreError) -> EnrolmentOutcome {
        let timestamp = now.formatted(Self.timestampStyle)
        return try await self.write { db -> EnrolmentOutcome in
            guard let current = try Self.device(db, id: deviceID) else { return .refused(.deviceNotRegistered) }
            if current.isRevoked { return .refused(.deviceRevoked) }
            guard presentedCertificateSHA256 == current.certificateSHA256 else {
                return .refused(.certificateSuperseded)
            }
            let issued = try ca.issue(deviceID: deviceID, publicKey: csr.publicKey, now: now)
            try db.execute(
                sql: """
                    UPDATE devices SET certificate_sha256 = ?, public_key_sha256 = ?, certificate_pem = ?, not_after = ?,
                                       rotated_at = ?
                    WHERE device_id = ?
                    """,
                arguments: [
                    issued.sha256, csr.publicKeySHA256, issued.pem, issued.notAfter.formatted(Self.timestampStyle),
                    timestamp, deviceID,
                ])
            try Self.registerKey(db, deviceID: deviceID, publicKeySHA256: csr.publicKeySHA256, at: timestamp)
            guard let record = try Self.device(db, id: deviceID) else { return .refused(.deviceNotRegistered) }
            return .issued(record, certificatePEM: issued.pem)
        }
    }

    // MARK: Registry

    /// Records a signing key of a device (SHA-256 of its SubjectPublicKeyInfo DER).
    private static func registerKey(_ db: Database, deviceID: String, publicKeySHA256: String, at timestamp: String) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO device_keys (device_id, public_key_sha256, registered_at) VALUES (?, ?, ?)",
            arguments: [deviceID, publicKeySHA256, timestamp])
    }

    /// Every key the device has been enrolled or renewed with, or nil for a device not in the registry.
    public func deviceKeys(id: String) async throws(CentralStoreError) -> Set<String>? {
        try await self.read { db -> Set<String>? in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM devices WHERE device_id = ?", arguments: [id]) == true else {
                return nil
            }
            return Set(try String.fetchAll(db, sql: "SELECT public_key_sha256 FROM device_keys WHERE device_id = ?", arguments: [id]))
        }
    }

    /// Every registered device, by id.
    public func devices() async throws(CentralStoreError) -> [DeviceRecord] {
        try await self.read { db in
            try Row.fetchAll(db, sql: "\(Self.selectDevices) ORDER BY device_id").map(Self.device(from:))
        }
    }

    /// The registered device with this id, if any.
    public func device(id: String) async throws(CentralStoreError) -> DeviceRecord? {
        try await self.read { db in try Self.device(db, id: id) }
    }

    /// Revokes a device: its syncs and renewals are refused from now on. Returns `false` for an unknown id.
    @discardableResult
    public func revoke(deviceID: String, now: Date = Date()) async throws(CentralStoreError) -> Bool {
        let timestamp = now.formatted(Self.timestampStyle)
        return try await self.write { db in
            try db.execute(
                sql: "UPDATE devices SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?) WHERE device_id = ?",
                arguments: [timestamp, deviceID])
            return db.changesCount > 0
        }
    }

    /// Why a batch from this client certificate must be refused, if it must.
    ///
    /// Devices that were never enrolled here (certificates from the dev PKI) are not in the
    /// registry and are judged by the TLS layer alone.
    public func syncRefusal(deviceID: String, certificateSHA256: String?) async throws(CentralStoreError)
        -> EnrolmentRefusal?
    {
        guard let device = try await self.device(id: deviceID) else { return nil }
        if device.isRevoked { return .deviceRevoked }
        if device.certificateSHA256 != certificateSHA256 { return .certificateSuperseded }
        return nil
    }

    // MARK: Sealing key

    /// Central's public sealing key (raw X25519, 32 bytes); generated and stored on first use.
    public func sealingPublicKey(now: Date = Date()) async throws(CentralStoreError) -> Data {
        let timestamp = now.formatted(Self.timestampStyle)
        return try await self.write { db in
            if let existing = try Data.fetchOne(db, sql: "SELECT public_key FROM central_keys WHERE name = 'sealing'") {
                return existing
            }
            let key = Curve25519.KeyAgreement.PrivateKey()
            try db.execute(
                sql: "INSERT INTO central_keys (name, private_key, public_key, created_at) VALUES ('sealing', ?, ?, ?)",
                arguments: [key.rawRepresentation, key.publicKey.rawRepresentation, timestamp])
            return key.publicKey.rawRepresentation
        }
    }

    // MARK: Plumbing

    private static let selectDevices = """
        SELECT device_id, merchant_id, site, status, certificate_sha256, public_key_sha256, not_after,
               enrolled_at, rotated_at, revoked_at FROM devices
        """

    private static func device(_ db: Database, id: String) throws -> DeviceRecord? {
        try Row.fetchOne(db, sql: "\(selectDevices) WHERE device_id = ?", arguments: [id]).map(device(from:))
    }

    private static func device(from row: Row) -> DeviceRecord {
        DeviceRecord(
            deviceID: row["device_id"], merchantID: row["merchant_id"], site: row["site"], status: row["status"],
            certificateSHA256: row["certificate_sha256"], publicKeySHA256: row["public_key_sha256"],
            notAfter: row["not_after"], enrolledAt: row["enrolled_at"], rotatedAt: row["rotated_at"],
            revokedAt: row["revoked_at"])
    }

    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
