/// `participant_status` and its per-room coalescing (PROTOCOL.md §9).
extension Party {
    mutating func participantStatus(from client: ClientID, room roomID: RoomID?, payload: JSONValue?, now: ServerTime, out: inout Outcome) {
        guard let current = sessions[client]?.roomID, let room = rooms[current],
            roomID == nil || roomID == current,
            let status = payload?["status"]?.string.flatMap(ParticipantStatus.init(rawValue:)),
            room.statuses[client] != status
        else { return }
        out.events.append(.participantStatus(status))
        setStatus(status, of: client, in: room.id, now: now, out: &out)
    }

    /// Sets a member's status (`nil`: none, as for an away member) and tells the room, at once
    /// or at the end of the coalescing window; nothing when it does not change.
    mutating func setStatus(_ status: ParticipantStatus?, of client: ClientID, in roomID: RoomID, now: ServerTime, out: inout Outcome) {
        guard var room = rooms[roomID], room.statuses[client] != status else { return }
        room.statuses[client] = status
        if let windowEnd = room.statusWindowEnd, now < windowEnd {
            // Inside the window: merged into one broadcast when it ends.
            if !room.statusFlushPending {
                room.statusFlushPending = true
                out.timers.append(TimerRequest(key: .statusFlush(room: room.id), due: windowEnd))
            }
            rooms[room.id] = room
            return
        }
        room.statusWindowEnd = now + rules.statusCoalesceMs
        rooms[room.id] = room
        out.send(.participantStatuses(room.orderedStatuses), to: room.presentMembers, room: room.id, now: now)
    }

    mutating func flushStatuses(in roomID: RoomID, now: ServerTime, out: inout Outcome) {
        guard var room = rooms[roomID], room.statusFlushPending else { return }
        room.statusFlushPending = false
        room.statusWindowEnd = now + rules.statusCoalesceMs
        rooms[roomID] = room
        out.send(.participantStatuses(room.orderedStatuses), to: room.presentMembers, room: roomID, now: now)
    }
}
