/// The host state-report filter (PROTOCOL.md §8).
extension Party {
    mutating func stateUpdate(from client: ClientID, room roomID: RoomID?, payload: JSONValue?, now: ServerTime, out: inout Outcome) throws(ProtocolError) {
        var room = try memberRoom(roomID, of: client)
        guard room.hostID == client else { throw ProtocolError(.hostPermissionRequired) }
        guard let object = payload?.object,
            let position = try optionalPosition(object["position"]),
            let playState = try optionalPlayState(object["play_state"])
        else { throw ProtocolError(.invalidPlaybackPayload) }

        let projected = room.playback.position(at: now)
        let diff = position - projected
        let result = Self.filter(room: room, playState: playState, diff: diff, now: now, rules: rules)
        out.events.append(.stateUpdate(result: result, drift: abs(diff)))
        guard result == .accepted else { return }

        room.playback = Playback(position: position, playState: playState, asOf: now)
        room.lastAcceptedAt = now
        rooms[room.id] = room
        out.send(.stateUpdate(position: position, playState: playState), to: room.members.filter { $0 != client }, room: room.id, client: client, now: now)
    }

    /// The decision, in the protocol's order: cooldown, play-state change, rate, jitter.
    static func filter(room: Room, playState: PlayState, diff: Double, now: ServerTime, rules: PartyRules) -> StateUpdateResult {
        if room.pendingPlay != nil { return .cooldown }
        if let target = room.lastCommandTarget, now < target + rules.commandCooldownMs { return .cooldown }
        if playState != room.playback.playState { return .accepted }
        if let last = room.lastAcceptedAt, now < last + rules.minStateUpdateIntervalMs { return .rate }
        if abs(diff) < rules.positionJitterThreshold { return .jitter }
        return .accepted
    }
}
