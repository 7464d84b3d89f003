import Logging
import PostgresNIO

/// The server's own tables in PostgreSQL, created and migrated at start (PROTOCOL.md §14).
///
/// Guarantees: migrations are numbered and each runs once, in order, in one transaction that
/// first takes a transaction-scoped advisory lock, so several replicas starting at once
/// migrate one after another and the later ones find nothing left to do; running them again
/// changes nothing. A database migrated by a newer server (a version this one does not
/// know) is refused at start rather than written in a format this server does not read —
/// unless every newer migration says servers of this one's version still read and write it
/// correctly (``Migration/readableFrom``), which is what lets a rollback start.
enum StoreSchema {
    /// One version's statements, and which older servers may still use a database that has it.
    struct Migration {
        /// The oldest schema version a server may know and still run against this one (what
        /// it does not know of, it leaves alone and does without); `nil`: only servers that know it.
        let readableFrom: Int?
        let statements: [PostgresQuery]

        init(readableFrom: Int? = nil, _ statements: [PostgresQuery]) {
            self.readableFrom = readableFrom
            self.statements = statements
        }
    }

    /// An arbitrary constant naming this server's migration lock among advisory locks.
    static let migrationLock: Int64 = 0x6f77_7073_6368_656d  // "owpschem"

    /// The migrations, oldest first; version = index + 1. Never edit one that has shipped.
    static let migrations: [Migration] = [
        Migration([
            """
            CREATE TABLE owp_rooms (
                room_id     text PRIMARY KEY,
                owner       text,
                epoch       bigint NOT NULL,
                lease_until timestamptz NOT NULL,
                record      jsonb NOT NULL,
                name        text NOT NULL,
                members     integer NOT NULL,
                media_id    text,
                created_at  bigint NOT NULL,
                write_seq   bigint NOT NULL DEFAULT 0,
                updated_at  timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE owp_seats (
                client_id text PRIMARY KEY,
                room_id   text NOT NULL REFERENCES owp_rooms (room_id) ON DELETE CASCADE,
                digest    text UNIQUE,
                identity  text
            )
            """,
            "CREATE INDEX owp_seats_room ON owp_seats (room_id)",
            "CREATE INDEX owp_seats_identity ON owp_seats (identity) WHERE identity IS NOT NULL",
            "CREATE INDEX owp_rooms_owner ON owp_rooms (owner)",
        ]),
        // 2: the bus between replicas (ReplicaBus): who listens, and notifications too big for NOTIFY.
        Migration([
            "CREATE TABLE owp_replicas (replica text PRIMARY KEY, heard_at timestamptz NOT NULL)",
            "CREATE TABLE owp_bus_spill (id bigserial PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
        ]),
        // 3: a seat's retiring token (the one its last resume replaced) finds its room too; and
        // each version says which older servers still read the database. A server of version 2
        // runs against it without knowing the column (its seats' retiring tokens are not written),
        // but refuses it at start (it predates `readable_from`; docs/operations.md, "Upgrades and rollbacks").
        // Idempotent: an operator who rolled back by deleting this version's row can roll forward again.
        Migration(readableFrom: 2, [
            "ALTER TABLE owp_schema_migrations ADD COLUMN IF NOT EXISTS readable_from integer",
            "ALTER TABLE owp_seats ADD COLUMN IF NOT EXISTS retiring_digest text",
            "CREATE INDEX IF NOT EXISTS owp_seats_retiring ON owp_seats (retiring_digest) WHERE retiring_digest IS NOT NULL",
        ]),
    ]

    static var latestVersion: Int { migrations.count }

    struct TooNew: Error, CustomStringConvertible {
        let found: Int
        /// The oldest server version its newer migrations say may use it.
        let readableFrom: Int
        var description: String {
            "the database's schema is at version \(found), newer than this server's \(StoreSchema.latestVersion) and read only by servers of version \(readableFrom) or later: upgrade the server (or point it at another database)"
        }
    }

    /// Brings the schema to ``latestVersion``; returns the versions it applied (empty: it was up to date).
    @discardableResult
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        do {
            return try await migrateInTransaction(client, logger: logger)
        } catch {
            throw StoreFailure.cause(error)
        }
    }

    private static func migrateInTransaction(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withTransaction(logger: logger) { connection -> [Int] in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS owp_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var current = 0
            for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM owp_schema_migrations", logger: logger).decode(Int.self) {
                current = version
            }
            guard current <= latestVersion else {
                // Newer (a rollback): usable if each newer migration says a server of this version still reads it.
                let rows = try await connection.query(
                    "SELECT coalesce(max(coalesce(readable_from, version)), 0) FROM owp_schema_migrations WHERE version > \(latestVersion)", logger: logger)
                var readableFrom = current
                for try await oldest in rows.decode(Int.self) { readableFrom = oldest }
                guard readableFrom <= latestVersion else { throw TooNew(found: current, readableFrom: readableFrom) }
                logger.warning("Shared store: the database's schema is newer than this server's, and readable by it", metadata: [
                    "database_schema_version": .stringConvertible(current), "schema_version": .stringConvertible(latestVersion),
                ])
                return []
            }
            var applied: [Int] = []
            for version in (current + 1)...max(current + 1, latestVersion) where version <= latestVersion {
                let migration = migrations[version - 1]
                for statement in migration.statements {
                    try await connection.query(statement, logger: logger)
                }
                try await connection.query("INSERT INTO owp_schema_migrations (version) VALUES (\(version))", logger: logger)
                if let readableFrom = migration.readableFrom {
                    try await connection.query("UPDATE owp_schema_migrations SET readable_from = \(readableFrom) WHERE version = \(version)", logger: logger)
                }
                applied.append(version)
            }
            return applied
        }
    }
}
