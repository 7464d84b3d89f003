/// A member's seat (PROTOCOL.md §13): its client id, identity, room and what its current
/// connection has told the server.
///
/// A session outlives its connection: when the connection ends without a departure, a
/// session in a room is *away* (``awaySince``) until a new connection resumes it or the grace
/// runs out. Identity (``id``, ``userID``, ``name``) and the room belong to the seat; the rest
/// (authentication, rate window, round trips, features) is about the connection carrying it
/// and comes from the new connection on a resume. Role, readiness and status are kept by the
/// ``Room``.
public struct ClientSession: Sendable, Equatable {
    public let id: ClientID
    public var userID: String
    public var name: String
    public var authenticated: Bool
    public var features: Set<ClientFeature> = []
    public var roomID: RoomID?
    /// JWT mode: when the session's token (plus leeway) runs out.
    public var expiresAt: ServerTime?
    /// The server asked for this connection to be closed; its further input is ignored.
    public var closing = false
    /// When the session's connection ended while it was in a room; `nil` while attached.
    public internal(set) var awaySince: ServerTime?
    /// The digest of the session's current resume token (the token itself is never kept).
    public internal(set) var resumeDigest: ResumeDigest?
    /// The token the seat's last resume replaced, while it still resumes the seat: a client
    /// whose `client_hello` was lost with its connection holds only that one (docs/protocol.md,
    /// choice 21).
    public internal(set) var retiringToken: RetiringToken?
    /// Open mode: the client named its own `user_id` (what `RESUME_BY_USER_ID` goes by).
    public internal(set) var claimedUserID = false
    /// JWT mode: `userID` is a verified token's `sub`.
    public internal(set) var verifiedUserID = false
    /// The seat whose connection is being probed for this one (PROTOCOL.md §13), as it was
    /// carried when the probe began.
    public internal(set) var probing: PendingProbe?
    /// Counts the seat's changes of carrier (a resume, going away): a probe's verdict is about
    /// the connection that carried the seat when it began, and is void once another does.
    public internal(set) var carrierEpoch: UInt64 = 0
    /// What a resume by identity goes by: the verified `sub` (JWT mode) or a claimed `user_id`
    /// (open mode); `nil` for the open-mode default `anonymous`.
    public var identity: String? { verifiedUserID || claimedUserID ? userID : nil }
    /// True while a connection carries the session.
    public var isAttached: Bool { awaySince == nil }
    /// What the current connection has measured and spent; a resume moves it with the connection.
    public internal(set) var meters: ConnectionMeters
    /// Round trips measured by the server's WebSocket pings, newest last (at most 8).
    public var recentRTTs: [UInt64] { meters.recentRTTs }
    /// Exponentially smoothed round trip (α = 1/8), in milliseconds.
    public var smoothedRTT: Double? { meters.smoothedRTT }
    /// The worst of the recent round trips.
    public var recentMaxRTT: UInt64? { meters.recentRTTs.max() }

    public init(id: ClientID, userID: String, name: String, authenticated: Bool, connectedAt: ServerTime = 0) {
        self.id = id
        self.userID = userID
        self.name = name
        self.authenticated = authenticated
        self.meters = ConnectionMeters(connectedAt: connectedAt)
    }
}

/// Everything about a session that belongs to the connection carrying it, not to the seat:
/// its round trips, its rate window and its `client_log` budget. One value, so a resume
/// hands the whole of it from the new connection to the seat (``Party/hand(_:to:way:now:out:lobby:)``).
public struct ConnectionMeters: Sendable, Equatable {
    /// Round trips measured by the server's WebSocket pings, newest last (at most 8).
    public internal(set) var recentRTTs: [UInt64] = []
    /// Exponentially smoothed round trip (α = 1/8), in milliseconds.
    public internal(set) var smoothedRTT: Double?
    /// Start and count of the current one-second rate window.
    var rateWindowStart: ServerTime
    var rateCount = 0
    /// When the previous counted message is taken to have arrived (``Party/withinRateLimit``).
    var rateLastArrival: ServerTime?
    /// `client_log` budget: lines left, and when it was last topped up.
    var logAllowance: Double
    var logAllowanceAt: ServerTime

    init(connectedAt: ServerTime) {
        rateWindowStart = connectedAt
        logAllowance = .infinity  // set from the rules by Party.connect
        logAllowanceAt = connectedAt
    }
}

/// A probe in progress of `session`'s connection, which carried it in `epoch`.
public struct PendingProbe: Sendable, Equatable {
    public var session: ClientID
    public var epoch: UInt64
}
