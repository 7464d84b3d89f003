/// Where a room's media is: a position that held at a server time, and whether it advances.
public struct Playback: Sendable, Equatable, Codable {
    public var position: Double
    public var playState: PlayState
    /// The server time at which `position` held.
    public var asOf: ServerTime

    public init(position: Double, playState: PlayState, asOf: ServerTime) {
        self.position = position
        self.playState = playState
        self.asOf = asOf
    }

    /// The position projected to `now`: while playing, it advances one second per second.
    public func position(at now: ServerTime) -> Double {
        guard playState == .playing, now > asOf else { return position }
        return position + Double(now - asOf) / 1000
    }
}

/// A `play` waiting on the ready barrier (PROTOCOL.md §7).
public struct PendingPlay: Sendable, Equatable, Codable {
    /// The position to start from, as of `positionAsOf`.
    public var position: Double
    public var positionAsOf: ServerTime
    public var createdAt: ServerTime
    /// The member who pressed play (the `client` of the released message).
    public var requestedBy: ClientID
    /// Distinguishes this pending play from earlier ones, so a stale timer never releases it.
    public var generation: UInt64
}
