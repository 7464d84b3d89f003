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
    /// Renewals and writes: the replica's own upkeep.
    let client: PostgresClient
    /// Claims and look-ups, which clients cause: a pool of their own, so a burst of them never
    /// delays a renewal.
    let lookups: PostgresClient
    /// This process's replica id (unique per start: a restarted process owns nothing).
    let replica: String
    let leaseSeconds: Int
    /// How long a call may take before it is given up on (and, inside the database, its
    /// statement cancelled).
    let callLimit: Duration
    let logger: Logger

    init(
        client: PostgresClient, lookups: PostgresClient? = nil, replica: String, leaseSeconds: Int,
        callLimit: Duration = RoomTable.standardCallLimit, logger: Logger
    ) {
        self.client = client
        self.lookups = lookups ?? client
        self.replica = replica
        self.leaseSeconds = leaseSeconds
        self.callLimit = callLimit
        self.logger = logger
    }

    /// The server's limit on one database call: far above a healthy round trip, well below
    /// the lease, so that a hung call is noticed while the room is still this replica's.
    static let standardCallLimit: Duration = .seconds(2)

    enum Claim: Equatable {
        /// The room is this replica's now, under `epoch`; `record` is its stored state (JSON);
        /// its previous owner was last heard of (a write, a renewal) `silentMs` ago.
        case claimed(epoch: Int64, record: String, silentMs: Int64)
        /// No such room in the store.
        case missing
        /// Released while the claim was looked at: try again.
        case released
        /// Another replica holds a lease on it that runs `remaining` seconds more.
        case ownedElsewhere(owner: String, remaining: Double)
        /// This replica holds it already.
        case ownedHere
    }

    /// One room's pending write: its current record, or its removal.
    enum Write: Sendable {
        /// `seq` orders this replica's writes of a room: a write that lands after a later one
        /// (it was given up on, and committed anyway) changes nothing. `created`: the room was
        /// made here and its row may not exist yet (it is inserted); otherwise the row is only
        /// updated — a room another owner has since closed is never brought back.
        case upsert(RoomRecord, json: String, epoch: Int64, seq: Int64, created: Bool)
        case delete(RoomID, epoch: Int64)

        var room: RoomID {
            switch self {
            case .upsert(let record, _, _, _, _): record.id
            case .delete(let room, _): room
            }
        }

        var epoch: Int64 {
            switch self {
            case .upsert(_, _, let epoch, _, _), .delete(_, let epoch): epoch
            }
        }
    }

    struct WriteResult: Sendable {
        /// Written (or removed) under this replica's claim, or already superseded by a later write of its own.
        var written: [RoomID] = []
        /// Refused: the claim (under the epoch written with) has passed to another replica.
        var lost: [(room: RoomID, epoch: Int64)] = []
        /// The database refused the statement itself (bad data): written next time, if ever.
        var failed: [RoomID] = []
    }

    /// A call that reached the database and was refused by it (a statement error), as opposed
    /// to one that did not reach it (connection, timeout): only the latter says anything
    /// about reachability.
    static func isStatementError(_ error: any Error) -> Bool {
        // Data exceptions (22), integrity violations (23): the statement's data. Everything
        // else the server says (shutting down, read-only, too many connections, deadlock,
        // timeout) is about the database, not about one room.
        guard let state = (StoreFailure.cause(error) as? PSQLError)?.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }

    @discardableResult
    private func timed<Value: Sendable>(_ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        try await Deadline.within(callLimit, operation)
    }

    /// A trivial round trip: is the database there?
    func ping() async throws {
        let client = client
        try await timed { try await client.query("SELECT 1") }
    }

    /// Claims `room` if it is released or its lease has run out.
    func claim(_ room: RoomID) async throws -> Claim {
        let (client, replica, lease, logger) = (lookups, replica, Double(leaseSeconds), logger)
        return try await timed {
            let claimed = try await client.query(
                """
                WITH old AS (
                    SELECT room_id, greatest(updated_at, lease_until - make_interval(secs => \(lease))) AS heard
                    FROM owp_rooms WHERE room_id = \(room) AND (owner IS NULL OR lease_until < now()) FOR UPDATE
                )
                UPDATE owp_rooms AS r SET owner = \(replica), epoch = r.epoch + 1, write_seq = 0,
                    lease_until = now() + make_interval(secs => \(lease))
                FROM old WHERE r.room_id = old.room_id
                RETURNING r.epoch, r.record::text, (extract(epoch FROM now() - old.heard) * 1000)::bigint
                """, logger: logger)
            for try await (epoch, record, silent) in claimed.decode((Int64, String, Int64).self) {
                return .claimed(epoch: epoch, record: record, silentMs: max(0, silent))
            }
            let holders = try await client.query(
                "SELECT owner, extract(epoch FROM lease_until - now())::float8 FROM owp_rooms WHERE room_id = \(room)", logger: logger)
            for try await (owner, remaining) in holders.decode((String?, Double).self) {
                guard let owner else { return .released }  // released between the two statements
                if owner == replica { return .ownedHere }
                return remaining < 0 ? .released : .ownedElsewhere(owner: owner, remaining: remaining)
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
            // Rows locked in room order, as writes lock them: the two never deadlock.
            let renewed = try await client.query(
                """
                WITH held AS (
                    SELECT r.room_id FROM owp_rooms AS r
                    JOIN unnest(\(rooms)::text[], \(epochs)::bigint[]) AS l(room_id, epoch) ON r.room_id = l.room_id AND r.epoch = l.epoch
                    WHERE r.owner = \(replica) ORDER BY r.room_id FOR UPDATE OF r
                )
                UPDATE owp_rooms AS r SET lease_until = now() + make_interval(secs => \(lease))
                FROM held WHERE r.room_id = held.room_id
                RETURNING r.room_id
                """, logger: logger)
            var held: Set<RoomID> = []
            for try await room in renewed.decode(RoomID.self) { held.insert(room) }
            return held
        }
    }

    /// Writes rooms' records (and their seats' look-up rows) under this replica's claims: all
    /// of them in one transaction of a few statements, whatever their number, each limited by
    /// the server itself to ``callLimit``. Rows are locked in room order, as renewals and
    /// releases lock them, so the two never deadlock. If the database refuses the batch (one
    /// room's bad data), each room is written on its own, so one room never holds up the
    /// others. Throws only when the database cannot be reached.
    func write(_ writes: [Write]) async throws -> WriteResult {
        let (client, replica, lease, limit, logger) = (client, replica, Double(leaseSeconds), callLimit, logger)
        return try await timed {
            do {
                return try await Self.batch(writes, client: client, replica: replica, lease: lease, limit: limit, logger: logger)
            } catch where Self.isStatementError(error) && writes.count > 1 {
                var result = WriteResult()
                for write in writes {
                    do {
                        switch try await Self.apply(write, client: client, replica: replica, lease: lease, limit: limit, logger: logger) {
                        case true: result.written.append(write.room)
                        case false: result.lost.append((write.room, write.epoch))
                        }
                    } catch where Self.isStatementError(error) {
                        logger.error("Shared store refused a room's record", metadata: ["room_id": .string(write.room), "error": .string(StoreFailure.describe(error))])
                        result.failed.append(write.room)
                    }
                }
                return result
            } catch where Self.isStatementError(error) {
                logger.error("Shared store refused a room's record", metadata: ["room_id": .string(writes[0].room), "error": .string(StoreFailure.describe(error))])
                return WriteResult(failed: writes.map(\.room))
            }
        }
    }

    /// Every write in one transaction.
    private static func batch(_ writes: [Write], client: PostgresClient, replica: String, lease: Double, limit: Duration, logger: Logger) async throws -> WriteResult {
        var upserts: [(record: RoomRecord, json: String, epoch: Int64, seq: Int64, created: Bool)] = []
        var deletes: [(room: RoomID, epoch: Int64)] = []
        for write in writes {
            switch write {
            case .upsert(let record, let json, let epoch, let seq, let created): upserts.append((record, json, epoch, seq, created))
            case .delete(let room, let epoch): deletes.append((room, epoch))
            }
        }
        let timeout = String(Int(limit.components.seconds) * 1000)
        let result = try await client.withTransaction(logger: logger) { connection -> WriteResult in
            try await connection.query("SET LOCAL statement_timeout = \(unescaped: timeout)", logger: logger)
            let all = writes.map(\.room)
            try await connection.query("SELECT room_id FROM owp_rooms WHERE room_id = ANY(\(all)::text[]) ORDER BY room_id FOR UPDATE", logger: logger)
            var applied: Set<RoomID> = []
            if !upserts.isEmpty {
                let ids = upserts.map(\.record.id)
                let jsons = upserts.map(\.json)
                let names = upserts.map(\.record.name)
                let counts = upserts.map { Int64($0.record.members.count) }
                let media = upserts.map { $0.record.mediaID ?? "" }
                let seqs = upserts.map(\.seq)
                let epochs = upserts.map(\.epoch)
                let updated = try await connection.query(
                    """
                    UPDATE owp_rooms AS r SET record = w.record::jsonb, name = w.name, members = w.members, media_id = nullif(w.media_id, ''),
                        write_seq = w.seq, updated_at = now()
                    FROM unnest(\(ids)::text[], \(jsons)::text[], \(names)::text[], \(counts)::int8[], \(media)::text[], \(seqs)::int8[], \(epochs)::int8[])
                        AS w(room_id, record, name, members, media_id, seq, epoch)
                    WHERE r.room_id = w.room_id AND r.owner = \(replica) AND r.epoch = w.epoch AND r.write_seq < w.seq
                    RETURNING r.room_id
                    """, logger: logger)
                for try await room in updated.decode(RoomID.self) { applied.insert(room) }
                let fresh = upserts.filter { $0.created && !applied.contains($0.record.id) }
                if !fresh.isEmpty {
                    let inserted = try await connection.query(
                        """
                        INSERT INTO owp_rooms (room_id, owner, epoch, lease_until, record, name, members, media_id, created_at, write_seq)
                        SELECT w.room_id, \(replica), w.epoch, now() + make_interval(secs => \(lease)), w.record::jsonb, w.name, w.members,
                            nullif(w.media_id, ''), w.created_at, w.seq
                        FROM unnest(\(fresh.map(\.record.id))::text[], \(fresh.map(\.json))::text[], \(fresh.map(\.record.name))::text[],
                            \(fresh.map { Int64($0.record.members.count) })::int8[], \(fresh.map { $0.record.mediaID ?? "" })::text[],
                            \(fresh.map { Int64($0.record.createdAt) })::int8[], \(fresh.map(\.seq))::int8[], \(fresh.map(\.epoch))::int8[])
                            AS w(room_id, record, name, members, media_id, created_at, seq, epoch)
                        ON CONFLICT (room_id) DO NOTHING
                        RETURNING room_id
                        """, logger: logger)
                    for try await room in inserted.decode(RoomID.self) { applied.insert(room) }
                }
                let appliedRecords = upserts.filter { applied.contains($0.record.id) }.map(\.record)
                if !appliedRecords.isEmpty {
                    try await Self.replaceSeats(of: appliedRecords, on: connection, logger: logger)
                }
            }
            var result = WriteResult()
            let notApplied = upserts.filter { !applied.contains($0.record.id) }
            if !notApplied.isEmpty {
                // Superseded by a later write of ours (still our claim), or the claim is another's.
                var current: [RoomID: (owner: String?, epoch: Int64)] = [:]
                let rows = try await connection.query(
                    "SELECT room_id, owner, epoch FROM owp_rooms WHERE room_id = ANY(\(notApplied.map(\.record.id))::text[])", logger: logger)
                for try await (room, owner, epoch) in rows.decode((RoomID, String?, Int64).self) { current[room] = (owner, epoch) }
                for upsert in notApplied {
                    if let row = current[upsert.record.id], row.owner == replica, row.epoch == upsert.epoch {
                        result.written.append(upsert.record.id)
                    } else {
                        result.lost.append((upsert.record.id, upsert.epoch))
                    }
                }
            }
            result.written += upserts.filter { applied.contains($0.record.id) }.map(\.record.id)
            if !deletes.isEmpty {
                try await connection.query(
                    """
                    DELETE FROM owp_rooms AS r USING unnest(\(deletes.map(\.room))::text[], \(deletes.map(\.epoch))::int8[]) AS d(room_id, epoch)
                    WHERE r.room_id = d.room_id AND r.epoch = d.epoch AND r.owner = \(replica)
                    """, logger: logger)
                result.written += deletes.map(\.room)
            }
            return result
        }
        return result
    }

    /// One room's write; false if its claim has passed to another replica.
    private static func apply(_ write: Write, client: PostgresClient, replica: String, lease: Double, limit: Duration, logger: Logger) async throws -> Bool {
        switch write {
        case .delete(let room, let epoch):
            try await client.query("DELETE FROM owp_rooms WHERE room_id = \(room) AND owner = \(replica) AND epoch = \(epoch)", logger: logger)
            return true
        case .upsert(let record, let json, let epoch, let seq, let created):
            return try await client.withTransaction(logger: logger) { connection -> Bool in
                try await connection.query("SET LOCAL statement_timeout = \(unescaped: String(Int(limit.components.seconds) * 1000))", logger: logger)
                // Updated only under this claim and only by a later write; a room made here is
                // inserted if its row is not there yet (a first write given up on may have landed).
                let upsert: PostgresQuery =
                    created
                    ? """
                    INSERT INTO owp_rooms (room_id, owner, epoch, lease_until, record, name, members, media_id, created_at, write_seq)
                    VALUES (\(record.id), \(replica), \(epoch), now() + make_interval(secs => \(lease)), \(json)::jsonb, \(record.name),
                        \(record.members.count), \(record.mediaID), \(Int64(record.createdAt)), \(seq))
                    ON CONFLICT (room_id) DO UPDATE SET record = excluded.record, name = excluded.name, members = excluded.members,
                        media_id = excluded.media_id, write_seq = excluded.write_seq, updated_at = now()
                    WHERE owp_rooms.owner = \(replica) AND owp_rooms.epoch = \(epoch) AND owp_rooms.write_seq < \(seq)
                    RETURNING room_id
                    """
                    : """
                    UPDATE owp_rooms SET record = \(json)::jsonb, name = \(record.name), members = \(record.members.count),
                        media_id = \(record.mediaID), write_seq = \(seq), updated_at = now()
                    WHERE room_id = \(record.id) AND owner = \(replica) AND epoch = \(epoch) AND write_seq < \(seq)
                    RETURNING room_id
                    """
                var applied = false
                for try await _ in try await connection.query(upsert, logger: logger).decode(RoomID.self) { applied = true }
                if !applied {
                    // Not written: superseded by a later write of ours (fine), or the claim is another's.
                    let row = try await connection.query("SELECT owner, epoch FROM owp_rooms WHERE room_id = \(record.id)", logger: logger)
                    for try await (owner, current) in row.decode((String?, Int64).self) {
                        return owner == replica && current == epoch
                    }
                    return false
                }
                try await Self.replaceSeats(of: [record], on: connection, logger: logger)
                return true
            }
        }
    }

    /// Removes rooms nobody can come back to any more: unclaimed for longer than a lease plus
    /// `graceSeconds` (every seat's grace ran out, so a takeover would close them at once).
    /// Returns how many.
    func removeAbandoned(graceSeconds: Int) async throws -> Int {
        let (client, lease, logger) = (client, Double(leaseSeconds), logger)
        let limit = Double(graceSeconds) + lease
        return try await timed {
            var removed = 0
            // SKIP LOCKED: a row someone is claiming or writing right now is left for next time.
            let rows = try await client.query(
                """
                DELETE FROM owp_rooms WHERE room_id IN (
                    SELECT room_id FROM owp_rooms WHERE lease_until < now() - make_interval(secs => \(limit))
                    ORDER BY room_id FOR UPDATE SKIP LOCKED
                ) RETURNING room_id
                """, logger: logger)
            for try await _ in rows.decode(RoomID.self) { removed += 1 }
            return removed
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
                WITH held AS (
                    SELECT r.room_id FROM owp_rooms AS r
                    JOIN unnest(\(rooms)::text[], \(epochs)::bigint[]) AS l(room_id, epoch) ON r.room_id = l.room_id AND r.epoch = l.epoch
                    WHERE r.owner = \(replica) ORDER BY r.room_id FOR UPDATE OF r
                )
                UPDATE owp_rooms AS r SET owner = NULL, lease_until = now(), updated_at = now()
                FROM held WHERE r.room_id = held.room_id
                """, logger: logger)
        }
    }

    /// `records`' seats in `owp_seats` as the records have them (what a resume by token or by
    /// identity looks a room up by), in the transaction that writes the records.
    private static func replaceSeats(of records: [RoomRecord], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("DELETE FROM owp_seats WHERE room_id = ANY(\(records.map(\.id))::text[])", logger: logger)
        let seats = records.flatMap { record in record.seats.map { (room: record.id, seat: $0) } }
        try await connection.query(
            """
            INSERT INTO owp_seats (client_id, room_id, digest, retiring_digest, identity)
            SELECT s.client_id, s.room_id, nullif(s.digest, ''), nullif(s.retiring, ''), nullif(s.identity, '')
            FROM unnest(\(seats.map(\.seat.id))::text[], \(seats.map(\.room))::text[], \(seats.map { $0.seat.resumeDigest ?? "" })::text[],
                \(seats.map { $0.seat.retiringDigest ?? "" })::text[], \(seats.map { $0.seat.identity ?? "" })::text[])
                AS s(client_id, room_id, digest, retiring, identity)
            ON CONFLICT (client_id) DO UPDATE SET room_id = excluded.room_id, digest = excluded.digest,
                retiring_digest = excluded.retiring_digest, identity = excluded.identity
            """, logger: logger)
    }

    /// The rooms whose seats the resume-token digests (hex) name — as a seat's current token or
    /// its retiring one — as one statement (``BatchedLookup``): digest → room, for the digests
    /// that name a seat.
    func rooms(resumedBy digests: [String]) async throws -> [String: RoomID] {
        let (client, logger) = (lookups, logger)
        return try await timed {
            var rooms: [String: RoomID] = [:]
            let rows = try await client.query(
                """
                SELECT digest, room_id FROM owp_seats WHERE digest = ANY(\(digests))
                UNION ALL
                SELECT retiring_digest, room_id FROM owp_seats WHERE retiring_digest = ANY(\(digests))
                """, logger: logger)
            for try await (digest, room) in rows.decode((String, RoomID).self) { rooms[digest] = room }
            return rooms
        }
    }

    /// Of `rooms`, those another replica holds a current claim on, with that replica, as one
    /// statement: room → owner.
    func ownersElsewhere(of rooms: [RoomID]) async throws -> [RoomID: String] {
        let (client, replica, logger) = (lookups, replica, logger)
        return try await timed {
            var owners: [RoomID: String] = [:]
            let rows = try await client.query(
                """
                SELECT room_id, owner FROM owp_rooms
                WHERE room_id = ANY(\(rooms)) AND owner IS NOT NULL AND owner <> \(replica) AND lease_until > now()
                """, logger: logger)
            for try await (room, owner) in rows.decode((RoomID, String).self) { owners[room] = owner }
            return owners
        }
    }

    /// Rooms other replicas own (or owned: a room whose owner is gone is listed until it is
    /// taken over or removed), oldest first, at most `limit`: what a lobby here lists with its own.
    func roomsElsewhere(limit: Int = 5_000) async throws -> [ListedRoom] {
        let (client, replica, logger) = (client, replica, logger)
        return try await timed {
            var listed: [ListedRoom] = []
            let rows = try await client.query(
                """
                SELECT room_id, name, members, media_id, created_at FROM owp_rooms
                WHERE owner IS DISTINCT FROM \(replica) ORDER BY created_at, room_id LIMIT \(limit)
                """, logger: logger)
            for try await (room, name, members, media, created) in rows.decode((RoomID, String, Int, String?, Int64).self) {
                listed.append(ListedRoom(summary: RoomSummary(id: room, name: name, count: members, mediaID: media), createdAt: ServerTime(clamping: created)))
            }
            return listed
        }
    }

    /// The rooms (at most `limit` each) where the identities have a seat, as one statement:
    /// identity → rooms, in room order.
    func rooms(of identities: [String], limit: Int = 8) async throws -> [String: [RoomID]] {
        let (client, logger) = (lookups, logger)
        return try await timed {
            var rooms: [String: [RoomID]] = [:]
            let rows = try await client.query(
                "SELECT DISTINCT identity, room_id FROM owp_seats WHERE identity = ANY(\(identities)) ORDER BY identity, room_id", logger: logger)
            for try await (identity, room) in rows.decode((String, RoomID).self) where rooms[identity, default: []].count < limit {
                rooms[identity, default: []].append(room)
            }
            return rooms
        }
    }
}
