import ArgumentParser
import Foundation
import Logging
import Observability
import Transport
import WatchPartyCore

/// `owp-server`: every setting from a flag or the environment variable of the same name
/// (the flag wins), else the PROTOCOL.md default. Invalid values stop the start with a message
/// naming the setting.
@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owp-server",
        abstract: "OpenWatchParty session server: synchronised watch parties over WebSocket.",
        discussion: """
            Each option can also be set by the environment variable shown in brackets; a flag wins over the environment. \
            JWT mode is turned on by the JWT_SECRET environment variable (HS256, at least 32 bytes); it has no flag so that \
            the secret never shows in a process list.
            """
    )

    @Option(help: "Listen address [HOST] (default 0.0.0.0)") var host: String?
    @Option(help: "Listen port [PORT] (default 3000)") var port: Int?
    @Option(help: "trace|debug|info|notice|warning|error|critical [LOG_LEVEL] (default info)") var logLevel: String?
    @Option(help: "text|json [LOG_FORMAT] (default text)") var logFormat: String?
    @Option(help: "Lead time of a scheduled play, ms [PLAY_SCHEDULE_MS] (default 1500)") var playScheduleMs: Int?
    @Option(help: "Lead time of pause/seek, ms [CONTROL_SCHEDULE_MS] (default 300)") var controlScheduleMs: Int?
    @Option(help: "Longest ready-barrier wait, ms [MAX_READY_WAIT_MS] (default 2000)") var maxReadyWaitMs: Int?
    @Option(help: "Minimum spacing of accepted host state updates, ms [MIN_STATE_UPDATE_INTERVAL_MS] (default 500)") var minStateUpdateIntervalMs: Int?
    @Option(help: "Position jitter threshold, seconds [POSITION_JITTER_THRESHOLD] (default 0.5)") var positionJitterThreshold: Double?
    @Option(help: "Host reports ignored after a command, ms [COMMAND_COOLDOWN_MS] (default 2000)") var commandCooldownMs: Int?
    @Option(help: "Members per room [MAX_CLIENTS_PER_ROOM] (default 20)") var maxClientsPerRoom: Int?
    @Option(help: "fixed|adaptive lead of scheduled plays [PLAY_SCHEDULE_MODE] (default fixed; see docs/sync.md)") var playScheduleMode: String?
    @Option(help: "Guests may play/pause: true|false [GUEST_PLAYBACK_CONTROL] (default true)") var guestPlaybackControl: String?
    @Option(help: "Largest inbound message, bytes [MAX_MESSAGE_SIZE] (default 65536)") var maxMessageSize: Int?
    @Option(help: "Outbound queue per connection, messages [OUTBOUND_QUEUE_SIZE] (default 100)") var outboundQueueSize: Int?
    @Option(help: "Smallest outbound message compressed, bytes [WS_COMPRESSION_THRESHOLD] (default 256)") var wsCompressionThreshold: Int?
    @Option(help: "Comma-separated allowed Origin values, * for any [ALLOWED_ORIGINS] (default http://localhost:8096,https://localhost:8096)")
    var allowedOrigins: String?
    @Option(help: "Open WebSockets in total [MAX_CONNECTIONS] (default 1024)") var maxConnections: Int?
    @Option(help: "Open WebSockets per client address [MAX_CONNECTIONS_PER_IP] (default 64)") var maxConnectionsPerIp: Int?
    @Option(help: "Comma-separated CIDRs whose X-Forwarded-For is trusted [TRUSTED_PROXIES] (default none)") var trustedProxies: String?
    @Option(help: "Messages per connection per second, client_log excluded [RATE_LIMIT_PER_SECOND] (default 30)") var rateLimitPerSecond: Int?
    @Option(help: "Expected JWT aud [JWT_AUDIENCE] (default OpenWatchParty)") var jwtAudience: String?
    @Option(help: "Expected JWT iss [JWT_ISSUER] (default Jellyfin)") var jwtIssuer: String?
    @Option(help: "Clock leeway for JWT exp, nbf and iat, seconds [JWT_LEEWAY_SECONDS] (default 60)") var jwtLeewaySeconds: Int?
    @Option(help: "JWT mode: seconds to a first successful auth [AUTH_TIMEOUT_SECONDS] (default 10)") var authTimeoutSeconds: Int?
    @Option(help: "Seconds between SIGTERM and closing rooms [DRAIN_DELAY_SECONDS] (default 0)") var drainDelaySeconds: Double?
    @Flag(help: "Testing only: serve the WebSocket as a plain echo (for the Autobahn conformance suite), no rooms")
    var echoConformance = false
    @Flag(help: "Benchmarking only: serve the WebSocket as a plain group fan-out (owp-bench's ceiling run), no rooms")
    var fanoutCeiling = false
    @Option(help: "Seconds after SIGTERM by which the process exits [SHUTDOWN_GRACE_SECONDS] (default 10)") var shutdownGraceSeconds: Double?

    func run() async throws {
        let settings = try resolve(environment: ProcessInfo.processInfo.environment)
        LogSetup.bootstrap(format: settings.logFormat, level: settings.logLevel)
        try await SessionServer(settings: settings, logger: Logger(label: "owp-server")).run()
    }

    /// Flags over environment over defaults, validated.
    func resolve(environment: [String: String]) throws -> ServerSettings {
        let env = SettingSource(environment: environment)
        var settings = ServerSettings()
        settings.host = try env.value(host, "HOST", default: settings.host) { !$0.isEmpty }
        settings.port = try env.value(port, "PORT", default: settings.port) { (0...65_535).contains($0) }  // 0: any free port (logged)
        let level = try env.value(logLevel, "LOG_LEVEL", default: "info") { Logger.Level(rawValue: $0.lowercased()) != nil }
        settings.logLevel = Logger.Level(rawValue: level.lowercased()) ?? .info
        let format = try env.value(logFormat, "LOG_FORMAT", default: "text") { LogFormat(rawValue: $0.lowercased()) != nil }
        settings.logFormat = LogFormat(rawValue: format.lowercased()) ?? .text

        let ms = 1...3_600_000
        var rules = settings.rules
        rules.playScheduleMs = UInt64(try env.value(playScheduleMs, "PLAY_SCHEDULE_MS", default: Int(rules.playScheduleMs)) { ms.contains($0) })
        rules.controlScheduleMs = UInt64(try env.value(controlScheduleMs, "CONTROL_SCHEDULE_MS", default: Int(rules.controlScheduleMs)) { ms.contains($0) })
        rules.maxReadyWaitMs = UInt64(try env.value(maxReadyWaitMs, "MAX_READY_WAIT_MS", default: Int(rules.maxReadyWaitMs)) { ms.contains($0) })
        rules.minStateUpdateIntervalMs = UInt64(
            try env.value(minStateUpdateIntervalMs, "MIN_STATE_UPDATE_INTERVAL_MS", default: Int(rules.minStateUpdateIntervalMs)) { (0...3_600_000).contains($0) })
        rules.positionJitterThreshold = try env.value(positionJitterThreshold, "POSITION_JITTER_THRESHOLD", default: rules.positionJitterThreshold) {
            $0.isFinite && $0 >= 0 && $0 <= 3600
        }
        rules.commandCooldownMs = UInt64(try env.value(commandCooldownMs, "COMMAND_COOLDOWN_MS", default: Int(rules.commandCooldownMs)) { (0...3_600_000).contains($0) })
        rules.maxClientsPerRoom = try env.value(maxClientsPerRoom, "MAX_CLIENTS_PER_ROOM", default: rules.maxClientsPerRoom) { (1...10_000).contains($0) }
        let mode = try env.value(playScheduleMode, "PLAY_SCHEDULE_MODE", default: rules.playScheduleMode.rawValue) { PlayScheduleMode(rawValue: $0) != nil }
        rules.playScheduleMode = PlayScheduleMode(rawValue: mode) ?? .fixed
        rules.guestPlaybackControl = try env.flag(guestPlaybackControl, "GUEST_PLAYBACK_CONTROL", default: rules.guestPlaybackControl)
        settings.rules = rules

        var transport = settings.transport
        transport.maxMessageSize = try env.value(maxMessageSize, "MAX_MESSAGE_SIZE", default: transport.maxMessageSize) { (1024...16_777_216).contains($0) }
        transport.outboundQueueCapacity = try env.value(outboundQueueSize, "OUTBOUND_QUEUE_SIZE", default: transport.outboundQueueCapacity) { (1...100_000).contains($0) }
        transport.compressionThreshold = try env.value(wsCompressionThreshold, "WS_COMPRESSION_THRESHOLD", default: transport.compressionThreshold) { $0 >= 0 }
        settings.transport = transport

        var admission = settings.admission
        if let origins = try env.list(allowedOrigins, "ALLOWED_ORIGINS") {
            admission.allowedOrigins = origins
        }
        admission.maxConnections = try env.value(maxConnections, "MAX_CONNECTIONS", default: admission.maxConnections) { (1...1_000_000).contains($0) }
        admission.maxConnectionsPerIP = try env.value(maxConnectionsPerIp, "MAX_CONNECTIONS_PER_IP", default: admission.maxConnectionsPerIP) { (1...1_000_000).contains($0) }
        if let proxies = try env.list(trustedProxies, "TRUSTED_PROXIES") {
            admission.trustedProxies = try proxies.map { entry in
                guard let cidr = CIDR(entry) else { throw ValidationError("TRUSTED_PROXIES: '\(entry)' is not an IP address or CIDR network") }
                return cidr
            }
        }
        settings.admission = admission
        settings.rules.rateLimitPerSecond = try env.value(rateLimitPerSecond, "RATE_LIMIT_PER_SECOND", default: settings.rules.rateLimitPerSecond) { (1...100_000).contains($0) }

        if let secret = environment["JWT_SECRET"], !secret.isEmpty {
            guard secret.utf8.count >= JWTSettings.minimumSecretBytes else {
                throw ValidationError("JWT_SECRET: must be at least \(JWTSettings.minimumSecretBytes) bytes for HS256 (got \(secret.utf8.count)); unset it to run in open mode")
            }
            var jwt = JWTSettings(secret: Secret(secret))
            jwt.audience = try env.value(jwtAudience, "JWT_AUDIENCE", default: jwt.audience) { !$0.isEmpty }
            jwt.issuer = try env.value(jwtIssuer, "JWT_ISSUER", default: jwt.issuer) { !$0.isEmpty }
            jwt.leewaySeconds = try env.value(jwtLeewaySeconds, "JWT_LEEWAY_SECONDS", default: jwt.leewaySeconds) { (0...86_400).contains($0) }
            jwt.authTimeoutSeconds = try env.value(authTimeoutSeconds, "AUTH_TIMEOUT_SECONDS", default: jwt.authTimeoutSeconds) { (1...3600).contains($0) }
            settings.rules.authTimeoutMs = UInt64(jwt.authTimeoutSeconds) * 1000
            settings.jwt = jwt
        }

        settings.echoConformance = echoConformance
        settings.fanoutCeiling = fanoutCeiling
        if echoConformance && fanoutCeiling { throw ValidationError("--echo-conformance and --fanout-ceiling exclude each other") }

        settings.drainDelaySeconds = try env.value(drainDelaySeconds, "DRAIN_DELAY_SECONDS", default: settings.drainDelaySeconds) { $0.isFinite && $0 >= 0 && $0 <= 3600 }
        settings.shutdownGraceSeconds = try env.value(shutdownGraceSeconds, "SHUTDOWN_GRACE_SECONDS", default: settings.shutdownGraceSeconds) {
            $0.isFinite && $0 > 0 && $0 <= 3600
        }
        return settings
    }
}

/// Reads one setting: the flag's value, else the environment's, else the default; checked by `valid`.
struct SettingSource {
    let environment: [String: String]

    func value<T: LosslessStringConvertible>(_ flag: T?, _ name: String, default fallback: T, valid: (T) -> Bool) throws -> T {
        let value: T
        if let flag {
            value = flag
        } else if let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty {
            guard let parsed = T(raw) else { throw ValidationError("\(name): '\(raw)' is not a valid \(T.self) value") }
            value = parsed
        } else {
            return fallback
        }
        guard valid(value) else { throw ValidationError("\(name): '\(value)' is out of range") }
        return value
    }

    /// A comma-separated list; `nil` when not set.
    func list(_ flag: String?, _ name: String) throws -> [String]? {
        guard let raw = flag ?? environment[name] else { return nil }
        let items = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("\(name): empty list") }
        return items
    }

    func flag(_ flag: String?, _ name: String, default fallback: Bool) throws -> Bool {
        guard let raw = flag ?? environment[name], !raw.isEmpty else { return fallback }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("\(name): '\(raw)' is not true or false")
        }
    }
}
