/// The timing constants and limits of the room rules (PROTOCOL.md §5–§9), with its defaults.
///
/// A plain value so tests can shorten or lengthen any rule; the server fills it from its
/// configuration.
public struct PartyRules: Sendable, Equatable {
    /// Lead time of a scheduled play (`PLAY_SCHEDULE_MS`).
    public var playScheduleMs: UInt64 = 1500
    /// Lead time of pause/seek/buffering (`CONTROL_SCHEDULE_MS`).
    public var controlScheduleMs: UInt64 = 300
    /// The lead the upstream web clients add to the position of a play they seek to on its
    /// arrival (their `SYNC_LEAD_MS`, 300 ms). A command sent while the room plays states its
    /// position as of this long before its target, so that such a client, which then waits for
    /// the target to start, lands on the room's timeline; `position` and `server_ts` stay one
    /// true point of that timeline, so a §6 client computes the same thing (docs/sync.md § Naive
    /// clients).
    public var clientSeekLeadMs: UInt64 = 300
    /// Longest wait of a pending play for the ready barrier (`MAX_READY_WAIT_MS`).
    public var maxReadyWaitMs: UInt64 = 2000
    /// Minimum spacing of accepted host state updates (`MIN_STATE_UPDATE_INTERVAL_MS`).
    public var minStateUpdateIntervalMs: UInt64 = 500
    /// Position differences below this are jitter (`POSITION_JITTER_THRESHOLD`, seconds).
    public var positionJitterThreshold: Double = 0.5
    /// Host reports are ignored this long after a command takes effect (`COMMAND_COOLDOWN_MS`).
    public var commandCooldownMs: UInt64 = 2000
    /// A jitter-sized host offset at least this large (seconds)…
    public var driftThreshold: Double = 0.05
    /// …in this many reports in a row, on one side, is drift: the room follows the host.
    public var driftReports: Int = 3
    /// Weight of the newest report in the smoothed offset.
    public var driftSmoothing: Double = 0.5
    /// Members per room (`MAX_CLIENTS_PER_ROOM`).
    public var maxClientsPerRoom: Int = 20
    /// Whether guests may send play and pause (`GUEST_PLAYBACK_CONTROL`).
    public var guestPlaybackControl: Bool = true
    /// `participant_statuses` broadcasts per room are spaced at least this far apart.
    public var statusCoalesceMs: UInt64 = 250
    /// Lobby `room_list` broadcasts are spaced at least this far apart (PROTOCOL.md §5: ≤ 100 ms).
    public var lobbyCoalesceMs: UInt64 = 100
    /// Longest chat text, in UTF-8 bytes as sent.
    public var maxChatBytes: Int = 500
    /// Largest media position accepted, in seconds.
    public var maxPosition: Double = 86_400
    /// Messages per connection per one-second window (`client_log` excluded); more is RATE_LIMITED.
    public var rateLimitPerSecond: Int = 30
    /// The time between two messages of a client that sends at exactly the limit, rounded up
    /// (34 ms at 30/s): how far apart a busy server spreads back the messages it read in a
    /// clump (``Arrival/mayHaveWaited``).
    public var rateSpacingMs: ServerTime { (1000 + ServerTime(max(rateLimitPerSecond, 1)) - 1) / ServerTime(max(rateLimitPerSecond, 1)) }
    /// `client_log` lines a connection may send at once (the upstream client flushes up to 100
    /// buffered lines on connect, before it authenticates); further lines are dropped, not
    /// logged, and counted. `client_log` is exempt from `rateLimitPerSecond` (a log flush must
    /// not disconnect anyone) but never free.
    public var clientLogBurst: Double = 100
    /// `client_log` lines per second a connection earns back after its burst.
    public var clientLogPerSecond: Double = 2
    /// JWT mode: time to a first successful `auth` (`AUTH_TIMEOUT_SECONDS`).
    public var authTimeoutMs: UInt64 = 10_000
    /// How long a session in a room stays away after its connection ends, resumable, before
    /// the departure rules run (`RESUME_GRACE_SECONDS`; 0 = depart at once, PROTOCOL.md §13).
    public var resumeGraceMs: UInt64 = 30_000
    /// Open mode: an `auth` naming a `user_id` resumes that user's away session
    /// (`RESUME_BY_USER_ID`). Off by default: in open mode the id is unverified.
    public var resumeByUserID = false
    /// Sessions away at once (`MAX_AWAY_SESSIONS`): past it, the one away longest departs
    /// early. Bounds what dropping connections can leave behind, whatever their rate.
    public var maxAwaySessions: Int = 10_000
    /// How long a connection suspected of being half-open has to answer a probe before a new
    /// connection of the same user takes its session over (PROTOCOL.md §13: 2 s).
    public var resumeProbeMs: UInt64 = 2000

    /// How a scheduled play's lead time is chosen (`PLAY_SCHEDULE_MODE`).
    public var playScheduleMode: PlayScheduleMode = .fixed
    /// Adaptive mode: added to twice the room's worst recent round trip (see ``PlayScheduleMode/adaptive``).
    public var adaptiveMarginMs: UInt64 = 100

    public init() {}

    /// The lead of a scheduled play for members whose worst recent round trips are `recentMaxRTTs`
    /// (`nil` for a member not measured yet).
    public func playLead(recentMaxRTTs: [UInt64?]) -> UInt64 {
        switch playScheduleMode {
        case .fixed:
            return playScheduleMs
        case .adaptive:
            // A member we know nothing about gets the full, fixed lead: unknown is not fast.
            guard !recentMaxRTTs.isEmpty, !recentMaxRTTs.contains(nil) else { return playScheduleMs }
            let worst = recentMaxRTTs.compactMap { $0 }.max() ?? 0
            return min(max(2 * worst + adaptiveMarginMs, controlScheduleMs), playScheduleMs)
        }
    }
}

/// How far ahead a scheduled play is set (PROTOCOL.md §7 fixes 1500 ms).
public enum PlayScheduleMode: String, Sendable, Equatable, CaseIterable {
    /// Always `PLAY_SCHEDULE_MS` (the protocol's rule).
    case fixed
    /// `clamp(2 × the highest recent RTT in the room + margin, CONTROL_SCHEDULE_MS, PLAY_SCHEDULE_MS)`:
    /// one RTT covers the message's way down even on a fully asymmetric link, the second covers
    /// a spike up to the worst seen recently, and the margin covers jitter, timer granularity
    /// and the client's clock-offset error.
    case adaptive
}
