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
}

/// Everything one input to the core produced, in order.
public struct Outcome: Sendable, Equatable {
    public var deliveries: [Delivery] = []
    public var closes: [CloseRequest] = []
    public var timers: [TimerRequest] = []
    public var events: [DomainEvent] = []

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
