import GRDB

/// Database schema of the outbox.
///
/// Migrations are append-only: once a migration has shipped it is never edited; schema changes
/// go into a new migration registered after the existing ones.
///
/// Dates are stored as INTEGER milliseconds since 1970-01-01T00:00:00Z.
enum OutboxSchema {
    /// Identifiers of all migrations, in order.
    static let migrationIdentifiers = ["v1-outbox", "v2-checkouts"]

    /// The migrator that brings any outbox database to the current schema.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-outbox", foreignKeyChecks: .immediate) { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2-checkouts", foreignKeyChecks: .immediate) { db in
            try db.execute(sql: v2)
        }
        return migrator
    }

    /// v1: the outbox, its delivery-order index, the quarantine, and per-state counters kept exact by
    /// triggers so capacity checks and `stats()` are O(1) whatever the backlog.
    static let v1 = """
        CREATE TABLE outbox (
            sequence        INTEGER PRIMARY KEY AUTOINCREMENT,
            id              TEXT    NOT NULL UNIQUE CHECK (length(id) > 0),
            payload         BLOB    NOT NULL,
            payload_sha256  TEXT    NOT NULL,
            payload_size    INTEGER NOT NULL CHECK (payload_size >= 0),
            state           TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'synced', 'rejected')),
            attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at INTEGER NOT NULL,
            last_error      TEXT,
            created_at      INTEGER NOT NULL,
            synced_at       INTEGER,
            reject_reason   TEXT
        );
        CREATE INDEX outbox_state_sequence ON outbox (state, sequence);

        CREATE TABLE quarantine (
            sequence       INTEGER PRIMARY KEY,
            id             TEXT    NOT NULL,
            payload        BLOB,
            reason         TEXT    NOT NULL,
            quarantined_at INTEGER NOT NULL
        );

        CREATE TABLE outbox_state_counts (
            state      TEXT    PRIMARY KEY CHECK (state IN ('pending', 'in_flight', 'synced', 'rejected')),
            row_count  INTEGER NOT NULL,
            byte_count INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO outbox_state_counts (state, row_count, byte_count)
            VALUES ('pending', 0, 0), ('in_flight', 0, 0), ('synced', 0, 0), ('rejected', 0, 0);

        CREATE TRIGGER outbox_counts_after_insert AFTER INSERT ON outbox BEGIN
            UPDATE outbox_state_counts
               SET row_count = row_count + 1, byte_count = byte_count + NEW.payload_size
             WHERE state = NEW.state;
        END;
        CREATE TRIGGER outbox_counts_after_delete AFTER DELETE ON outbox BEGIN
            UPDATE outbox_state_counts
               SET row_count = row_count - 1, byte_count = byte_count - OLD.payload_size
             WHERE state = OLD.state;
        END;
        CREATE TRIGGER outbox_counts_after_update AFTER UPDATE OF state, payload_size ON outbox
        WHEN OLD.state IS NOT NEW.state OR OLD.payload_size IS NOT NEW.payload_size BEGIN
            UPDATE outbox_state_counts
               SET row_count = row_count - 1, byte_count = byte_count - OLD.payload_size
             WHERE state = OLD.state;
            UPDATE outbox_state_counts
               SET row_count = row_count + 1, byte_count = byte_count + NEW.payload_size
             WHERE state = NEW.state;
        END;
        """

    /// v2: checkouts, one row per checkout holding its latest state and its whole history as JSON
    /// (payment token only: never a PAN). Written in the same database, so the transition to
    /// `enqueued` commits in the same transaction as the application's outbox row.
    static let v2 = """
        CREATE TABLE checkout (
            id              TEXT    PRIMARY KEY CHECK (length(id) > 0),
            state           TEXT    NOT NULL,
            is_final        INTEGER NOT NULL CHECK (is_final IN (0, 1)),
            payment_token   TEXT    NOT NULL,
            terminal_serial TEXT    NOT NULL,
            application_id  TEXT,
            started_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL,
            document        BLOB    NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX checkout_open ON checkout (is_final, started_at);
        CREATE INDEX checkout_token ON checkout (payment_token, started_at);
        CREATE INDEX checkout_updated ON checkout (updated_at);
        """
}
