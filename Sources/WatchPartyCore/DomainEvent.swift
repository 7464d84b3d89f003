/// Why a room was closed.
public enum RoomCloseReason: String, Sendable, Hashable, CaseIterable {
    case hostLeft = "host_left"
    case hostClosed = "host_closed"
    case hostStartedNewRoom = "host_started_new_room"
    case empty
    case shutdown
    /// An operator closed it through the admin API.
    case closedByOperator = "operator"

    /// The `room_closed` reason text members see; `nil` when nobody is told.
    public var memberMessage: String? {
        switch self {
        case .hostLeft: "Host left the room"
        case .hostClosed: "Host closed the room"
        case .hostStartedNewRoom: "Host started a new room"
        case .shutdown: "Server shutting down"
        case .closedByOperator: "Room closed by the server operator"
        case .empty: nil
        }
    }
}

/// What a host state report came to (PROTOCOL.md §8).
public enum StateUpdateResult: String, Sendable, Hashable, CaseIterable {
    case accepted
    case cooldown
    case rate
    case jitter
    /// Jitter-sized, but a persistent offset: accepted as a correction (``DriftTracker``).
    case drift
}

/// What released a pending play.
public enum BarrierReleaseCause: String, Sendable, Hashable, CaseIterable {
    case allReady = "all_ready"
    case timeout
}

/// How a new connection found the session it resumes (PROTOCOL.md §13).
public enum ResumeWay: String, Sendable, Hashable, CaseIterable {
    /// A `resume` message with the session's token.
    case token
    /// An `auth` as the same verified user (JWT `sub`; open mode with `RESUME_BY_USER_ID`).
    case identity
    /// A `resume` with the token the seat's last resume replaced (``RetiringToken``): the
    /// `client_hello` of that resume never reached the client.
    case retiringToken = "retiring_token"
}

/// What came of a resume attempt.
public enum ResumeResult: String, Sendable, Hashable, CaseIterable {
    /// An away session is back.
    case resumed
    /// The session was still attached (a half-open connection): that connection was closed with 4001.
    case takenOver = "taken_over"
    /// Nothing to resume: RESUME_FAILED for a token; for an identity, the other connection
    /// answered its probe (a live second tab) or is no longer there.
    case refused
}

/// Things worth counting that happened in the core. The observability layer turns them into
/// metrics and logs; the core itself imports nothing of either.
public enum DomainEvent: Sendable, Equatable {
    case roomCreated(room: RoomID, host: ClientID)
    case roomClosed(room: RoomID, reason: RoomCloseReason)
    case memberJoined(room: RoomID, client: ClientID, members: Int)
    case memberLeft(room: RoomID, client: ClientID, members: Int)
    case hostChanged(room: RoomID, host: ClientID)
    /// A connection authenticated (or, in open mode, named itself) as `userID`.
    case authenticated(client: ClientID, userID: String)
    case errorSent(ErrorCode)
    /// A host state report and its fate; `drift` = |reported − projected room position| in seconds.
    case stateUpdate(result: StateUpdateResult, drift: Double)
    /// A pending play went out. `waitedMs` since it was created; `latenessMs` past its due time.
    case barrierReleased(cause: BarrierReleaseCause, waitedMs: UInt64, latenessMs: UInt64)
    case participantStatus(ParticipantStatus)
    /// A scheduled play went out with this lead (target − release).
    case playScheduled(leadMs: UInt64)
    case clientLog(client: ClientID, category: String, message: String)
    /// A `client_log` line over the connection's budget was dropped.
    case clientLogDropped
    /// A session in `room` lost its connection and is away, resumable, until its grace ends.
    case sessionAway(client: ClientID, room: RoomID)
    /// A resume attempt; `client` is the session's id, `carrier` the id the new connection was
    /// greeted with (the two are equal for a refusal); `room` the session's room, if any.
    case resume(way: ResumeWay, result: ResumeResult, client: ClientID, carrier: ClientID, room: RoomID?)
    /// A session is over (departed, ended with its connection, replaced by the seat its
    /// connection resumed): nothing will be done for it any more.
    case sessionEnded(client: ClientID)
    /// An away session's grace ran out (`early`: cut short, the bound on away sessions was
    /// reached and it was the one away longest): it departed from `room`.
    case graceExpired(client: ClientID, room: RoomID, early: Bool)
    /// This server took `room` over from its stored record (PROTOCOL.md §14), its `seats` away.
    case roomTakenOver(room: RoomID, seats: Int)
    /// This server handed `room` away as it was (a drain with a shared store, or a lost claim).
    case roomReleased(room: RoomID)
}
