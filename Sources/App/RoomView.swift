import WatchPartyCore

/// One room as the admin API shows it (docs/operations.md § Admin API): a snapshot, projected
/// to the moment it was taken. Ids are the protocol's; nothing secret is in it.
struct RoomView: Encodable, Sendable, Equatable {
    struct Member: Encodable, Sendable, Equatable {
        var clientID: String
        var userID: String
        var name: String
        var isHost: Bool
        var ready: Bool
        /// The member's last reported participant status, if any.
        var status: String?
        /// Smoothed round trip of the server's pings, ms; absent until measured.
        var rttMs: Double?
        /// Worst of the last 8 round trips, ms.
        var rttRecentMaxMs: UInt64?
        /// Present while the member's connection is gone and it may still resume (PROTOCOL.md §13):
        /// seconds since it went away.
        var awaySeconds: Double?

        enum CodingKeys: String, CodingKey {
            case clientID = "client_id", userID = "user_id", name, isHost = "is_host", ready, status
            case rttMs = "rtt_ms", rttRecentMaxMs = "rtt_recent_max_ms", awaySeconds = "away_seconds"
        }
    }

    /// The room's sync as the server sees it (docs/sync.md § Per room).
    struct Sync: Encodable, Sendable, Equatable {
        var verdict: String
        /// Host − room timeline, ms, smoothed over the host's reports; absent before the first.
        var hostOffsetMs: Double?
        var membersCatchingUp: Int
        /// Half the worst recent round trip among the members present, ms.
        var clockUncertaintyMs: UInt64?

        enum CodingKeys: String, CodingKey {
            case verdict, hostOffsetMs = "host_offset_ms", membersCatchingUp = "members_catching_up", clockUncertaintyMs = "clock_uncertainty_ms"
        }

        init(_ sync: RoomSync) {
            verdict = sync.verdict.rawValue
            hostOffsetMs = sync.hostOffset.map { ($0 * 1000).rounded() }
            membersCatchingUp = sync.membersCatchingUp
            clockUncertaintyMs = sync.clockUncertaintyMs
        }
    }

    var id: String
    var name: String
    var hostID: String
    var mediaID: String?
    var playState: String
    /// Seconds, projected to `asOf` while playing.
    var position: Double
    /// A play waiting on the ready barrier.
    var pendingPlay: Bool
    /// Server times (epoch ms).
    var createdAt: UInt64
    var asOf: UInt64
    var ageSeconds: Double
    var sync: Sync
    var members: [Member]

    enum CodingKeys: String, CodingKey {
        case id, name, hostID = "host_id", mediaID = "media_id", playState = "play_state", position, pendingPlay = "pending_play"
        case createdAt = "created_at", asOf = "as_of", ageSeconds = "age_seconds", sync, members
    }

    init(_ room: Room, party: Party, now: ServerTime) {
        id = room.id
        name = room.name
        hostID = room.hostID
        mediaID = room.mediaID
        playState = room.playback.playState.rawValue
        position = room.playback.position(at: now)
        pendingPlay = room.pendingPlay != nil
        createdAt = room.createdAt
        asOf = now
        ageSeconds = Double(now > room.createdAt ? now - room.createdAt : 0) / 1000
        sync = Sync(party.sync(of: room))
        members = room.members.map { client in
            let session = party.sessions[client]
            return Member(
                clientID: client, userID: session?.userID ?? "", name: session?.name ?? "", isHost: client == room.hostID,
                ready: room.ready.contains(client), status: room.statuses[client]?.rawValue,
                rttMs: session?.smoothedRTT, rttRecentMaxMs: session?.recentMaxRTT,
                awaySeconds: session?.awaySince.map { Double(now > $0 ? now - $0 : 0) / 1000 })
        }
    }
}
