import Foundation
import KioskCore
import GRDB

/// A storage failure of ``CentralStore``.
public enum CentralStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The database file does not exist and the store was opened with `createIfMissing: false`.
    case databaseMissing(path: String)
    /// The database could not be opened or migrated.
    case cannotOpen(path: String, reason: String)
    /// A query or transaction failed (the transaction, if any, was rolled back).
    case database(String)

    /// A human-readable explanation.
    public var description: String {
        switch self {
        case .databaseMissing(let path): "no database at \(path)"
        case .cannotOpen(let path, let reason): "cannot open database \(path): \(reason)"
        case .database(let reason): "database error: \(reason)"
        }
    }
}

/// Central's SQLite store of applications and counters (GRDB, WAL, `synchronous=FULL`).
///
/// All methods are `async` and run on GRDB's own serial writer queue or reader pool, never on
/// the caller's thread or a NIO event loop. Several stores (or processes) may open the same
/// file; writes are serialized by SQLite.
public final class CentralStore: Sendable {
    /// The database file path.
    public let path: String
    private let pool: DatabasePool

    /// Opens (and, unless `createIfMissing` is false, creates) the database at `path`.
    public init(path: String, createIfMissing: Bool = true) throws(CentralStoreError) {
        self.path = path
        if !createIfMissing && !FileManager.default.fileExists(atPath: path) {
            throw .databaseMissing(path: path)
        }
        var configuration = Configuration()
        configuration.label = "kiosk-central"
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // DatabasePool already sets journal_mode=WAL; FULL makes every commit fsync the WAL.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(self.pool)
        } catch {
            throw .cannotOpen(path: path, reason: String(describing: error))
        }
    }

    private static let counterNames = ["accepted", "duplicate", "rejected", "requests", "faults_injected"]

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // `cursor` aliases the rowid (stable across VACUUM, unlike an implicit rowid);
            // `id` is the natural key.
            try db.execute(
                sql: """
                    CREATE TABLE applications (
                        cursor INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        device_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        payload_sha256 TEXT NOT NULL,
                        payload TEXT NOT NULL,
                        received_at TEXT NOT NULL
                    );
                    CREATE TABLE counters (
                        name TEXT PRIMARY KEY NOT NULL,
                        value INTEGER NOT NULL DEFAULT 0
                    );
                    """
            )
            for name in counterNames {
                try db.execute(sql: "INSERT INTO counters (name, value) VALUES (?, 0)", arguments: [name])
            }
        }
        migrator.registerMigration("v2-enrolment") { db in
            // Enrolment tokens are stored hashed (SHA-256 hex of the clear token); single use.
            try db.execute(
                sql: """
                    CREATE TABLE enrolment_tokens (
                        token_sha256 TEXT PRIMARY KEY NOT NULL,
                        merchant_id TEXT NOT NULL,
                        site TEXT,
                        created_at TEXT NOT NULL,
                        expires_at TEXT NOT NULL,
                        used_at TEXT,
                        device_id TEXT
                    );
                    CREATE TABLE devices (
                        device_id TEXT PRIMARY KEY NOT NULL,
                        merchant_id TEXT NOT NULL,
                        site TEXT,
                        status TEXT NOT NULL DEFAULT 'active',
                        certificate_sha256 TEXT NOT NULL,
                        public_key_sha256 TEXT NOT NULL,
                        certificate_pem TEXT NOT NULL,
                        not_after TEXT NOT NULL,
                        enrolled_at TEXT NOT NULL,
                        rotated_at TEXT,
                        revoked_at TEXT
                    );
                    CREATE TABLE central_keys (
                        name TEXT PRIMARY KEY NOT NULL,
                        private_key BLOB NOT NULL,
                        public_key BLOB NOT NULL,
                        created_at TEXT NOT NULL
                    );
                    """
            )
        }
        migrator.registerMigration("v3-device-keys") { db in
            // Every signing key a device has been enrolled or renewed with: envelopes sealed and
            // signed before a key rotation still verify against the device's own (older) key.
            try db.execute(
                sql: """
                    CREATE TABLE device_keys (
                        device_id TEXT NOT NULL,
                        public_key_sha256 TEXT NOT NULL,
                        registered_at TEXT NOT NULL,
                        PRIMARY KEY (device_id, public_key_sha256)
                    );
                    INSERT INTO device_keys (device_id, public_key_sha256, registered_at)
                        SELECT device_id, public_key_sha256, enrolled_at FROM devices;
                    """
            )
        }
        return migrator
    }

    // MARK: Reading

    /// The number of stored applications.
    public func count() async throws(CentralStoreError) -> Int {
        try await self.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM applications") ?? 0
        }
    }

    /// Every stored application, in arrival order.
    public func all() async throws(CentralStoreError) -> [StoredApplication] {
        try await self.read { db in
            try Row.fetchAll(db, sql: "\(Self.selectApplications) ORDER BY cursor").map(Self.application(from:))
        }
    }

    /// The stored application with this id, if any.
    public func application(id: String) async throws(CentralStoreError) -> StoredApplication? {
        try await self.read { db in
            try Row.fetchOne(db, sql: "\(Self.selectApplications) WHERE id = ?", arguments: [id])
                .map(Self.application(from:))
        }
    }

    /// Up to `limit` applications stored after `cursor`, in arrival order.
    public func page(after cursor: Int64, limit: Int) async throws(CentralStoreError) -> ApplicationPage {
        let limit = max(0, limit)
        return try await self.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: "\(Self.selectApplications) WHERE cursor > ? ORDER BY cursor LIMIT ?",
                arguments: [cursor, limit + 1]
            )
            let applications = rows.prefix(limit).map(Self.application(from:))
            let more = rows.count > limit
            return ApplicationPage(applications: applications, nextCursor: more ? applications.last?.cursor : nil)
        }
    }

    /// The persisted counters and the number of stored applications.
    public func stats() async throws(CentralStoreError) -> CentralStats {
        try await self.read { db in
            var counters: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, value FROM counters") {
                counters[row["name"]] = row["value"]
            }
            let stored = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM applications") ?? 0
            return CentralStats(
                stored: stored,
                accepted: counters["accepted"] ?? 0,
                duplicate: counters["duplicate"] ?? 0,
                rejected: counters["rejected"] ?? 0,
                requests: counters["requests"] ?? 0,
                faultsInjected: counters["faults_injected"] ?? 0
            )
        }
    }

    // MARK: Writing

    /// Validates and stores the items of one batch in one transaction, committed before returning.
    ///
    /// Per item, in order: checksum (`checksum_mismatch`), payload shape and id
    /// (`invalid_payload`), then the id's history: unseen → stored, `accepted`; seen with the
    /// same SHA → `duplicate`; seen with another SHA → `conflict`. A repeated id inside the
    /// same batch is judged against the earlier occurrence. The `requests` counter (and
    /// `faults_injected` when `faultInjected`) is incremented in the same transaction.
    public func ingest(
        deviceID: String,
        items: [BatchItem],
        faultInjected: Bool = false,
        receivedAt: Date = Date(),
        requireSealed: Bool = false
    ) async throws(CentralStoreError) -> [ItemResult] {
        // Sealed items need central's key and the device's registered key: read them first.
        let opener = try await self.sealingOpener()
        let registeredKeys = try await self.deviceKeys(id: deviceID)
        // CPU work (opening, hashing, JSON parsing) outside the write transaction.
        let verdicts = items.map { item -> (item: BatchItem, rejection: RejectionReason?, sealed: Bool) in
            switch Self.unseal(item, opener: opener, registeredKeys: registeredKeys) {
            case .refused(let reason): return (item, reason, true)
            case .plain: return (item, requireSealed ? .unsealed : Self.precheck(item), false)
            case .opened(let opened): return (opened, Self.precheck(opened), true)
            }
        }
        let timestamp = receivedAt.formatted(Self.timestampStyle)
        return try await self.write { db in
            var results: [ItemResult] = []
            results.reserveCapacity(verdicts.count)
            var accepted: Int64 = 0
            var duplicate: Int64 = 0
            var rejected: Int64 = 0
            for (item, rejection, sealed) in verdicts {
                if let rejection {
                    results.append(ItemResult(id: item.id, status: .rejected, reason: rejection))
                    rejected += 1
                    continue
                }
                let existing = try String.fetchOne(
                    db, sql: "SELECT payload_sha256 FROM applications WHERE id = ?", arguments: [item.id])
                switch existing {
                case nil:
                    try db.execute(
                        sql: """
                            INSERT INTO applications (id, device_id, sequence, payload_sha256, payload, received_at)
                            VALUES (?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [item.id, deviceID, item.sequence, item.payloadSHA256, item.payload, timestamp]
                    )
                    results.append(ItemResult(id: item.id, status: .accepted))
                    accepted += 1
                case item.payloadSHA256:
                    results.append(ItemResult(id: item.id, status: .duplicate))
                    duplicate += 1
                default:
                    results.append(ItemResult(id: item.id, status: .rejected, reason: sealed ? .replayed : .conflict))
                    rejected += 1
                }
            }
            try Self.increment(
                db,
                [
                    "accepted": accepted, "duplicate": duplicate, "rejected": rejected,
                    "requests": 1, "faults_injected": faultInjected ? 1 : 0,
                ])
            return results
        }
    }

    /// Counts a batch request that stored nothing (refused, or faulted before processing).
    public func recordRequest(faultInjected: Bool) async throws(CentralStoreError) {
        try await self.write { db in
            try Self.increment(db, ["requests": 1, "faults_injected": faultInjected ? 1 : 0])
        }
    }

    /// Closes the database connections; any later call fails with ``CentralStoreError/database(_:)``.
    public func close() throws(CentralStoreError) {
        do {
            try self.pool.close()
        } catch {
            throw .database(String(describing: error))
        }
    }

    /// The SQLite `journal_mode` in force (`wal` for a healthy store).
    public func journalMode() async throws(CentralStoreError) -> String {
        try await self.read { db in
            try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? ""
        }
    }

    // MARK: Validation

    /// The lowercase hex SHA-256 of a string's UTF-8 bytes.
    public static func sha256Hex(_ text: String) -> String { KioskCore.sha256Hex(Data(text.utf8)) }

    /// Whether `id` is 1…64 characters of `[A-Za-z0-9._-]`.
    public static func isValidID(_ id: String) -> Bool { ApplicationID.isValid(id) }

    private struct PayloadIdentity: Decodable {
        var id: String
    }

    /// The part of a payload whose signature central checks.
    private struct SignedPart: Decodable {
        struct Signature: Decodable {}
        struct AuthorizationHead: Decodable { var signature: Signature? }
        var authorization: AuthorizationHead?
    }

    private struct SignedAuthorization: Decodable {
        var authorization: Authorization
    }

    /// Central's sealing key as an opener, or nil while no key has been generated.
    func sealingOpener() async throws(CentralStoreError) -> ApplicationOpener? {
        let raw = try await self.read { db in
            try Data.fetchOne(db, sql: "SELECT private_key FROM central_keys WHERE name = 'sealing'")
        }
        return raw.flatMap { try? ApplicationOpener(privateKey: $0) }
    }

    /// What ``unseal(_:opener:registeredKeys:)`` makes of an item.
    enum Unsealed: Equatable {
        /// Not an envelope: judged as it is.
        case plain
        /// The item with its opened plaintext (and that plaintext's SHA, so dedupe compares content).
        case opened(BatchItem)
        /// The envelope is refused.
        case refused(RejectionReason)
    }

    /// Opens a sealed item.
    ///
    /// The item's checksum covers the envelope as sent. The envelope's device key must be
    /// one enrolled (now or before a rotation) for `deviceID` when the device is enrolled
    /// (`wrong_device`); `registeredKeys` is nil for a device outside the registry.
    static func unseal(_ item: BatchItem, opener: ApplicationOpener?, registeredKeys: Set<String>?) -> Unsealed {
        guard let decoded = SealedEnvelope.decodeIfSealed(Data(item.payload.utf8)) else { return .plain }
        guard sha256Hex(item.payload) == item.payloadSHA256 else { return .refused(.checksumMismatch) }
        guard let envelope = decoded, let opener else { return .refused(.badSeal) }
        let opened: ApplicationOpener.Opened
        do throws(SealError) {
            opened = try opener.open(envelope, id: item.id)
        } catch {
            return .refused(error == .badSignature ? .badSignature : .badSeal)
        }
        if let registeredKeys, !registeredKeys.contains(opened.devicePublicKeySHA256) {
            return .refused(.wrongDevice)
        }
        // The authorization inside must have been signed by the key that signed the envelope.
        if let signer = (try? JSONDecoder().decode(SignedAuthorization.self, from: opened.payload))?.authorization.signature,
           signer.publicKey != opened.devicePublicKey.base64EncodedString()
        {
            return .refused(.signerMismatch)
        }
        let plain = String(decoding: opened.payload, as: UTF8.self)
        return .opened(BatchItem(id: item.id, sequence: item.sequence, payloadSHA256: sha256Hex(plain), payload: plain))
    }

    /// The rejection an item earns before its history is looked at, if any.
    static func precheck(_ item: BatchItem) -> RejectionReason? {
        guard sha256Hex(item.payload) == item.payloadSHA256 else { return .checksumMismatch }
        guard isValidID(item.id),
            let identity = try? JSONDecoder().decode(PayloadIdentity.self, from: Data(item.payload.utf8)),
            identity.id == item.id
        else { return .invalidPayload }
        let payload = Data(item.payload.utf8)
        if (try? JSONDecoder().decode(SignedPart.self, from: payload))?.authorization?.signature != nil {
            guard let signed = try? JSONDecoder().decode(SignedAuthorization.self, from: payload),
                  (try? AuthorizationSigner.verify(signed.authorization)) != nil
            else { return .badSignature }
        }
        return nil
    }

    // MARK: Plumbing

    private static let selectApplications =
        "SELECT cursor, id, device_id, sequence, payload_sha256, payload, received_at FROM applications"

    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    private static func application(from row: Row) -> StoredApplication {
        StoredApplication(
            cursor: row["cursor"],
            id: row["id"],
            deviceID: row["device_id"],
            sequence: row["sequence"],
            payloadSHA256: row["payload_sha256"],
            payload: row["payload"],
            receivedAt: row["received_at"]
        )
    }

    private static func increment(_ db: Database, _ deltas: [String: Int64]) throws {
        for (name, delta) in deltas where delta != 0 {
            try db.execute(sql: "UPDATE counters SET value = value + ? WHERE name = ?", arguments: [delta, name])
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(CentralStoreError) -> T {
        do {
            return try await self.pool.read(body)
        } catch {
            throw .database(String(describing: error))
        }
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(CentralStoreError) -> T {
        do {
            return try await self.pool.write(body)
        } catch {
            throw .database(String(describing: error))
        }
    }
}
