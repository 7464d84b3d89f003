/// Room lifecycle: create, join, leave, close and the departure rules (PROTOCOL.md §5).
extension Party {
    mutating func createRoom(by client: ClientID, payload: JSONValue?, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) throws(ProtocolError) {
        guard !draining else { throw ProtocolError(.serverShuttingDown) }
        adoptName(payload?["user_name"]?.string, for: client)
        if let current = sessions[client]?.roomID {
            if rooms[current]?.hostID == client {
                // The others are told; the host itself is moving on.
                rooms[current]?.members.removeAll { $0 == client }
                setRoom(of: client, to: nil)
                lobby.leftRoom.append(client)
                closeRoom(current, reason: .hostStartedNewRoom, now: now, out: &out, lobby: &lobby)
            } else {
                departFromRoom(client, now: now, out: &out, lobby: &lobby)
            }
        }
        let startPosition = payload?["start_pos"]?.number.flatMap { $0.isFinite && $0 >= 0 && $0 <= rules.maxPosition ? $0 : nil } ?? 0
        let mediaID = payload?["media_id"]?.string.flatMap { Self.isMediaID($0) ? $0 : nil }
        let hostName = name(of: client)
        roomSequence += 1
        let room = Room(
            id: roomIDs.next(),
            name: Sanitizer.name(payload?["name"]?.string) ?? "\(hostName)'s room",
            hostID: client,
            mediaID: mediaID,
            members: [client],
            ready: [client],
            playback: Playback(position: startPosition, playState: .paused, asOf: now),
            sequence: roomSequence,
            createdAt: now
        )
        rooms[room.id] = room
        setRoom(of: client, to: room.id)
        out.events.append(.roomCreated(room: room.id, host: client))
        out.send(.roomState(roomState(room, now: now)), to: [client], room: room.id, now: now)
        sendParticipants(room, now: now, out: &out)
        noteRoomsChanged(&lobby)
    }

    mutating func joinRoom(_ roomID: RoomID?, by client: ClientID, payload: JSONValue?, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) throws(ProtocolError) {
        guard !draining else { throw ProtocolError(.serverShuttingDown) }
        guard let roomID else { throw ProtocolError(.roomIDRequired) }
        guard let target = rooms[roomID] else { throw ProtocolError(.roomNotFound) }
        if target.isMember(client) {
            out.send(.roomState(roomState(target, now: now)), to: [client], room: roomID, now: now)
            return
        }
        guard target.members.count < rules.maxClientsPerRoom else { throw ProtocolError(.roomFull) }
        adoptName(payload?["user_name"]?.string, for: client)
        if sessions[client]?.roomID != nil {
            departFromRoom(client, now: now, out: &out, lobby: &lobby)
        }
        // The departure may have changed nothing about the target (a client is in one room at most).
        guard var room = rooms[roomID] else { throw ProtocolError(.roomNotFound) }
        room.members.append(client)
        rooms[roomID] = room
        setRoom(of: client, to: roomID)
        out.events.append(.memberJoined(room: roomID, client: client, members: room.members.count))
        out.send(.roomState(roomState(room, now: now)), to: [client], room: roomID, now: now)
        out.send(.participantsUpdate(count: room.members.count), to: room.members.filter { $0 != client }, room: roomID, now: now)
        sendParticipants(room, now: now, out: &out)
        sendDuePlay(room, to: client, now: now, out: &out)
        noteRoomsChanged(&lobby)
    }

    mutating func leaveRoom(by client: ClientID, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) throws(ProtocolError) {
        guard sessions[client]?.roomID != nil else { throw ProtocolError(.notInRoom) }
        departFromRoom(client, now: now, out: &out, lobby: &lobby)
    }

    mutating func closeRoomByHost(_ client: ClientID, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) throws(ProtocolError) {
        guard let roomID = sessions[client]?.roomID, let room = rooms[roomID] else { throw ProtocolError(.notInRoom) }
        guard room.hostID == client else { throw ProtocolError(.hostPermissionRequired) }
        closeRoom(roomID, reason: .hostClosed, now: now, out: &out, lobby: &lobby)
    }

    /// A member leaves its room (leave, disconnect, moving elsewhere), by the departure rules.
    mutating func departFromRoom(_ client: ClientID, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) {
        guard let roomID = sessions[client]?.roomID, var room = rooms[roomID] else { return }
        setRoom(of: client, to: nil)
        lobby.leftRoom.append(client)
        noteRoomsChanged(&lobby)
        room.members.removeAll { $0 == client }
        room.ready.remove(client)
        room.away.remove(client)
        room.statuses[client] = nil

        if room.members.isEmpty {
            rooms[roomID] = nil
            out.events.append(.roomClosed(room: roomID, reason: .empty))
            return
        }
        out.events.append(.memberLeft(room: roomID, client: client, members: room.members.count))
        if room.hostID != client {
            rooms[roomID] = room
            out.send(.clientLeft(count: room.members.count), to: room.members, room: roomID, client: client, now: now)
            sendParticipants(room, now: now, out: &out)
            if room.pendingPlay != nil && room.allReady {
                releasePendingPlay(in: roomID, cause: .allReady, now: now, due: now, out: &out)
            }
            return
        }
        // The heir is present: an away member cannot act as host (PROTOCOL.md §13).
        guard let heir = room.presentMembers.first(where: { sessions[$0]?.features.contains(.hostTransfer) == true }) else {
            rooms[roomID] = room
            closeRoom(roomID, reason: .hostLeft, now: now, out: &out, lobby: &lobby)
            return
        }
        room.hostID = heir
        room.pendingPlay = nil
        rooms[roomID] = room
        out.events.append(.hostChanged(room: roomID, host: heir))
        out.send(.clientLeft(count: room.members.count), to: room.members, room: roomID, client: client, now: now)
        out.send(.hostChanged(hostID: heir, hostName: name(of: heir)), to: room.members, room: roomID, now: now)
        sendParticipants(room, now: now, out: &out)
    }

    /// Deletes a room; every member is told why (when there is a reason to tell) and returns to the lobby.
    mutating func closeRoom(_ roomID: RoomID, reason: RoomCloseReason, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) {
        guard let room = rooms.removeValue(forKey: roomID) else { return }
        for member in room.members {
            setRoom(of: member, to: nil)
            // An away member has nothing left to resume.
            if room.away.contains(member) { forget(member, out: &out) }
        }
        if let message = reason.memberMessage {
            out.send(.roomClosed(reason: message), to: room.members, room: roomID, now: now)
        }
        lobby.leftRoom.append(contentsOf: room.members)
        noteRoomsChanged(&lobby)
        out.events.append(.roomClosed(room: roomID, reason: reason))
    }

    /// `room_state` with the position projected to now (PROTOCOL.md §5).
    func roomState(_ room: Room, now: ServerTime) -> RoomStatePayload {
        RoomStatePayload(
            name: room.name,
            hostID: room.hostID,
            position: room.playback.position(at: now),
            playState: room.playback.playState,
            stateServerTs: now,
            targetServerTs: room.lastCommandTarget.flatMap { $0 > now ? $0 : nil },
            participantCount: room.members.count,
            mediaID: room.mediaID
        )
    }

    /// Open mode: `user_name` on create/join renames the sender. In JWT mode the name is the token's.
    mutating func adoptName(_ raw: String?, for client: ClientID) {
        if !authRequired, let name = Sanitizer.name(raw) {
            sessions[client]?.name = name
        }
    }

    static func isMediaID(_ value: String) -> Bool {
        value.utf8.count == 32 && value.utf8.allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
    }
}
