/// A room another server owns, as a lobby here lists it.
public struct ListedRoom: Sendable, Equatable {
    public var summary: RoomSummary
    public var createdAt: ServerTime

    public init(summary: RoomSummary, createdAt: ServerTime) {
        self.summary = summary
        self.createdAt = createdAt
    }
}

/// Lobby bookkeeping collected while one input is handled, flushed once at its end.
struct LobbyChange {
    /// The set of rooms or a member count changed.
    var roomsChanged = false
    /// Connections that stopped being in a room (they get the list even if moved to another room).
    var leftRoom: [ClientID] = []
}

extension Party {
    /// Every room, in creation order, as `room_list` shows it: one snapshot (and one encoding)
    /// until a room is created, closed or changes its member count (``noteRoomsChanged(_:)``).
    mutating func roomList() -> RoomList {
        if let cached = roomListCache { return cached }
        let list = RoomList(roomSummaries())
        roomListCache = list
        return list
    }

    /// The set of rooms or a member count changed: the lobby is told (``flushLobby(_:now:out:)``)
    /// and the cached list is stale.
    mutating func noteRoomsChanged(_ lobby: inout LobbyChange) {
        lobby.roomsChanged = true
        roomListCache = nil
    }

    /// Every room, in creation order, built afresh: this server's, and those other servers own
    /// (merged by when each was made; a room here is listed as it is here).
    func roomSummaries() -> [RoomSummary] {
        // Summarise first, then sort the small values (sorting Room values copies whole rooms).
        // A detached room is listed as it was detached: what a summary shows changes only while
        // the room is attached (``Party/detachRoom(_:)``).
        let here = (rooms.values.map(\.listing) + detached.values).map { ($0.sequence, $0.createdAt, $0.summary) }.sorted { $0.0 < $1.0 }
        guard !roomsElsewhere.isEmpty else { return here.map(\.2) }
        let elsewhere = roomsElsewhere.filter { rooms[$0.summary.id] == nil && detached[$0.summary.id] == nil }.map { ($0.createdAt, $0.summary) }
        return (here.map { ($0.1, $0.2) } + elsewhere).sorted { ($0.0, $0.1.id) < ($1.0, $1.1.id) }.map(\.1)
    }

    /// The rooms other servers own now (PROTOCOL.md §14), as the shell read them: listed with
    /// this server's from now on; the lobby is told when that changes the list.
    public mutating func listRoomsElsewhere(_ listed: [ListedRoom], now: ServerTime) -> Outcome {
        var out = Outcome()
        guard listed != roomsElsewhere else { return finish(out) }
        roomsElsewhere = listed
        var lobby = LobbyChange()
        noteRoomsChanged(&lobby)
        flushLobby(lobby, now: now, out: &out)
        return finish(out)
    }

    /// Moves a connection in or out of a room: the one place a membership pointer changes.
    mutating func setRoom(of client: ClientID, to roomID: RoomID?) {
        sessions[client]?.roomID = roomID
        refreshLobby(client)
    }

    /// Keeps the lobby index (authenticated connections in no room) exact for `client`.
    mutating func refreshLobby(_ client: ClientID) {
        if let session = sessions[client], session.authenticated, session.isAttached, session.roomID == nil {
            lobbyClients.insert(client)
        } else {
            lobbyClients.remove(client)
        }
    }

    /// Sends `room_list` at once to everyone who left a room during this input, and to the lobby
    /// when rooms or counts changed: at once if no lobby broadcast went out in the last
    /// `lobbyCoalesceMs`, else once at the end of that window (PROTOCOL.md §5 allows 100 ms),
    /// with the list as it is then. With thousands of lobby connections, a burst of joins would
    /// otherwise send each of them one list per join.
    mutating func flushLobby(_ change: LobbyChange, now: ServerTime, out: inout Outcome) {
        var recipients: [ClientID] = []
        if change.roomsChanged {
            if let windowEnd = lobbyWindowEnd, now < windowEnd {
                if !lobbyFlushPending {
                    lobbyFlushPending = true
                    out.timers.append(TimerRequest(key: .lobbyFlush, due: windowEnd))
                }
            } else {
                lobbyWindowEnd = now + rules.lobbyCoalesceMs
                recipients = lobbyClients.sorted()  // a stable order: a run is reproducible from its inputs
            }
        }
        let alreadyIncluded = Set(recipients)
        for client in change.leftRoom where sessions[client].map({ $0.authenticated && $0.isAttached }) == true && !alreadyIncluded.contains(client) {
            recipients.append(client)
        }
        // Most inputs change no room: build the list only when someone will get it.
        guard !recipients.isEmpty else { return }
        out.send(.roomList(roomList()), to: recipients, now: now)
    }

    /// The end of a coalescing window with a change pending: the lobby gets the current list.
    mutating func fireLobbyFlush(now: ServerTime, out: inout Outcome) {
        guard lobbyFlushPending else { return }
        lobbyFlushPending = false
        lobbyWindowEnd = now + rules.lobbyCoalesceMs
        guard !lobbyClients.isEmpty else { return }
        out.send(.roomList(roomList()), to: lobbyClients.sorted(), now: now)
    }
}
