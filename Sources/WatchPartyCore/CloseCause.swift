/// Why the server closes a connection for a reason of the watch party (not of the transport).
///
/// Each cause has its own close code, so a client, a packet capture and the
/// `owp_connections_closed_total{reason}` metric all tell them apart. Where RFC 6455's codes
/// are too coarse (1008 covered four causes, 1001 two) the codes are application codes in
/// the 4000 range (docs/protocol.md § Close codes). 4001 is reserved for a session taken over
/// by a resume (PROTOCOL.md §13).
public enum CloseCause: String, Sendable, Hashable, CaseIterable {
    /// SIGTERM drain (PROTOCOL.md §11): 1001, as the protocol says.
    case serverShutdown = "shutdown"
    /// Over `RATE_LIMIT_PER_SECOND`, after RATE_LIMITED.
    case rateLimited = "rate_limited"
    /// JWT mode: no successful `auth` in time, after AUTHENTICATION_TIMEOUT.
    case authenticationTimeout = "auth_timeout"
    /// JWT mode: the session's token ran out, after AUTHENTICATION_EXPIRED.
    case authenticationExpired = "auth_expired"
    /// `protocol_version` other than 1, after PROTOCOL_VERSION_UNSUPPORTED.
    case protocolVersionUnsupported = "protocol_version"
    /// An operator disconnected the client through the admin API.
    case disconnectedByOperator = "operator"
    /// A new connection resumed this connection's session (PROTOCOL.md §13).
    case sessionTakenOver = "session_taken_over"
    /// The room moved to another replica (a drain with a shared store, or a lost claim): the
    /// client reconnects and resumes there (PROTOCOL.md §11, §14). 1012, as RFC 6455 means it.
    case serviceRestart = "service_restart"

    public var code: UInt16 {
        switch self {
        case .serverShutdown: 1001
        case .rateLimited: 4002
        case .authenticationTimeout: 4004
        case .authenticationExpired: 4005
        case .protocolVersionUnsupported: 4006
        case .disconnectedByOperator: 4007
        case .sessionTakenOver: 4001
        case .serviceRestart: 1012
        }
    }

    /// The close frame's reason text.
    public var text: String {
        switch self {
        case .serverShutdown: "Server shutting down"
        case .rateLimited: ErrorCode.rateLimited.message
        case .authenticationTimeout: ErrorCode.authenticationTimeout.message
        case .authenticationExpired: ErrorCode.authenticationExpired.message
        case .protocolVersionUnsupported: ErrorCode.protocolVersionUnsupported.message
        case .disconnectedByOperator: "Disconnected by operator"
        case .sessionTakenOver: "Session resumed elsewhere"
        case .serviceRestart: "Service restart"
        }
    }

    /// The cause that follows an error which ends the session, if `code` is one.
    init?(ending code: ErrorCode) {
        switch code {
        case .rateLimited: self = .rateLimited
        case .authenticationTimeout: self = .authenticationTimeout
        case .authenticationExpired: self = .authenticationExpired
        case .protocolVersionUnsupported: self = .protocolVersionUnsupported
        default: return nil
        }
    }
}
