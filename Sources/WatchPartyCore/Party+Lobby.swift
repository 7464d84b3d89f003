/// Lobby bookkeeping collected while one input is handled, flushed once at its end.
struct LobbyChange {
    /// The set of rooms or a member count changed.
    var roomsChanged = false
    /// Connections that stopped being in a room (they get the list even if moved to another room).
    var leftRoom: [ClientID] = []
}

extension Party {
    /// Every room, in creation order, as `room_list` shows it.
    func roomSummaries() -> [RoomSummary] {
        rooms.values.sorted { $0.sequence < $1.sequence }.map {
            RoomSummary(id: $0.id, name: $0.name, count: $0.members.count, mediaID: $0.mediaID)
        }
    }

    /// Moves a connection in or out of a room: the one place a membership pointer changes.
    mutating func setRoom(of client: ClientID, to roomID: RoomID?) {
        sessions[client]?.roomID = roomID
    }

    /// Authenticated connections that are in no room: the lobby.
    func lobbyMembers() -> [ClientID] {
        sessions.values.filter { $0.authenticated && $0.roomID == nil }.map(\.id)
    }

    /// One `room_list` to the lobby and to everyone who left a room during this input.
    func flushLobby(_ change: LobbyChange, now: ServerTime, out: inout Outcome) {
        guard change.roomsChanged || !change.leftRoom.isEmpty else { return }
        var recipients = Set(lobbyMembers())
        var ordered = Array(recipients).sorted()
        for client in change.leftRoom where sessions[client]?.authenticated == true && !recipients.contains(client) {
            recipients.insert(client)
            ordered.append(client)
        }
        out.send(.roomList(roomSummaries()), to: ordered, now: now)
    }
}
