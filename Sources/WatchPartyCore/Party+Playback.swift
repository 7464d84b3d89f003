/// Playback control and the ready barrier (PROTOCOL.md §6–§7).
extension Party {
    /// A validated `player_event` payload.
    struct PlayerCommand {
        var action: PlayerAction
        var position: Double?
        var playState: PlayState?
    }

    mutating func playerEvent(from client: ClientID, room roomID: RoomID?, payload: JSONValue?, now: ServerTime, out: inout Outcome) throws(ProtocolError) {
        var room = try memberRoom(roomID, of: client)
        let isHost = room.hostID == client
        if !isHost {
            // Guests may only play and pause, and only when allowed; their position is ignored.
            let action = payload?["action"]?.string.flatMap(PlayerAction.init(rawValue:))
            guard rules.guestPlaybackControl, action == .play || action == .pause else {
                throw ProtocolError(.hostPermissionRequired)
            }
        }
        // A guest's position is ignored, not validated (docs/protocol.md, choice 2): drop it before parsing.
        var commandPayload = payload
        if !isHost, case .object(var fields)? = payload {
            fields["position"] = nil
            commandPayload = .object(fields)
        }
        let command = try parsePlayerCommand(commandPayload)

        let position = command.position ?? room.playback.position(at: now)
        // Adaptive mode: a position the sender reported held when it clicked, about half a
        // round trip ago; fixed mode keeps the protocol's "as of now".
        let heldAt = rules.playScheduleMode == .adaptive && command.position != nil
            ? now - min(now, UInt64((sessions[client]?.smoothedRTT ?? 0) / 2)) : now
        room.lastAcceptedAt = now
        switch command.action {
        case .play:
            room.playback = Playback(position: position, playState: .paused, asOf: heldAt)
            if room.allReady {
                room.pendingPlay = nil
                rooms[room.id] = room
                schedulePlay(in: room.id, position: position, positionAsOf: heldAt, requestedBy: client, releaseAt: now, out: &out)
            } else if room.pendingPlay != nil {
                room.pendingPlay?.position = position
                room.pendingPlay?.positionAsOf = heldAt
                rooms[room.id] = room
            } else {
                pendingGeneration += 1
                room.pendingPlay = PendingPlay(position: position, positionAsOf: heldAt, createdAt: now, requestedBy: client, generation: pendingGeneration)
                rooms[room.id] = room
                out.timers.append(TimerRequest(key: .readyWait(room: room.id, generation: pendingGeneration), due: now + rules.maxReadyWaitMs))
            }
        case .pause, .buffering, .seek:
            let playState: PlayState
            if command.action == .seek {
                if room.pendingPlay != nil {
                    // The pending play starts from the new position; the room stays paused until it goes out.
                    room.pendingPlay?.position = position
                    room.pendingPlay?.positionAsOf = heldAt
                    playState = .paused
                } else {
                    playState = command.playState ?? room.playback.playState
                }
            } else {
                room.pendingPlay = nil
                playState = .paused
            }
            let target = now + rules.controlScheduleMs
            room.playback = Playback(position: position, playState: playState, asOf: heldAt)
            room.lastCommandTarget = target
            room.drift = DriftTracker()
            rooms[room.id] = room
            // While playing, the position is stated as of the command's anchor (here: now, as
            // the control lead is the clients' seek lead): a client that seeks there on arrival
            // and plays at once is where the host is (docs/sync.md § Naive clients).
            let (wirePosition, serverTs) = wireAnchor(room.playback, target: target)
            let event = PlayerEventPayload(action: command.action, position: wirePosition, playState: playState, targetServerTs: target)
            out.send(.playerEvent(event), to: room.members.filter { $0 != client }, room: room.id, client: client, now: now, serverTs: serverTs)
        }
    }

    mutating func markReady(_ client: ClientID, room roomID: RoomID?, now: ServerTime, out: inout Outcome) throws(ProtocolError) {
        var room = try memberRoom(roomID, of: client, missing: .invalidReady)
        room.ready.insert(client)
        rooms[room.id] = room
        if room.pendingPlay != nil && room.allReady {
            releasePendingPlay(in: room.id, cause: .allReady, now: now, due: now, out: &out)
        }
    }

    /// Sends the room's pending play out, once: by the last `ready` (or departure) or by its timer.
    mutating func releasePendingPlay(in roomID: RoomID, cause: BarrierReleaseCause, now: ServerTime, due: ServerTime, out: inout Outcome) {
        guard var room = rooms[roomID], let pending = room.pendingPlay else { return }
        room.pendingPlay = nil
        rooms[roomID] = room
        let lateness = now > due ? now - due : 0
        out.events.append(.barrierReleased(cause: cause, waitedMs: now - min(now, pending.createdAt), latenessMs: lateness))
        schedulePlay(in: roomID, position: pending.position, positionAsOf: pending.positionAsOf, requestedBy: pending.requestedBy, releaseAt: now, out: &out)
    }

    /// A scheduled play to every member, the host included (PROTOCOL.md §7).
    private mutating func schedulePlay(in roomID: RoomID, position: Double, positionAsOf: ServerTime, requestedBy: ClientID, releaseAt now: ServerTime, out: inout Outcome) {
        guard var room = rooms[roomID] else { return }
        let lead = rules.playLead(recentMaxRTTs: room.presentMembers.map { sessions[$0]?.recentMaxRTT })
        let target = now + lead
        out.events.append(.playScheduled(leadMs: lead))
        room.playback = Playback(position: position, playState: .playing, asOf: positionAsOf)
        room.lastCommandTarget = target
        room.lastAcceptedAt = now
        room.drift = DriftTracker()
        rooms[roomID] = room
        // The position where the room will be a seek lead before the target, and server_ts =
        // then: a client that seeks on arrival to `position` plus its own 300 ms lead, or one
        // that projects `position` to the target and starts there (the two upstream
        // generations), is in step with a host that started at its click; a §6 client
        // projecting `position + (t − server_ts)` computes the very same timeline.
        let (wirePosition, serverTs) = wireAnchor(room.playback, target: target)
        let event = PlayerEventPayload(action: .play, position: wirePosition, playState: .playing, targetServerTs: target)
        out.send(.playerEvent(event), to: room.members, room: roomID, client: requestedBy, now: now, serverTs: serverTs)
    }

    /// A late joiner of a playing room: after its `room_state`, a play due a control lead from
    /// now (or when the room's last command takes effect, if later), positioned as of then. The
    /// upstream clients do not keep a joined room playing from `room_state` alone (one adds its
    /// own seek lead and ignores corrections for 8 s); a due play lines them up.
    func sendDuePlay(_ room: Room, to client: ClientID, now: ServerTime, out: inout Outcome) {
        guard room.playback.playState == .playing, room.pendingPlay == nil else { return }
        let target = max(now + rules.controlScheduleMs, room.lastCommandTarget ?? 0)
        let (wirePosition, serverTs) = wireAnchor(room.playback, target: target)
        let event = PlayerEventPayload(action: .play, position: wirePosition, playState: .playing, targetServerTs: target)
        out.send(.playerEvent(event), to: [client], room: room.id, client: room.hostID, now: now, serverTs: serverTs)
    }

    /// The wire `position` and `server_ts` of a command due at `target`: while playing, the
    /// room's position a client seek lead before the target (never before the room's own
    /// anchor), and that moment; while paused, as the room has it. Either way one true point
    /// of the room's timeline.
    func wireAnchor(_ playback: Playback, target: ServerTime) -> (position: Double, serverTs: ServerTime) {
        guard playback.playState == .playing else { return (playback.position, playback.asOf) }
        let anchor = max(target - min(target, rules.clientSeekLeadMs), playback.asOf)
        return (playback.position(at: anchor), anchor)
    }

    /// INVALID_PLAYBACK_PAYLOAD unless the payload is an object with a known action, a finite
    /// position within range (required for seek) and a valid play_state when present.
    func parsePlayerCommand(_ payload: JSONValue?) throws(ProtocolError) -> PlayerCommand {
        guard let object = payload?.object,
            let action = object["action"]?.string.flatMap(PlayerAction.init(rawValue:))
        else { throw ProtocolError(.invalidPlaybackPayload) }
        let position = try optionalPosition(object["position"])
        if action == .seek && position == nil { throw ProtocolError(.invalidPlaybackPayload) }
        let playState = try optionalPlayState(object["play_state"])
        return PlayerCommand(action: action, position: position, playState: playState)
    }

    func optionalPosition(_ value: JSONValue?) throws(ProtocolError) -> Double? {
        guard let value, value != .null else { return nil }
        guard let number = value.number, number.isFinite, number >= 0, number <= rules.maxPosition else {
            throw ProtocolError(.invalidPlaybackPayload)
        }
        return number
    }

    func optionalPlayState(_ value: JSONValue?) throws(ProtocolError) -> PlayState? {
        guard let value, value != .null else { return nil }
        guard let state = value.string.flatMap(PlayState.init(rawValue:)) else { throw ProtocolError(.invalidPlaybackPayload) }
        return state
    }
}
