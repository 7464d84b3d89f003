import ArgumentParser
import Foundation
import Logging
import Observability
import Transport
import WatchPartyCore

/// `owp-server`: every setting from a flag or the environment variable of the same name
/// (the flag wins), else the PROTOCOL.md default. Invalid values stop the start with a message
/// naming the setting. Defaults shown in `--help` are read from the settings types themselves.
@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owp-server",
        abstract: "OpenWatchParty session server: synchronised watch parties over WebSocket.",
        discussion: """
            Each option can also be set by the environment variable shown in brackets; a flag wins over the environment. \
            JWT mode is turned on by the JWT_SECRET environment variable (HS256, at least 32 bytes), and the admin API's \
            token comes from ADMIN_TOKEN or the file named by ADMIN_TOKEN_FILE. Several replicas share rooms through \
            PostgreSQL when DATABASE_URL is set (postgres://user:password@host:5432/database?sslmode=prefer). None of \
            these has a flag, so that no secret ever shows in a process list.
            """,
        version: BuildInfo.versionLine
    )

    @OptionGroup(title: "Server") var server: ServerOptions
    @OptionGroup(title: "Sync rules") var sync: SyncOptions
    @OptionGroup(title: "Sessions (PROTOCOL.md §13)") var sessions: SessionOptions
    @OptionGroup(title: "Transport and limits") var transport: TransportOptions
    @OptionGroup(title: "Authentication (JWT mode: set JWT_SECRET)") var auth: AuthOptions
    @OptionGroup(title: "Admin API (off unless ADMIN_PORT is set)") var admin: AdminOptions
    @OptionGroup(title: "Shared store (off unless DATABASE_URL is set; PROTOCOL.md §14)") var store: StoreOptions
    @OptionGroup(title: "Shutdown") var lifecycle: LifecycleOptions
    @OptionGroup(visibility: .private) var testing: TestingOptions

    func run() async throws {
        let settings = try resolve(environment: ProcessInfo.processInfo.environment)
        LogSetup.bootstrap(format: settings.logFormat, level: settings.logLevel)
        try await SessionServer(settings: settings, logger: Logger(label: "owp-server")).run()
    }

    /// Like `AsyncParsableCommand.main()`, but when JSON logs are asked for (`LOG_FORMAT=json`
    /// or `--log-format json`), a start-up failure is one JSON object on stdout too, so that a
    /// log pipeline that parses every line sees why the server did not start.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let exitCode = Self.exitCode(for: error)
            if exitCode != .success, StartupFailure.wantsJSON(arguments: arguments, environment: ProcessInfo.processInfo.environment) {
                print(StartupFailure.jsonLine(message: Self.message(for: error)))
                Foundation.exit(exitCode.rawValue)
            }
            Self.exit(withError: error)
        }
    }

    /// Flags over environment over defaults, validated.
    func resolve(environment: [String: String]) throws -> ServerSettings {
        let env = SettingSource(environment: environment)
        var settings = ServerSettings()
        settings.host = try env.value(server.host, "HOST", default: settings.host) { !$0.isEmpty }
        settings.port = try env.value(server.port, "PORT", default: settings.port) { (0...65_535).contains($0) }  // 0: any free port (logged)
        let level = try env.value(server.logLevel, "LOG_LEVEL", default: settings.logLevel.rawValue) { Logger.Level(rawValue: $0.lowercased()) != nil }
        settings.logLevel = Logger.Level(rawValue: level.lowercased()) ?? .info
        let format = try env.value(server.logFormat, "LOG_FORMAT", default: settings.logFormat.rawValue) { LogFormat(rawValue: $0.lowercased()) != nil }
        settings.logFormat = LogFormat(rawValue: format.lowercased()) ?? .text

        let ms = 1...3_600_000
        var rules = settings.rules
        rules.playScheduleMs = UInt64(try env.value(sync.playScheduleMs, "PLAY_SCHEDULE_MS", default: Int(rules.playScheduleMs)) { ms.contains($0) })
        rules.controlScheduleMs = UInt64(try env.value(sync.controlScheduleMs, "CONTROL_SCHEDULE_MS", default: Int(rules.controlScheduleMs)) { ms.contains($0) })
        rules.maxReadyWaitMs = UInt64(try env.value(sync.maxReadyWaitMs, "MAX_READY_WAIT_MS", default: Int(rules.maxReadyWaitMs)) { ms.contains($0) })
        rules.minStateUpdateIntervalMs = UInt64(
            try env.value(sync.minStateUpdateIntervalMs, "MIN_STATE_UPDATE_INTERVAL_MS", default: Int(rules.minStateUpdateIntervalMs)) {
                (0...3_600_000).contains($0)
            })
        rules.positionJitterThreshold = try env.value(sync.positionJitterThreshold, "POSITION_JITTER_THRESHOLD", default: rules.positionJitterThreshold) {
            $0.isFinite && $0 >= 0 && $0 <= 3600
        }
        rules.commandCooldownMs = UInt64(
            try env.value(sync.commandCooldownMs, "COMMAND_COOLDOWN_MS", default: Int(rules.commandCooldownMs)) { (0...3_600_000).contains($0) })
        rules.maxClientsPerRoom = try env.value(sync.maxClientsPerRoom, "MAX_CLIENTS_PER_ROOM", default: rules.maxClientsPerRoom) { (1...10_000).contains($0) }
        let mode = try env.value(sync.playScheduleMode, "PLAY_SCHEDULE_MODE", default: rules.playScheduleMode.rawValue) { PlayScheduleMode(rawValue: $0) != nil }
        rules.playScheduleMode = PlayScheduleMode(rawValue: mode) ?? .fixed
        rules.guestPlaybackControl = try env.flag(sync.guestPlaybackControl, "GUEST_PLAYBACK_CONTROL", default: rules.guestPlaybackControl)
        rules.resumeGraceMs = UInt64(
            try env.value(sessions.resumeGraceSeconds, "RESUME_GRACE_SECONDS", default: Int(rules.resumeGraceMs / 1000)) { (0...86_400).contains($0) }) * 1000
        rules.resumeByUserID = try env.flag(sessions.resumeByUserId, "RESUME_BY_USER_ID", default: rules.resumeByUserID)
        rules.maxAwaySessions = try env.value(sessions.maxAwaySessions, "MAX_AWAY_SESSIONS", default: rules.maxAwaySessions) { (1...10_000_000).contains($0) }
        settings.rules = rules

        var transportSettings = settings.transport
        transportSettings.maxMessageSize = try env.value(transport.maxMessageSize, "MAX_MESSAGE_SIZE", default: transportSettings.maxMessageSize) {
            (1024...16_777_216).contains($0)
        }
        transportSettings.outboundQueueCapacity = try env.value(transport.outboundQueueSize, "OUTBOUND_QUEUE_SIZE", default: transportSettings.outboundQueueCapacity) {
            (1...100_000).contains($0)
        }
        transportSettings.compressionThreshold = try env.value(
            transport.wsCompressionThreshold, "WS_COMPRESSION_THRESHOLD", default: transportSettings.compressionThreshold) { $0 >= 0 }
        transportSettings.maxTCPConnections = try env.optionalValue(transport.maxTcpConnections, "MAX_TCP_CONNECTIONS") { (1...10_000_000).contains($0) }
        let headTimeout = try env.value(transport.requestHeadTimeoutSeconds, "REQUEST_HEAD_TIMEOUT_SECONDS", default: transportSettings.requestHeadTimeout.seconds) {
            $0.isFinite && $0 >= 0.1 && $0 <= 3600
        }
        transportSettings.requestHeadTimeout = .milliseconds(Int64((headTimeout * 1000).rounded()))
        settings.transport = transportSettings

        var admission = settings.admission
        if let origins = try env.list(transport.allowedOrigins, "ALLOWED_ORIGINS") {
            for origin in origins where !AdmissionPolicy.isValidOriginEntry(origin) {
                throw ValidationError("ALLOWED_ORIGINS: '\(origin)' is not * or an origin like https://jellyfin.example.com[:port] (scheme and host, no path)")
            }
            admission.allowedOrigins = origins
        }
        admission.maxConnections = try env.value(transport.maxConnections, "MAX_CONNECTIONS", default: admission.maxConnections) { (1...1_000_000).contains($0) }
        admission.maxConnectionsPerIP = try env.value(transport.maxConnectionsPerIp, "MAX_CONNECTIONS_PER_IP", default: admission.maxConnectionsPerIP) {
            (1...1_000_000).contains($0)
        }
        if let proxies = try env.list(transport.trustedProxies, "TRUSTED_PROXIES") {
            admission.trustedProxies = try proxies.map { entry in
                guard let cidr = CIDR(entry) else { throw ValidationError("TRUSTED_PROXIES: '\(entry)' is not an IP address or CIDR network") }
                return cidr
            }
        }
        settings.admission = admission
        settings.rules.rateLimitPerSecond = try env.value(transport.rateLimitPerSecond, "RATE_LIMIT_PER_SECOND", default: settings.rules.rateLimitPerSecond) {
            (1...100_000).contains($0)
        }

        if let secret = environment["JWT_SECRET"], !secret.isEmpty {
            guard secret.utf8.count >= JWTSettings.minimumSecretBytes else {
                throw ValidationError(
                    "JWT_SECRET: must be at least \(JWTSettings.minimumSecretBytes) bytes for HS256 (got \(secret.utf8.count)); unset it to run in open mode")
            }
            var jwt = JWTSettings(secret: Secret(secret))
            jwt.audience = try env.value(auth.jwtAudience, "JWT_AUDIENCE", default: jwt.audience) { !$0.isEmpty }
            jwt.issuer = try env.value(auth.jwtIssuer, "JWT_ISSUER", default: jwt.issuer) { !$0.isEmpty }
            jwt.leewaySeconds = try env.value(auth.jwtLeewaySeconds, "JWT_LEEWAY_SECONDS", default: jwt.leewaySeconds) { (0...86_400).contains($0) }
            jwt.authTimeoutSeconds = try env.value(auth.authTimeoutSeconds, "AUTH_TIMEOUT_SECONDS", default: jwt.authTimeoutSeconds) { (1...3600).contains($0) }
            settings.rules.authTimeoutMs = UInt64(jwt.authTimeoutSeconds) * 1000
            settings.jwt = jwt
        }

        settings.admin = try AdminSettings.resolve(admin, env: env)
        if let url = environment["DATABASE_URL"], !url.isEmpty {
            do {
                var database = try DatabaseSettings(url: url)
                database.leaseSeconds = try env.value(store.roomLeaseSeconds, "ROOM_LEASE_SECONDS", default: DatabaseSettings.defaultLeaseSeconds) {
                    DatabaseSettings.leaseRange.contains($0)
                }
                settings.database = database
            } catch let error as SettingsError {
                throw ValidationError(error.description)
            }
        } else if store.roomLeaseSeconds != nil || environment["ROOM_LEASE_SECONDS"] != nil {
            throw ValidationError("ROOM_LEASE_SECONDS: only meaningful with DATABASE_URL (several replicas sharing rooms)")
        }

        settings.echoConformance = testing.echoConformance
        settings.fanoutCeiling = testing.fanoutCeiling
        if testing.echoConformance && testing.fanoutCeiling { throw ValidationError("--echo-conformance and --fanout-ceiling exclude each other") }

        settings.drainDelaySeconds = try env.value(lifecycle.drainDelaySeconds, "DRAIN_DELAY_SECONDS", default: settings.drainDelaySeconds) {
            $0.isFinite && $0 >= 0 && $0 <= 3600
        }
        settings.shutdownGraceSeconds = try env.value(lifecycle.shutdownGraceSeconds, "SHUTDOWN_GRACE_SECONDS", default: settings.shutdownGraceSeconds) {
            $0.isFinite && $0 > 0 && $0 <= 3600
        }
        return settings
    }
}

/// Reads one setting: the flag's value, else the environment's, else the default; checked by `valid`.
struct SettingSource {
    let environment: [String: String]

    func value<T: LosslessStringConvertible>(_ flag: T?, _ name: String, default fallback: T, valid: (T) -> Bool) throws -> T {
        try optionalValue(flag, name, valid: valid) ?? fallback
    }

    /// The flag's value, else the environment's, else `nil`; checked by `valid`.
    func optionalValue<T: LosslessStringConvertible>(_ flag: T?, _ name: String, valid: (T) -> Bool) throws -> T? {
        let value: T
        if let flag {
            value = flag
        } else if let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty {
            guard let parsed = T(raw) else { throw ValidationError("\(name): '\(raw)' is not a valid \(T.self) value") }
            value = parsed
        } else {
            return nil
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
