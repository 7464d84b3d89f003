/// A server message for a set of recipients; the shell encodes it once for all of them.
public struct Delivery: Sendable, Equatable {
    public var recipients: [ClientID]
    public var message: ServerMessage
}

/// A connection the core wants closed, after the deliveries queued before it.
public struct CloseRequest: Sendable, Equatable {
    public var client: ClientID
    public var cause: CloseCause

    public init(client: ClientID, cause: CloseCause) {
        self.client = client
        self.cause = cause
    }

    /// The WebSocket close code sent (docs/protocol.md § Close codes).
    public var code: UInt16 { cause.code }
    /// The close frame's reason text.
    public var reason: String { cause.text }
}

/// A timer the shell must fire back into the core with ``Party/fire(_:now:)`` at `due`.
///
/// Timers are never cancelled: a timer whose reason has gone is ignored when it fires.
public struct TimerRequest: Sendable, Equatable, Hashable {
    public var key: TimerKey
    public var due: ServerTime
}

public enum TimerKey: Sendable, Equatable, Hashable {
    /// The ready-barrier deadline of a pending play.
    case readyWait(room: RoomID, generation: UInt64)
    /// The end of a `participant_statuses` coalescing window.
    case statusFlush(room: RoomID)
    /// The end of a `room_list` lobby coalescing window.
    case lobbyFlush
    /// JWT mode: the deadline for a connection's first successful `auth`.
    case authTimeout(client: ClientID)
    /// JWT mode: the session's token expires (a later `auth` moves `expiresAt`, making this one stale).
    case sessionExpiry(client: ClientID, expiresAt: ServerTime)
    /// The end of an away session's grace (stale once it resumed, even if it went away again).
    case resumeGrace(session: ClientID, awaySince: ServerTime)
}

/// A session moves to another connection (PROTOCOL.md §13).
///
/// The connection that was opened as `carrier` (and greeted with that id) carries `session`
/// from now on; the id `carrier` is gone. If `session` was still attached to a connection,
/// that connection is closed with 4001 (``CloseCause/sessionTakenOver``) and nothing it
/// sends afterwards reaches the core. Effects keep their order: the shell delivers the
/// outcome's first ``afterDeliveries`` deliveries (an `auth_success` to `carrier`, say), then
/// applies the handover, then the rest (addressed to `session`).
public struct Handover: Sendable, Equatable {
    public var session: ClientID
    public var carrier: ClientID
    /// The session was attached (a half-open or superseded connection) rather than away.
    public var tookOver: Bool
    /// How many of the outcome's deliveries come before this handover.
    public var afterDeliveries: Int

    public init(session: ClientID, carrier: ClientID, tookOver: Bool, afterDeliveries: Int = 0) {
        self.session = session
        self.carrier = carrier
        self.tookOver = tookOver
        self.afterDeliveries = afterDeliveries
    }
}

/// A connection the core suspects of being half-open: the shell pings it at once and, after
/// `withinMs`, reports with ``Party/settleProbe(of:for:answered:now:)`` whether anything
/// arrived from it since (a connection already gone has not answered).
public struct ProbeRequest: Sendable, Equatable {
    public var session: ClientID
    /// The new connection of the same user that would take the session over.
    public var claimant: ClientID
    public var withinMs: UInt64
}

/// Everything one input to the core produced, in order.
public struct Outcome: Sendable, Equatable {
    public var deliveries: [Delivery] = []
    public var closes: [CloseRequest] = []
    public var timers: [TimerRequest] = []
    public var events: [DomainEvent] = []
    /// Sessions that changed connection, each between two ``deliveries`` (``Handover/afterDeliveries``).
    public var handovers: [Handover] = []
    public var probes: [ProbeRequest] = []
    /// The rooms and sessions this input touched (filled in by ``Party`` as the input ends).
    public var changes = StateChanges()

    public init() {}

    mutating func send(_ payload: ServerPayload, to recipients: [ClientID], room: RoomID? = nil, client: ClientID? = nil, now: ServerTime, serverTs: ServerTime? = nil) {
        guard !recipients.isEmpty else { return }
        deliveries.append(Delivery(recipients: recipients, message: ServerMessage(room: room, client: client, ts: now, serverTs: serverTs, payload: payload)))
    }

    mutating func error(_ code: ErrorCode, to client: ClientID, room: RoomID?, now: ServerTime) {
        send(.error(code), to: [client], room: room, client: client, now: now)
        events.append(.errorSent(code))
    }
}
