import Foundation
import GRDB
import KioskCore

/// A checkout row that could not be read back (its JSON document is damaged).
public struct CorruptCheckout: Error, Sendable, Equatable, CustomStringConvertible {
    /// The checkout's id.
    public var id: String
    /// The state column (readable even when the document is not).
    public var state: String
    /// Why the document could not be decoded.
    public var reason: String
    /// A one-line explanation.
    public var description: String { "checkout \(id) (state \(state)): \(reason)" }
}

/// Checkouts persisted beside the outbox, in the same SQLite database.
///
/// With a ``CheckoutRedactor`` (sealing on) only the redacted checkout is ever written.
///
/// Every transition is a durable commit (`synchronous=FULL`), so a power cut never loses a
/// confirmed consent; the transition to `enqueued` commits in the same transaction as the
/// application's outbox row (``enqueue(id:payload:recording:now:)``), so there is never an
/// application without its checkout nor an `enqueued` checkout without its application.
extension Outbox {
    static func encodeCheckout(_ checkout: Checkout) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(checkout)
    }

    private static func upsertCheckout(_ db: Database, _ checkout: Checkout, document: Data, nowMillis: Int64) throws {
        let started = checkout.history.first?.at.wallClockMillis ?? nowMillis
        try db.execute(sql: """
            INSERT INTO checkout (id, state, is_final, payment_token, terminal_serial, application_id, started_at, updated_at, document)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET state = excluded.state, is_final = excluded.is_final,
                application_id = excluded.application_id, updated_at = excluded.updated_at, document = excluded.document
            """, arguments: [checkout.id, checkout.state.rawValue, checkout.state.isFinal ? 1 : 0, checkout.payment.terminalToken,
                             checkout.terminalSerial, checkout.applicationID, started, nowMillis, document])
    }

    /// Durably records a checkout's current state (insert or update), returning once it is on disk.
    public func saveCheckout(_ checkout: Checkout, now: Date = Date()) throws {
        let checkout = redactor?.redact(checkout) ?? checkout
        let document = try Self.encodeCheckout(checkout)
        try PCIGuard.check(json: document)
        let nowMillis = Millis.from(now)
        try write { db in try Self.upsertCheckout(db, checkout, document: document, nowMillis: nowMillis) }
    }

    /// Durably enqueues an application and records its checkout's `enqueued` state in one
    /// transaction; returns the outbox sequence. The same refusals as ``enqueue(id:payload:now:)``
    /// apply, and on a refusal the checkout is not updated either.
    public func enqueue(id: String, payload: Data, recording checkout: Checkout, now: Date = Date()) throws -> Int64 {
        let checkout = redactor?.redact(checkout) ?? checkout
        let document = try Self.encodeCheckout(checkout)
        try PCIGuard.check(json: document)
        let nowMillis = Millis.from(now)
        return try enqueue(contentsOf: CollectionOfOne((id: id, payload: payload)), now: now) { db in
            try Self.upsertCheckout(db, checkout, document: document, nowMillis: nowMillis)
        }[0]
    }

    /// One checkout by id (nil when unknown); throws ``OutboxError/corruptCheckout(_:)`` for a damaged row.
    public func checkout(id: String) throws -> Checkout? {
        let row = try read { db in try Row.fetchOne(db, sql: "SELECT id, state, document FROM checkout WHERE id = ?", arguments: [id]) }
        guard let row else { return nil }
        switch Self.decodeCheckout(row) {
        case let .success(c): return c
        case let .failure(corrupt): throw OutboxError.corruptCheckout(corrupt.description)
        }
    }

    /// Checkouts not in a final state (to recover after a restart), oldest first, and the rows that
    /// could not be decoded (reported, never silently dropped).
    public func openCheckouts() throws -> (checkouts: [Checkout], corrupt: [CorruptCheckout]) {
        let rows = try read { db in
            try Row.fetchAll(db, sql: "SELECT id, state, document FROM checkout WHERE is_final = 0 ORDER BY started_at, id")
        }
        return Self.decodeAll(rows)
    }

    /// The most recent checkouts, newest first.
    public func recentCheckouts(limit: Int = 50) throws -> (checkouts: [Checkout], corrupt: [CorruptCheckout]) {
        let rows = try read { db in
            try Row.fetchAll(db, sql: "SELECT id, state, document FROM checkout ORDER BY updated_at DESC, id DESC LIMIT ?", arguments: [limit])
        }
        return Self.decodeAll(rows)
    }

    /// When a credit offer was last started for this payment token (any checkout but `excluding`),
    /// for the eligibility cool-down; nil when never.
    public func lastCheckoutStart(token: String, excluding: String? = nil) throws -> Date? {
        let millis = try read { db in
            try Int64.fetchOne(db, sql: "SELECT max(started_at) FROM checkout WHERE payment_token = ? AND id IS NOT ?",
                               arguments: [redactor?.tokenKey(token) ?? token, excluding])
        }
        return millis.map(Millis.date)
    }

    /// Counts of checkouts per state (for status and tests).
    public func checkoutCounts() throws -> [String: Int] {
        try read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM checkout GROUP BY state") {
                counts[row["state"]] = row["n"]
            }
            return counts
        }
    }

    /// Deletes final checkouts last updated before `olderThan`; returns how many.
    public func purgeCheckouts(olderThan: Date) throws -> Int {
        let cutoff = Millis.from(olderThan)
        return try write(durable: false) { db in
            try db.execute(sql: "DELETE FROM checkout WHERE is_final = 1 AND updated_at < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    private static func decodeAll(_ rows: [Row]) -> (checkouts: [Checkout], corrupt: [CorruptCheckout]) {
        var checkouts: [Checkout] = []
        var corrupt: [CorruptCheckout] = []
        for row in rows {
            switch decodeCheckout(row) {
            case let .success(c): checkouts.append(c)
            case let .failure(c): corrupt.append(c)
            }
        }
        return (checkouts, corrupt)
    }

    private static func decodeCheckout(_ row: Row) -> Result<Checkout, CorruptCheckout> {
        let id: String = row["id"] ?? "?"
        let state: String = row["state"] ?? "?"
        guard let data: Data = row["document"] else {
            return .failure(CorruptCheckout(id: id, state: state, reason: "no document"))
        }
        do {
            let checkout = try JSONDecoder().decode(Checkout.self, from: data)
            guard checkout.id == id else {
                return .failure(CorruptCheckout(id: id, state: state, reason: "document holds checkout \(checkout.id)"))
            }
            return .success(checkout)
        } catch {
            return .failure(CorruptCheckout(id: id, state: state, reason: "undecodable document (\(data.count) bytes)"))
        }
    }
}
