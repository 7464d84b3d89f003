import WatchPartyCore

/// What this build is, for `/healthz`, `owp_build_info` and the start-up log line.
enum BuildInfo {
    static let version = "0.1.0"
    static let protocolVersion = supportedProtocolVersion
}
