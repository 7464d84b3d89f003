/// How far a room's members are from its timeline, as far as the server can see it
/// (docs/sync.md § Per room): the host's own reports, the statuses the members send, and the
/// round trips of the server's pings. Guests never report positions, so the server cannot
/// measure their offset; what it reports for them is what they say (catching up, buffering)
/// and how far their clock estimate can be off.
public struct RoomSync: Sendable, Equatable {
    /// A room's sync at a glance, the label of `owp_rooms_by_sync`.
    public enum Verdict: String, Sendable, CaseIterable {
        /// Paused, or a play waits on the barrier: there is no moving timeline to keep.
        case paused
        /// Playing, but no host report and no member status since the timeline last changed.
        case unmeasured
        /// The host within ``RoomSync/inStepSeconds`` of the room's timeline, nobody catching up.
        case inStep = "in_step"
        /// The host a little off (up to ``RoomSync/outOfStepSeconds``), or some member says it is
        /// catching up or buffering.
        case drifting
        /// The host further off than ``RoomSync/outOfStepSeconds``, or at least half the guests
        /// catching up or buffering.
        case outOfStep = "out_of_step"
    }

    /// Below this offset the host is in step (the drift filter's own threshold, 50 ms).
    public static let inStepSeconds = 0.05
    /// Past this offset the host is out of step: 100 ms, where a viewer starts to notice.
    public static let outOfStepSeconds = 0.1

    /// Host − room timeline, seconds, smoothed over the host's reports since the timeline last
    /// changed (a command, an accepted report, a drift re-anchor); nil before the first.
    public var hostOffset: Double?
    /// Guests whose last status is `catching_up` or `buffering`.
    public var membersCatchingUp: Int
    /// Guests in the room (members other than the host).
    public var guests: Int
    /// Half the worst recent round trip among the members present, ms: how far a member's
    /// estimate of the server clock can be off on a fully asymmetric link. Nil until measured.
    public var clockUncertaintyMs: UInt64?
    public var verdict: Verdict

    /// The classification of what was seen; `playing` is whether the room's timeline moves.
    init(playing: Bool, hostOffset: Double?, membersCatchingUp: Int, guests: Int, clockUncertaintyMs: UInt64?) {
        self.hostOffset = hostOffset
        self.membersCatchingUp = membersCatchingUp
        self.guests = guests
        self.clockUncertaintyMs = clockUncertaintyMs
        let offset = hostOffset.map(abs)
        if !playing {
            verdict = .paused
        } else if (offset ?? 0) > Self.outOfStepSeconds || (membersCatchingUp > 0 && 2 * membersCatchingUp >= guests) {
            verdict = .outOfStep
        } else if (offset ?? 0) >= Self.inStepSeconds || membersCatchingUp > 0 {
            verdict = .drifting
        } else {
            verdict = offset == nil ? .unmeasured : .inStep
        }
    }
}

extension Party {
    /// The room's sync as the server sees it now (``RoomSync``).
    public func sync(of room: Room) -> RoomSync {
        let guests = room.members.filter { $0 != room.hostID }
        let catchingUp = guests.count { room.statuses[$0] == .catchingUp || room.statuses[$0] == .buffering }
        let worstRTT = room.presentMembers.compactMap { sessions[$0]?.recentMaxRTT }.max()
        return RoomSync(
            playing: room.playback.playState == .playing && room.pendingPlay == nil,
            hostOffset: room.drift.reports > 0 ? room.drift.estimate : nil,
            membersCatchingUp: catchingUp, guests: guests.count,
            clockUncertaintyMs: worstRTT.map { $0 / 2 })
    }
}
