import ArgumentParser
import Transport
import WatchPartyCore

/// The flags of `owp-server`, in the groups `--help` shows. Every default in a help text is
/// read from the settings value it defaults (never a second copy that could drift).
private let defaults = ServerSettings()

struct ServerOptions: ParsableArguments {
    @Option(help: "Listen address [HOST] (default \(defaults.host))") var host: String?
    @Option(help: "Listen port [PORT] (default \(defaults.port))") var port: Int?
    @Option(help: "trace|debug|info|notice|warning|error|critical [LOG_LEVEL] (default \(defaults.logLevel.rawValue))") var logLevel: String?
    @Option(help: "text|json [LOG_FORMAT] (default \(defaults.logFormat.rawValue))") var logFormat: String?
}

struct SyncOptions: ParsableArguments {
    @Option(help: "Lead time of a scheduled play, ms [PLAY_SCHEDULE_MS] (default \(defaults.rules.playScheduleMs))") var playScheduleMs: Int?
    @Option(help: "Lead time of pause/seek, ms [CONTROL_SCHEDULE_MS] (default \(defaults.rules.controlScheduleMs))") var controlScheduleMs: Int?
    @Option(help: "Longest ready-barrier wait, ms [MAX_READY_WAIT_MS] (default \(defaults.rules.maxReadyWaitMs))") var maxReadyWaitMs: Int?
    @Option(help: "Minimum spacing of accepted host state updates, ms [MIN_STATE_UPDATE_INTERVAL_MS] (default \(defaults.rules.minStateUpdateIntervalMs))")
    var minStateUpdateIntervalMs: Int?
    @Option(help: "Position jitter threshold, seconds [POSITION_JITTER_THRESHOLD] (default \(defaults.rules.positionJitterThreshold))")
    var positionJitterThreshold: Double?
    @Option(help: "Host reports ignored after a command, ms [COMMAND_COOLDOWN_MS] (default \(defaults.rules.commandCooldownMs))") var commandCooldownMs: Int?
    @Option(help: "Members per room [MAX_CLIENTS_PER_ROOM] (default \(defaults.rules.maxClientsPerRoom))") var maxClientsPerRoom: Int?
    @Option(
        help: """
            \(PlayScheduleMode.allCases.map(\.rawValue).joined(separator: "|")) lead of scheduled plays [PLAY_SCHEDULE_MODE] \
            (default \(defaults.rules.playScheduleMode.rawValue); see docs/sync.md)
            """)
    var playScheduleMode: String?
    @Option(help: "Guests may play/pause: true|false [GUEST_PLAYBACK_CONTROL] (default \(defaults.rules.guestPlaybackControl))") var guestPlaybackControl: String?
}

struct SessionOptions: ParsableArguments {
    @Option(help: "Seconds a member whose connection dropped keeps its seat, resumable; 0 = leave at once [RESUME_GRACE_SECONDS] (default \(defaults.rules.resumeGraceMs / 1000))")
    var resumeGraceSeconds: Int?
    @Option(help: "Open mode: an auth naming a user_id resumes that user's away seat: true|false [RESUME_BY_USER_ID] (default \(defaults.rules.resumeByUserID))")
    var resumeByUserId: String?
    @Option(help: "Members away at once, resumable; past it the one away longest leaves [MAX_AWAY_SESSIONS] (default \(defaults.rules.maxAwaySessions))")
    var maxAwaySessions: Int?
}

struct StoreOptions: ParsableArguments {
    @Option(
        help: """
            Seconds a replica's claim on a room lasts unless renewed; a replica that dies loses its rooms after it \
            [ROOM_LEASE_SECONDS] (default \(DatabaseSettings.defaultLeaseSeconds))
            """)
    var roomLeaseSeconds: Int?
}

struct TransportOptions: ParsableArguments {
    @Option(help: "Largest inbound message, bytes [MAX_MESSAGE_SIZE] (default \(defaults.transport.maxMessageSize))") var maxMessageSize: Int?
    @Option(help: "Outbound queue per connection, messages [OUTBOUND_QUEUE_SIZE] (default \(defaults.transport.outboundQueueCapacity))") var outboundQueueSize: Int?
    @Option(help: "Smallest outbound message compressed, bytes [WS_COMPRESSION_THRESHOLD] (default \(defaults.transport.compressionThreshold))")
    var wsCompressionThreshold: Int?
    @Option(
        help: "Comma-separated browser origins allowed, * for any [ALLOWED_ORIGINS] (default \(defaults.admission.allowedOrigins.joined(separator: ",")))")
    var allowedOrigins: String?
    @Option(help: "Open WebSockets in total [MAX_CONNECTIONS] (default \(defaults.admission.maxConnections))") var maxConnections: Int?
    @Option(help: "Open WebSockets per client address [MAX_CONNECTIONS_PER_IP] (default \(defaults.admission.maxConnectionsPerIP))") var maxConnectionsPerIp: Int?
    @Option(help: "Comma-separated CIDRs whose X-Forwarded-For is trusted [TRUSTED_PROXIES] (default none)") var trustedProxies: String?
    @Option(help: "Messages per connection per second, client_log excluded [RATE_LIMIT_PER_SECOND] (default \(defaults.rules.rateLimitPerSecond))")
    var rateLimitPerSecond: Int?
    @Option(help: "Open TCP connections in all, HTTP included [MAX_TCP_CONNECTIONS] (default: the descriptor limit minus 5 %, at least 64 kept)")
    var maxTcpConnections: Int?
    @Option(help: "Seconds for a request head to arrive after connecting [REQUEST_HEAD_TIMEOUT_SECONDS] (default \(defaults.transport.requestHeadTimeout.components.seconds))")
    var requestHeadTimeoutSeconds: Double?
}

private let jwtDefaults = JWTSettings(secret: Secret(""))

struct AuthOptions: ParsableArguments {
    @Option(help: "Expected JWT aud [JWT_AUDIENCE] (default \(jwtDefaults.audience))") var jwtAudience: String?
    @Option(help: "Expected JWT iss [JWT_ISSUER] (default \(jwtDefaults.issuer))") var jwtIssuer: String?
    @Option(help: "Clock leeway for JWT exp, nbf and iat, seconds [JWT_LEEWAY_SECONDS] (default \(jwtDefaults.leewaySeconds))") var jwtLeewaySeconds: Int?
    @Option(help: "JWT mode: seconds to a first successful auth [AUTH_TIMEOUT_SECONDS] (default \(jwtDefaults.authTimeoutSeconds))") var authTimeoutSeconds: Int?
}

struct AdminOptions: ParsableArguments {
    @Option(help: "Port of the admin API; unset = no admin API [ADMIN_PORT]") var adminPort: Int?
    @Option(help: "Address of the admin API [ADMIN_HOST] (default \(AdminSettings.defaultHost))") var adminHost: String?
    @Option(help: "File holding the admin API's bearer token (or set ADMIN_TOKEN) [ADMIN_TOKEN_FILE]") var adminTokenFile: String?
}

struct LifecycleOptions: ParsableArguments {
    @Option(help: "Seconds between SIGTERM and closing rooms [DRAIN_DELAY_SECONDS] (default \(defaults.drainDelaySeconds))") var drainDelaySeconds: Double?
    @Option(help: "Seconds after SIGTERM by which the process exits [SHUTDOWN_GRACE_SECONDS] (default \(defaults.shutdownGraceSeconds))")
    var shutdownGraceSeconds: Double?
}

/// Flags for the conformance and benchmark harnesses; not shown in `--help`.
struct TestingOptions: ParsableArguments {
    @Flag(help: "Testing only: serve the WebSocket as a plain echo (for the Autobahn conformance suite), no rooms")
    var echoConformance = false
    @Flag(help: "Benchmarking only: serve the WebSocket as a plain group fan-out (owp-bench's ceiling run), no rooms")
    var fanoutCeiling = false
}
