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
        guard rooms[roomID]?.statuses[client] != status else { return }
        rooms[roomID]?.statuses[client] = status
        announceStatuses(in: roomID, now: now, out: &out)
    }

    /// `participant_statuses` to the present members (but `excluded`), at once or, inside the
    /// coalescing window, once when it ends: a status changed, or a member went away or came
    /// back (PROTOCOL.md §13: that is all the others are told of it).
    mutating func announceStatuses(in roomID: RoomID, excluding excluded: ClientID? = nil, now: ServerTime, out: inout Outcome) {
        guard var room = rooms[roomID] else { return }
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
        out.send(.participantStatuses(room.orderedStatuses), to: room.presentMembers.filter { $0 != excluded }, room: room.id, now: now)
    }

    mutating func flushStatuses(in roomID: RoomID, now: ServerTime, out: inout Outcome) {
        guard var room = rooms[roomID], room.statusFlushPending else { return }
        room.statusFlushPending = false
        room.statusWindowEnd = now + rules.statusCoalesceMs
        rooms[roomID] = room
        out.send(.participantStatuses(room.orderedStatuses), to: room.presentMembers, room: roomID, now: now)
    }
}
