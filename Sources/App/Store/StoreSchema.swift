import Logging
import PostgresNIO

/// The server's own tables in PostgreSQL, created and migrated at start (PROTOCOL.md §14).
///
/// Guarantees: migrations are numbered and each runs once, in order, in one transaction that
/// first takes a transaction-scoped advisory lock, so several replicas starting at once
/// migrate one after another and the later ones find nothing left to do; running them again
/// changes nothing. A database migrated by a newer server (a version this one does not
/// know) is refused at start rather than written in a format this server does not read.
enum StoreSchema {
    /// An arbitrary constant naming this server's migration lock among advisory locks.
    static let migrationLock: Int64 = 0x6f77_7073_6368_656d  // "owpschem"

    /// The migrations, oldest first; version = index + 1. Never edit one that has shipped.
    static let migrations: [[PostgresQuery]] = [
        [
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
        ],
        // 2: the bus between replicas (ReplicaBus): who listens, and notifications too big for NOTIFY.
        [
            "CREATE TABLE owp_replicas (replica text PRIMARY KEY, heard_at timestamptz NOT NULL)",
            "CREATE TABLE owp_bus_spill (id bigserial PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
        ],
    ]

    static var latestVersion: Int { migrations.count }

    struct TooNew: Error, CustomStringConvertible {
        let found: Int
        var description: String {
            "the database's schema is at version \(found), newer than this server's \(StoreSchema.latestVersion): upgrade the server (or point it at another database)"
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
            guard current <= latestVersion else { throw TooNew(found: current) }
            var applied: [Int] = []
            for version in (current + 1)...max(current + 1, latestVersion) where version <= latestVersion {
                for statement in migrations[version - 1] {
                    try await connection.query(statement, logger: logger)
                }
                try await connection.query("INSERT INTO owp_schema_migrations (version) VALUES (\(version))", logger: logger)
                applied.append(version)
            }
            return applied
        }
    }
}
