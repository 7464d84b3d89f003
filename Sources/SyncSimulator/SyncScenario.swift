import WatchPartyCore

/// One network situation to simulate: members, their links, clocks and the scheduling mode.
public struct SyncScenario: Sendable, Equatable {
    public var name: String
    /// Members in the room, the host included.
    public var members = 5
    /// Round trip of every member's link, in milliseconds (before jitter).
    public var rttMs: Double
    /// Extra one-way delay per message, uniform in [0, jitterMs].
    public var jitterMs: Double
    /// Share of the round trip spent server → client (0.5 = symmetric).
    public var downShare: Double = 0.5
    /// Each member's clock is off the server's by a random amount in ±clockOffsetRangeMs.
    public var clockOffsetRangeMs: Double = 5_000
    /// Client reaction: a scheduled action runs up to this late (timer granularity), uniform.
    public var reactionMs: Double = 2
    /// Scheduling mode under test.
    public var mode: PlayScheduleMode = .fixed
    /// Seconds of clock-sync pings before the host presses play.
    public var warmUpSeconds: Double = 10

    public init(name: String, rttMs: Double, jitterMs: Double, downShare: Double = 0.5, mode: PlayScheduleMode = .fixed) {
        self.name = name
        self.rttMs = rttMs
        self.jitterMs = jitterMs
        self.downShare = downShare
        self.mode = mode
    }

    /// The scenarios of the published table: 20, 100 and 300 ms round trips with jitter, symmetric
    /// and asymmetric, in both modes.
    public static func standard(mode: PlayScheduleMode) -> [SyncScenario] {
        [
            SyncScenario(name: "rtt 20 ms", rttMs: 20, jitterMs: 4, mode: mode),
            SyncScenario(name: "rtt 100 ms", rttMs: 100, jitterMs: 15, mode: mode),
            SyncScenario(name: "rtt 300 ms", rttMs: 300, jitterMs: 40, mode: mode),
            SyncScenario(name: "rtt 100 ms, 80 % down", rttMs: 100, jitterMs: 15, downShare: 0.8, mode: mode),
            SyncScenario(name: "rtt 300 ms, 90 % down", rttMs: 300, jitterMs: 40, downShare: 0.9, mode: mode),
        ]
    }
}
