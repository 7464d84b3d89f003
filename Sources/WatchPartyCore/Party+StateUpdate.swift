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
        var result = Self.filter(room: room, playState: playState, diff: diff, now: now, rules: rules)
        // A report of the room's own moving timeline, off it by less than the jitter threshold.
        let onTimeline = room.playback.playState == .playing && room.pendingPlay == nil && playState == .playing
            && abs(diff) < rules.positionJitterThreshold
        switch result {
        case .jitter:
            // Too small to be a change on its own; a small offset that persists (the host's
            // start latency, a stall) is drift, and the room follows the host.
            if onTimeline, room.drift.observe(diff, rules: rules) { result = .drift }
            rooms[room.id] = room
        case .cooldown:
            // Dropped, as §8 says, but still evidence: a host that started its video late shows
            // it from its first report, and the first report after the cooldown can then correct
            // the room at once instead of three reports later. Anything else starts over.
            if onTimeline { _ = room.drift.observe(diff, rules: rules) } else { room.drift = DriftTracker() }
            rooms[room.id] = room
        default:
            break
        }
        out.events.append(.stateUpdate(result: result, drift: abs(diff)))
        guard result == .accepted || result == .drift else { return }

        room.playback = Playback(position: position, playState: playState, asOf: now)
        room.lastAcceptedAt = now
        room.drift = DriftTracker()
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

/// Tells a host's jitter from drift (docs/sync.md § The state filter): reports inside the
/// jitter threshold are noise one by one, but when `PartyRules/driftReports` of them in a row
/// are off the room's timeline by at least `PartyRules/driftThreshold` on the same side, and
/// their smoothed offset is too, the offset is real and the room is re-anchored at the host.
/// Hysteresis: one report back within the threshold, or on the other side, starts over.
public struct DriftTracker: Sendable, Equatable {
    /// The offset smoothed over recent reports (seconds, host − room); the first report's own
    /// offset until a second one comes.
    public private(set) var estimate: Double = 0
    /// Consecutive reports beyond the threshold on the same side (its sign is `estimate`'s).
    public private(set) var streak = 0
    /// Reports observed since the room's timeline last changed (``RoomSync/hostOffset``).
    public private(set) var reports = 0
    private var side: FloatingPointSign?

    public init() {}

    /// Takes one jitter-sized report's offset; true when the offset has persisted.
    mutating func observe(_ diff: Double, rules: PartyRules) -> Bool {
        estimate = reports == 0 ? diff : estimate + rules.driftSmoothing * (diff - estimate)
        reports += 1
        if abs(diff) >= rules.driftThreshold {
            streak = side == diff.sign ? streak + 1 : 1
            side = diff.sign
        } else {
            streak = 0
            side = nil
        }
        return streak >= rules.driftReports && abs(estimate) >= rules.driftThreshold && estimate.sign == side
    }
}
