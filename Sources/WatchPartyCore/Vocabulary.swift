/// Server time: Unix epoch milliseconds from the server's wall clock.
public typealias ServerTime = UInt64

/// A connection's id (UUID v4, assigned by the server at connect).
public typealias ClientID = String

/// A room's id (UUID v4).
public typealias RoomID = String

/// The room's playback state on the wire.
public enum PlayState: String, Sendable, Hashable, Codable {
    case playing
    case paused
}

/// `player_event` actions.
public enum PlayerAction: String, Sendable, Hashable {
    case play
    case pause
    case seek
    case buffering
}

/// A member's self-reported watching status (`participant_status`, PROTOCOL.md §9).
public enum ParticipantStatus: String, Sendable, Hashable, CaseIterable {
    case playing
    case paused
    case inSync = "in_sync"
    case catchingUp = "catching_up"
    case buffering
    case loading
    case blocked
    case notWatching = "not_watching"
}

/// Optional behaviours a client declares in `auth.payload.features`.
public enum ClientFeature: String, Sendable, Hashable, CaseIterable {
    case hostTransfer = "host_transfer"
    case participantStatus = "participant_status"
}

/// The only protocol version this server speaks.
public let supportedProtocolVersion = 1
