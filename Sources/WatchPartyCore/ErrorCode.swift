/// Every error the server sends, with the exact wire code and message of PROTOCOL.md §3.
public enum ErrorCode: String, Sendable, CaseIterable, Hashable {
    case authenticationRequired = "AUTHENTICATION_REQUIRED"
    case authenticationFailed = "AUTHENTICATION_FAILED"
    case authenticationExpired = "AUTHENTICATION_EXPIRED"
    case authenticationTimeout = "AUTHENTICATION_TIMEOUT"
    case protocolVersionUnsupported = "PROTOCOL_VERSION_UNSUPPORTED"
    case rateLimited = "RATE_LIMITED"
    case unsupportedMessageFormat = "UNSUPPORTED_MESSAGE_FORMAT"
    case invalidJSON = "INVALID_JSON"
    case unknownMessageType = "UNKNOWN_MESSAGE_TYPE"
    case roomIDRequired = "ROOM_ID_REQUIRED"
    case roomNotFound = "ROOM_NOT_FOUND"
    case roomFull = "ROOM_FULL"
    case notRoomMember = "NOT_ROOM_MEMBER"
    case notInRoom = "NOT_IN_ROOM"
    case hostPermissionRequired = "HOST_PERMISSION_REQUIRED"
    case invalidPlaybackPayload = "INVALID_PLAYBACK_PAYLOAD"
    case invalidReady = "INVALID_READY"
    case invalidChatPayload = "INVALID_CHAT_PAYLOAD"
    case chatMessageEmpty = "CHAT_MESSAGE_EMPTY"
    case chatMessageTooLong = "CHAT_MESSAGE_TOO_LONG"
    case serverShuttingDown = "SERVER_SHUTTING_DOWN"
    case resumeFailed = "RESUME_FAILED"
    case serviceUnavailable = "SERVICE_UNAVAILABLE"

    /// The human-readable message older clients display.
    public var message: String {
        switch self {
        case .authenticationRequired: "Authentication required"
        case .authenticationFailed: "Authentication failed"
        case .authenticationExpired: "Authentication expired"
        case .authenticationTimeout: "Authentication timeout"
        case .protocolVersionUnsupported: "Unsupported protocol version"
        case .rateLimited: "Rate limit exceeded"
        case .unsupportedMessageFormat: "Only text WebSocket messages are supported"
        case .invalidJSON: "Invalid message format"
        case .unknownMessageType: "Unknown message type"
        case .roomIDRequired: "Room ID is required"
        case .roomNotFound: "Room not found"
        case .roomFull: "Room is full"
        case .notRoomMember: "Client is not a member of this room"
        case .notInRoom: "Client is not in a room"
        case .hostPermissionRequired: "Only the room host can control playback"
        case .invalidPlaybackPayload: "Invalid playback payload"
        case .invalidReady: "Ready message requires a room ID"
        case .invalidChatPayload: "Chat payload must contain text"
        case .chatMessageEmpty: "Chat message cannot be empty"
        case .chatMessageTooLong: "Chat message too long (max 500 characters)"
        case .serverShuttingDown: "Server is shutting down"
        case .resumeFailed: "Session cannot be resumed"
        case .serviceUnavailable: "Service temporarily unavailable"
        }
    }
}

/// A request the core refuses; carried to the error reply.
public struct ProtocolError: Error, Sendable, Equatable {
    public let code: ErrorCode
    public init(_ code: ErrorCode) { self.code = code }
}
