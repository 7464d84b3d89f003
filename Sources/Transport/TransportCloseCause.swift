/// Why the transport itself closes a connection (the application's own causes are its own).
///
/// Each cause has one close code, so the codes say why: idleness and a slow reader have
/// application codes of their own (4000, 4003) instead of sharing 1001 and 1008 with the
/// drain and the policy closes (docs/protocol.md § Close codes).
public enum TransportCloseCause: String, Sendable, Hashable, CaseIterable {
    /// Nothing (no frame, no pong) arrived for the idle timeout.
    case idle
    /// The outbound queue filled up: the client does not read.
    case slowClient = "slow_client"
    /// A message over the size limit, after reassembly and decompression.
    case messageTooBig = "message_too_big"
    /// A frame that breaks RFC 6455.
    case protocolError = "protocol_error"
    /// A text message that is not UTF-8, or compressed data that does not inflate.
    case invalidPayload = "invalid_payload"

    public var code: UInt16 {
        switch self {
        case .idle: 4000
        case .slowClient: 4003
        case .messageTooBig: 1009
        case .protocolError: 1002
        case .invalidPayload: 1007
        }
    }

    public var text: String {
        switch self {
        case .idle: "Connection idle"
        case .slowClient: "Client cannot accept messages"
        case .messageTooBig: "Message too big"
        case .protocolError: "Protocol error"
        case .invalidPayload: "Invalid payload"
        }
    }
}

/// Why an upgrade was refused before it happened (the `reason` of `owp_connections_rejected_total`).
public enum RefusalReason: String, Sendable, Hashable, CaseIterable {
    /// SIGTERM drain: 503.
    case draining
    /// `Origin` not in `ALLOWED_ORIGINS`: 403.
    case origin
    /// `MAX_CONNECTIONS` reached: 429.
    case maxConnections = "max_connections"
    /// `MAX_CONNECTIONS_PER_IP` reached for this address: 429.
    case maxConnectionsPerIP = "max_connections_per_ip"
    /// Not a valid opening handshake (RFC 6455 §4.2.1: method, HTTP version, `Host`,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Key`): 400.
    case badHandshake = "bad_handshake"
    /// A `Sec-WebSocket-Version` other than 13: 426, naming 13.
    case websocketVersion = "websocket_version"

    /// The HTTP status the upgrade is answered with.
    public var status: Int {
        switch self {
        case .draining: 503
        case .origin: 403
        case .maxConnections, .maxConnectionsPerIP: 429
        case .badHandshake: 400
        case .websocketVersion: 426
        }
    }
}
