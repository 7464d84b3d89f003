/// Makes room ids. Injected so tests are deterministic.
public protocol RoomIDSource: Sendable {
    mutating func next() -> RoomID
}

/// What the shell's token check (JWT, PROTOCOL.md §4) concluded about an `auth` token.
///
/// Signature checking is the shell's job (it is I/O-free but asynchronous in the JWT
/// library); the core decides what the verdict means for the session.
public enum TokenVerdict: Sendable, Equatable {
    /// `expiresAt`: when the session ends (token expiry plus leeway), if it does.
    case valid(userID: String, name: String, expiresAt: ServerTime?)
    case invalid
}

/// The whole watch-party state of one server and every rule that changes it.
///
/// A pure, deterministic state machine: each input (a connection, a decoded message, a
/// disconnect, a timer) comes with the current server time and returns an ``Outcome`` —
/// messages to send, connections to close, timers to arm, events to count. Nothing here
/// touches a socket, a clock or a timer, so every rule is tested with a manual clock.
/// Every change to rooms and sessions passes through these entry points.
public struct Party: Sendable {
    public let rules: PartyRules
    public internal(set) var sessions = TrackedTable<ClientID, ClientSession>()
    public internal(set) var rooms = TrackedTable<RoomID, Room>()
    /// Set once a drain begins: create and join are refused (PROTOCOL.md §11).
    public internal(set) var draining = false

    var roomIDs: any RoomIDSource
    var tokens: any ResumeTokenMinter
    /// Every live resume token's digest, to the session it resumes (PROTOCOL.md §13).
    var resumeIndex: [ResumeDigest: ClientID] = [:]
    /// Sessions away now (kept by ``goAway(_:from:now:out:)``, ``forget(_:)`` and the handover).
    public internal(set) var awayCount = 0
    /// Away sessions in the order they went away, oldest first from ``awayHead``; entries of
    /// sessions no longer away (resumed, departed) are skipped when met and compacted away.
    var awayQueue: [(client: ClientID, since: ServerTime)] = []
    var awayHead = 0
    /// Sessions by the identity a resume by identity goes by (a JWT `sub`; in open mode a
    /// claimed `user_id`), so an `auth` finds its user's sessions without a scan.
    var sessionsByUser: [String: Set<ClientID>] = [:]
    /// The current `room_list` snapshot, until the rooms change (``roomList()``).
    var roomListCache: RoomList?
    /// Rooms other servers own, as the shell last read them (PROTOCOL.md §14: `room_list` is global).
    var roomsElsewhere: [ListedRoom] = []
    /// Rooms cut out into parts of their own (``detachRoom(_:)``), as the lobby lists them.
    var detached: [RoomID: RoomListing] = [:]
    /// Set in a part cut out by ``detachRoom(_:)``: the one room it holds.
    public internal(set) var partRoom: RoomID?
    /// JWT mode: connections must `auth` with a valid token before anything else.
    public let authRequired: Bool
    var roomSequence: UInt64 = 0
    var pendingGeneration: UInt64 = 0
    /// Authenticated connections in no room (kept by ``setRoom(of:to:)`` and ``refreshLobby(_:)``).
    var lobbyClients: Set<ClientID> = []
    var lobbyWindowEnd: ServerTime?
    var lobbyFlushPending = false

    public init(rules: PartyRules = PartyRules(), roomIDs: any RoomIDSource, tokens: any ResumeTokenMinter, authRequired: Bool = false) {
        self.rules = rules
        self.roomIDs = roomIDs
        self.tokens = tokens
        self.authRequired = authRequired
    }

    public var authEnabled: Bool { authRequired }

    // MARK: Entry points

    /// A connection opened: a fresh session, greeted with its id and resume token and, in
    /// open mode, shown the lobby.
    public mutating func connect(_ client: ClientID, now: ServerTime) -> Outcome {
        var out = Outcome()
        var session = ClientSession(id: client, userID: "anonymous", name: "Anonymous", authenticated: !authRequired, connectedAt: now)
        session.meters.logAllowance = rules.clientLogBurst
        let token = issueToken(to: &session, now: now)
        sessions[client] = session
        refreshLobby(client)
        out.send(.clientHello(clientID: client, resumeToken: token), to: [client], client: client, now: now)
        if authRequired {
            out.timers.append(TimerRequest(key: .authTimeout(client: client), due: now + rules.authTimeoutMs))
        } else {
            out.send(.roomList(roomList()), to: [client], now: now)
        }
        return finish(out)
    }

    /// The connection carrying `client` went away (closed, failed or timed out). A session in
    /// a room becomes away for ``PartyRules/resumeGraceMs`` (PROTOCOL.md §13); otherwise, or
    /// with no grace, it leaves its room as with `leave_room` and is gone.
    public mutating func disconnect(_ client: ClientID, now: ServerTime) -> Outcome {
        var out = Outcome()
        guard let session = sessions[client], session.isAttached else { return finish(out) }
        if let roomID = session.roomID, rooms[roomID] != nil, rules.resumeGraceMs > 0 {
            goAway(client, from: roomID, now: now, out: &out)
            return finish(out)
        }
        var lobby = LobbyChange()
        departFromRoom(client, now: now, out: &out, lobby: &lobby)
        forget(client, out: &out)
        lobby.leftRoom.removeAll { $0 == client }
        flushLobby(lobby, now: now, out: &out)
        return finish(out)
    }

    /// A text frame that failed to decode, a binary frame, or a message the shell cannot serve now
    /// (SERVICE_UNAVAILABLE, PROTOCOL.md §14): the documented error, nothing else.
    /// `arrival`: as in ``receive(_:from:now:arrival:verdict:)``.
    public mutating func reject(_ client: ClientID, _ code: ErrorCode, room: RoomID? = nil, now: ServerTime, arrival: Arrival? = nil) -> Outcome {
        var out = Outcome()
        guard let session = sessions[client], !session.closing else { return finish(out) }
        guard withinRateLimit(client, counted: true, arrival: arrival, now: now, out: &out) else { return finish(out) }
        out.error(code, to: client, room: room, now: now)
        return finish(out)
    }

    /// A binary frame: the protocol has none (UNSUPPORTED_MESSAGE_FORMAT, PROTOCOL.md §1).
    public mutating func receiveBinary(from client: ClientID, now: ServerTime, arrival: Arrival? = nil) -> Outcome {
        reject(client, .unsupportedMessageFormat, now: now, arrival: arrival)
    }

    /// A decoded client message. For an `auth` carrying a token in JWT mode, `verdict` is the
    /// shell's verification of that token.
    ///
    /// `arrival` is when the shell read the message off its connection (`now` when omitted,
    /// never later than `now`) and how long it may have waited unread before. The rate limit
    /// counts it there: a client that keeps to the limit stays within it however long the
    /// message waited to be handled, or to be read by a busy server (PROTOCOL.md §9).
    public mutating func receive(_ message: ClientMessage, from client: ClientID, now: ServerTime, arrival: Arrival? = nil, verdict: TokenVerdict? = nil) -> Outcome {
        var out = Outcome()
        guard let session = sessions[client], !session.closing else { return finish(out) }
        guard withinRateLimit(client, counted: message.type != .clientLog, arrival: arrival, now: now, out: &out) else { return finish(out) }
        var lobby = LobbyChange()
        if !session.authenticated && !Self.servedBeforeAuth.contains(message.type) {
            out.error(.authenticationRequired, to: client, room: message.room, now: now)
            return finish(out)
        }
        do {
            try dispatch(message, from: client, now: now, verdict: verdict, out: &out, lobby: &lobby)
        } catch {
            out.error(error.code, to: client, room: message.room, now: now)
        }
        flushLobby(lobby, now: now, out: &out)
        return finish(out)
    }

    /// A timer armed by an earlier ``Outcome`` fired.
    public mutating func fire(_ key: TimerKey, now: ServerTime) -> Outcome {
        var out = Outcome()
        switch key {
        case .readyWait(let roomID, let generation):
            guard let room = rooms[roomID], let pending = room.pendingPlay, pending.generation == generation else { return finish(out) }
            let due = pending.createdAt + rules.maxReadyWaitMs
            releasePendingPlay(in: roomID, cause: .timeout, now: now, due: due, out: &out)
        case .statusFlush(let roomID):
            flushStatuses(in: roomID, now: now, out: &out)
        case .lobbyFlush:
            fireLobbyFlush(now: now, out: &out)
        case .authTimeout(let client):
            guard let session = sessions[client], !session.authenticated, !session.closing else { return finish(out) }
            endSession(client, .authenticationTimeout, now: now, out: &out)
        case .sessionExpiry(let client, let expiresAt):
            guard let session = sessions[client], session.isAttached, session.expiresAt == expiresAt, !session.closing else { return finish(out) }
            endSession(client, .authenticationExpired, now: now, out: &out)
        case .resumeGrace(let client, let awaySince):
            guard let session = sessions[client], session.awaySince == awaySince else { return finish(out) }
            if let roomID = session.roomID { out.events.append(.graceExpired(client: client, room: roomID, early: false)) }
            departAway(client, now: now, out: &out)
        }
        return finish(out)
    }

    /// A round trip to `client` measured by the transport's ping (input to adaptive scheduling).
    public mutating func recordRoundTrip(_ client: ClientID, milliseconds rtt: UInt64) {
        // Round trips are the connection's, kept by no store: not a change to report.
        sessions.updateUnrecorded(client) { session in
            session.meters.recentRTTs.append(rtt)
            if session.meters.recentRTTs.count > 8 { session.meters.recentRTTs.removeFirst(session.meters.recentRTTs.count - 8) }
            session.meters.smoothedRTT = session.meters.smoothedRTT.map { $0 + (Double(rtt) - $0) / 8 } ?? Double(rtt)
        }
    }

    /// Begin a drain: from now on create and join are refused with SERVER_SHUTTING_DOWN.
    public mutating func beginDrain() {
        draining = true
    }

    /// Close every room with "Server shutting down" (pending plays are dropped, never released).
    public mutating func closeAllRooms(now: ServerTime) -> Outcome {
        var out = Outcome()
        var lobby = LobbyChange()
        for roomID in rooms.keys.sorted() {
            closeRoom(roomID, reason: .shutdown, now: now, out: &out, lobby: &lobby)
        }
        flushLobby(lobby, now: now, out: &out)
        return finish(out)
    }

    /// An operator closes a room (admin API): every member gets `room_closed` "Room closed by
    /// the server operator" and returns to the lobby. `nil` when there is no such room.
    public mutating func closeRoomByOperator(_ roomID: RoomID, now: ServerTime) -> Outcome? {
        guard rooms[roomID] != nil else { return nil }
        var out = Outcome()
        var lobby = LobbyChange()
        closeRoom(roomID, reason: .closedByOperator, now: now, out: &out, lobby: &lobby)
        flushLobby(lobby, now: now, out: &out)
        return finish(out)
    }

    /// An operator disconnects `client` (admin API): the seat departs now, no grace (nothing
    /// can resume it: it is gone, token and all), and its connection, if it has one, is closed
    /// with 4007. `nil` when there is no such session.
    public mutating func disconnectByOperator(_ client: ClientID, now: ServerTime) -> Outcome? {
        guard let session = sessions[client] else { return nil }
        var out = Outcome()
        if session.isAttached {
            out.closes.append(CloseRequest(client: client, cause: .disconnectedByOperator))
        }
        departAway(client, now: now, out: &out)
        return finish(out)
    }

    /// Stamps an entry point's outcome with the rooms and sessions it touched (what a store
    /// keeps of them; the connections' meters are not reported: ``TrackedTable/updateUnrecorded(_:_:)``).
    mutating func finish(_ outcome: Outcome) -> Outcome {
        var outcome = outcome
        outcome.changes = StateChanges(rooms: rooms.takeTouched(), sessions: sessions.takeTouched())
        return outcome
    }

    /// Until authenticated, only these are served (PROTOCOL.md §4).
    static let servedBeforeAuth: Set<ClientMessageType> = [.auth, .ping, .clientLog]

    // MARK: Dispatch

    private mutating func dispatch(
        _ message: ClientMessage, from client: ClientID, now: ServerTime, verdict: TokenVerdict?, out: inout Outcome, lobby: inout LobbyChange
    ) throws(ProtocolError) {
        switch message.type {
        case .auth: try authenticate(client, payload: message.payload, verdict: verdict, now: now, out: &out)
        case .ping: out.send(.pong(message.payload), to: [client], room: message.room, now: now)
        case .listRooms: out.send(.roomList(roomList()), to: [client], now: now)
        case .createRoom: try createRoom(by: client, payload: message.payload, now: now, out: &out, lobby: &lobby)
        case .joinRoom: try joinRoom(message.room, by: client, payload: message.payload, now: now, out: &out, lobby: &lobby)
        case .leaveRoom: try leaveRoom(by: client, now: now, out: &out, lobby: &lobby)
        case .closeRoom: try closeRoomByHost(client, now: now, out: &out, lobby: &lobby)
        case .ready: try markReady(client, room: message.room, now: now, out: &out)
        case .playerEvent: try playerEvent(from: client, room: message.room, payload: message.payload, now: now, out: &out)
        case .stateUpdate: try stateUpdate(from: client, room: message.room, payload: message.payload, now: now, out: &out)
        case .chatMessage: try chat(from: client, room: message.room, payload: message.payload, now: now, out: &out)
        case .participantStatus: participantStatus(from: client, room: message.room, payload: message.payload, now: now, out: &out)
        case .clientLog: clientLog(from: client, payload: message.payload, now: now, out: &out)
        case .resume: try resume(byTokenFrom: client, payload: message.payload, now: now, out: &out, lobby: &lobby)
        }
    }

    // MARK: Shared look-ups

    /// The room a room-addressed message names, checked in the protocol's order:
    /// ROOM_ID_REQUIRED, ROOM_NOT_FOUND, NOT_ROOM_MEMBER.
    func memberRoom(_ roomID: RoomID?, of client: ClientID, missing: ErrorCode = .roomIDRequired) throws(ProtocolError) -> Room {
        guard let roomID else { throw ProtocolError(missing) }
        guard let room = rooms[roomID] else { throw ProtocolError(.roomNotFound) }
        guard room.isMember(client) else { throw ProtocolError(.notRoomMember) }
        return room
    }

    func name(of client: ClientID) -> String {
        sessions[client]?.name ?? "Anonymous"
    }

    func participantList(_ room: Room) -> ServerPayload {
        .participantList(room.members.map { ParticipantEntry(name: name(of: $0), isHost: $0 == room.hostID) })
    }

    /// `participant_list` then `participant_statuses` to every member.
    func sendParticipants(_ room: Room, now: ServerTime, out: inout Outcome) {
        out.send(participantList(room), to: room.members, room: room.id, now: now)
        out.send(.participantStatuses(room.orderedStatuses), to: room.members, room: room.id, now: now)
    }
}
