import Logging
import PostgresNIO
import WatchPartyCore

/// The shared store's statements (PROTOCOL.md §14): claiming a room, renewing and releasing
/// claims, writing a room's record, and finding the room of a resume token or an identity.
///
/// Guarantees — the fencing rule: a room's row carries its owner and an `epoch` that every
/// claim increases; every write and renewal names both, so a replica whose claim has passed
/// to another (it was paused, or cut off while its lease ran out) has its writes refused
/// and learns that the room is no longer its own. A claim succeeds only on a released room
/// or one whose lease has run out, judged by the database's clock alone. Every call gives up
/// after ``callLimit``.
struct RoomTable: Sendable {
    let client: PostgresClient
    /// This process's replica id (unique per start: a restarted process owns nothing).
    let replica: String
    let leaseSeconds: Int
    let logger: Logger

    static let callLimit: Duration = .seconds(2)

    enum Claim: Equatable {
        /// The room is this replica's now, under `epoch`; `record` is its stored state (JSON).
        case claimed(epoch: Int64, record: String)
        /// No such room in the store.
        case missing
        /// Another replica holds a lease on it that runs `remaining` seconds more.
        case ownedElsewhere(owner: String, remaining: Double)
        /// This replica holds it already.
        case ownedHere
    }

    /// One room's pending write: its current record, or its removal.
    enum Write: Sendable {
        case upsert(RoomRecord, json: String, epoch: Int64, inserted: Bool)
        case delete(RoomID, epoch: Int64)

        var room: RoomID {
            switch self {
            case .upsert(let record, _, _, _): record.id
            case .delete(let room, _): room
            }
        }
    }

    struct WriteResult: Sendable {
        /// Written (or removed) under this replica's claim.
        var written: [RoomID] = []
        /// Refused: the claim has passed to another replica (or the id was taken).
        var lost: [RoomID] = []
    }

    @discardableResult
    private func timed<Value: Sendable>(_ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        try await Deadline.within(Self.callLimit, operation)
    }

    /// A trivial round trip: is the database there?
    func ping() async throws {
        let client = client
        try await timed { try await client.query("SELECT 1") }
    }

    /// Claims `room` if it is released or its lease has run out.
    func claim(_ room: RoomID) async throws -> Claim {
        let (client, replica, lease, logger) = (client, replica, Double(leaseSeconds), logger)
        return try await timed {
            let claimed = try await client.query(
                """
                UPDATE owp_rooms SET owner = \(replica), epoch = epoch + 1, lease_until = now() + make_interval(secs => \(lease))
                WHERE room_id = \(room) AND (owner IS NULL OR lease_until < now())
                RETURNING epoch, record::text
                """, logger: logger)
            for try await (epoch, record) in claimed.decode((Int64, String).self) {
                return .claimed(epoch: epoch, record: record)
            }
            let holders = try await client.query(
                "SELECT owner, extract(epoch FROM lease_until - now())::float8 FROM owp_rooms WHERE room_id = \(room)", logger: logger)
            for try await (owner, remaining) in holders.decode((String?, Double).self) {
                guard let owner else { return .missing }  // released between the two statements: try again
                return owner == replica ? .ownedHere : .ownedElsewhere(owner: owner, remaining: remaining)
            }
            return .missing
        }
    }

    /// Renews this replica's claims; returns the rooms whose claim it still holds (the others
    /// have passed to another replica).
    func renew(_ leases: [(room: RoomID, epoch: Int64)]) async throws -> Set<RoomID> {
        let (client, replica, lease, logger) = (client, replica, Double(leaseSeconds), logger)
        guard !leases.isEmpty else {
            try await ping()
            return []
        }
        let rooms = leases.map(\.room)
        let epochs = leases.map(\.epoch)
        return try await timed {
            let renewed = try await client.query(
                """
                UPDATE owp_rooms AS r SET lease_until = now() + make_interval(secs => \(lease))
                FROM unnest(\(rooms)::text[], \(epochs)::bigint[]) AS l(room_id, epoch)
                WHERE r.room_id = l.room_id AND r.epoch = l.epoch AND r.owner = \(replica)
                RETURNING r.room_id
                """, logger: logger)
            var held: Set<RoomID> = []
            for try await room in renewed.decode(RoomID.self) { held.insert(room) }
            return held
        }
    }

    /// Writes rooms' records (and their seats' look-up rows) under this replica's claims, in
    /// one transaction.
    func write(_ writes: [Write]) async throws -> WriteResult {
        let (client, replica, lease, logger) = (client, replica, Double(leaseSeconds), logger)
        return try await timed {
            try await client.withTransaction(logger: logger) { connection -> WriteResult in
                var result = WriteResult()
                for write in writes {
                    switch write {
                    case .delete(let room, let epoch):
                        try await connection.query(
                            "DELETE FROM owp_rooms WHERE room_id = \(room) AND owner = \(replica) AND epoch = \(epoch)", logger: logger)
                        result.written.append(room)
                    case .upsert(let record, let json, let epoch, let inserted):
                        let statement: PostgresQuery =
                            inserted
                            ? """
                            UPDATE owp_rooms SET record = \(json)::jsonb, name = \(record.name), members = \(record.members.count),
                                media_id = \(record.mediaID), updated_at = now()
                            WHERE room_id = \(record.id) AND owner = \(replica) AND epoch = \(epoch)
                            RETURNING room_id
                            """
                            : """
                            INSERT INTO owp_rooms (room_id, owner, epoch, lease_until, record, name, members, media_id, created_at)
                            VALUES (\(record.id), \(replica), \(epoch), now() + make_interval(secs => \(lease)), \(json)::jsonb, \(record.name),
                                \(record.members.count), \(record.mediaID), \(Int64(record.createdAt)))
                            ON CONFLICT (room_id) DO NOTHING
                            RETURNING room_id
                            """
                        var ours = false
                        for try await _ in try await connection.query(statement, logger: logger).decode(RoomID.self) { ours = true }
                        guard ours else {
                            result.lost.append(record.id)
                            continue
                        }
                        try await connection.query("DELETE FROM owp_seats WHERE room_id = \(record.id)", logger: logger)
                        let ids = record.seats.map(\.id)
                        let digests = record.seats.map { $0.resumeDigest ?? "" }
                        let identities = record.seats.map { $0.identity ?? "" }
                        try await connection.query(
                            """
                            INSERT INTO owp_seats (client_id, room_id, digest, identity)
                            SELECT s.client_id, \(record.id), nullif(s.digest, ''), nullif(s.identity, '')
                            FROM unnest(\(ids)::text[], \(digests)::text[], \(identities)::text[]) AS s(client_id, digest, identity)
                            ON CONFLICT (client_id) DO UPDATE SET room_id = excluded.room_id, digest = excluded.digest, identity = excluded.identity
                            """, logger: logger)
                        result.written.append(record.id)
                    }
                }
                return result
            }
        }
    }

    /// Lets other replicas claim these rooms at once (a drain hands them over).
    func release(_ leases: [(room: RoomID, epoch: Int64)]) async throws {
        guard !leases.isEmpty else { return }
        let (client, replica, logger) = (client, replica, logger)
        let rooms = leases.map(\.room)
        let epochs = leases.map(\.epoch)
        try await timed {
            try await client.query(
                """
                UPDATE owp_rooms AS r SET owner = NULL, lease_until = now()
                FROM unnest(\(rooms)::text[], \(epochs)::bigint[]) AS l(room_id, epoch)
                WHERE r.room_id = l.room_id AND r.epoch = l.epoch AND r.owner = \(replica)
                """, logger: logger)
        }
    }

    /// The room of the seat a resume token (by its digest's hex) resumes, if any.
    func room(resumedBy digest: String) async throws -> RoomID? {
        let (client, logger) = (client, logger)
        return try await timed {
            for try await room in try await client.query("SELECT room_id FROM owp_seats WHERE digest = \(digest)", logger: logger).decode(RoomID.self) {
                return room
            }
            return nil
        }
    }

    /// The rooms with a seat of `identity` (a JWT `sub`, or a claimed `user_id`), at most `limit`.
    func rooms(of identity: String, limit: Int = 8) async throws -> [RoomID] {
        let (client, logger) = (client, logger)
        return try await timed {
            var rooms: [RoomID] = []
            let rows = try await client.query(
                "SELECT DISTINCT room_id FROM owp_seats WHERE identity = \(identity) ORDER BY room_id LIMIT \(limit)", logger: logger)
            for try await room in rows.decode(RoomID.self) { rooms.append(room) }
            return rooms
        }
    }
}
