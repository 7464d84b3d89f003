import WatchPartyCore

/// What this build is, for `/healthz`, `owp_build_info`, `--version` and the start-up log line.
/// The revision is the git commit the binary was built from (BuildInfoPlugin), or
/// `OWP_BUILD_REVISION` given to the build (the container image), or `unknown`.
enum BuildInfo {
    static let version = GeneratedBuildInfo.versionOverride ?? "0.1.0"
    static let revision = GeneratedBuildInfo.revision
    static let protocolVersion = supportedProtocolVersion
    /// `owp-server --version`.
    static let versionLine = "\(version) (revision \(revision), protocol \(protocolVersion))"
}
