import Logging
import PostgresNIO

/// Which replicas can be reached over the bus now (PROTOCOL.md §14): each one that listens
/// says so every ``ReplicaBus/heartbeatInterval`` (`owp_replicas.heard_at`, by the database's
/// clock), and a replica not heard of for ``liveWindowSeconds`` is taken for gone — whatever
/// it still believes, nothing it is sent is heard.
///
/// Guarantees: a replica is said to be live only while its listener is up (it writes its
/// heartbeat only then, and the listener's session is looked for); a drained replica removes
/// itself at once.
struct ReplicaDirectory: Sendable {
    let client: PostgresClient
    let replica: String
    let logger: Logger

    /// Three missed heartbeats: a replica not heard of for this long is sent no new work (no
    /// connection is relayed to it, no room offered).
    static let liveWindowSeconds = 3.0
    /// Two live windows: a peer that still listens keeps its links until it has not been heard
    /// of for this long. One database call stalled for a couple of seconds delays a heartbeat
    /// past the live window; it must not cut every connection relayed through that replica —
    /// their resumes in flight and all (BENCHMARKS.md § The handover offers its rooms). A peer
    /// whose listener's session is gone is taken for gone at once, whatever the window.
    static let linkWindowSeconds = 2 * liveWindowSeconds

    /// This replica listens: heard now.
    func heartbeat() async throws {
        let (client, replica, logger) = (client, replica, logger)
        _ = try await Deadline.within(RoomTable.standardCallLimit) {
            try await client.query(
                """
                INSERT INTO owp_replicas (replica, heard_at) VALUES (\(replica), now())
                ON CONFLICT (replica) DO UPDATE SET heard_at = now()
                """, logger: logger)
        }
    }

    /// Which of `replicas` were heard of within `window` (seconds; the live window unless said)
    /// and have their listener connected now (its session, named after its channel, is in
    /// `pg_stat_activity`): a process that died is seen at once, as the database drops its
    /// connections.
    func live(among replicas: [String], within window: Double = liveWindowSeconds) async throws -> Set<String> {
        guard !replicas.isEmpty else { return [] }
        let (client, logger) = (client, logger)
        let channels = replicas.map(ReplicaBus.channel(of:))
        return try await Deadline.within(RoomTable.standardCallLimit) {
            let rows = try await client.query(
                """
                SELECT r.replica FROM owp_replicas AS r
                JOIN unnest(\(replicas)::text[], \(channels)::text[]) AS l(replica, channel) ON r.replica = l.replica
                WHERE r.heard_at > now() - make_interval(secs => \(window))
                  AND EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.application_name = l.channel)
                """, logger: logger)
            var live: Set<String> = []
            for try await replica in rows.decode(String.self) { live.insert(replica) }
            return live
        }
    }

    /// Every other replica that is live now (as ``live(among:)`` judges it), in id order.
    func livePeers() async throws -> [String] {
        let (client, replica, logger, window) = (client, replica, logger, Self.liveWindowSeconds)
        let heard = try await Deadline.within(RoomTable.standardCallLimit) {
            let rows = try await client.query(
                "SELECT replica FROM owp_replicas WHERE replica <> \(replica) AND heard_at > now() - make_interval(secs => \(window))", logger: logger)
            var heard: [String] = []
            for try await peer in rows.decode(String.self) { heard.append(peer) }
            return heard
        }
        return try await live(among: heard).sorted()
    }

    /// This replica stopped listening for good (a drain): nothing is to be sent to it any more.
    func remove() async throws {
        let (client, replica, logger) = (client, replica, logger)
        _ = try await Deadline.within(RoomTable.standardCallLimit) {
            try await client.query("DELETE FROM owp_replicas WHERE replica = \(replica)", logger: logger)
        }
    }

    /// Forgets replicas gone for a day, and spilled notifications nobody fetched within a minute
    /// (their listener was gone).
    func removeStale() async throws {
        let (client, logger) = (client, logger)
        _ = try await Deadline.within(RoomTable.standardCallLimit) {
            try await client.query("DELETE FROM owp_replicas WHERE heard_at < now() - interval '1 day'", logger: logger)
            try await client.query("DELETE FROM owp_bus_spill WHERE created_at < now() - interval '1 minute'", logger: logger)
        }
    }
}
