import Logging
import Observability
import Transport
import WatchPartyCore

/// Everything the server is configured with, validated. Built from flags and the environment
/// by ``ServerCommand``; tests build it directly.
struct ServerSettings: Sendable {
    var host = "0.0.0.0"
    var port = 3000
    var logLevel: Logger.Level = .info
    var logFormat: LogFormat = .text
    var rules = PartyRules()
    var transport = TransportConfiguration()
    var admission = AdmissionPolicy()
    /// Set when `JWT_SECRET` is: JWT mode. `nil`: open mode.
    var jwt: JWTSettings?
    /// Set when `ADMIN_PORT` is: the admin API's listener.
    var admin: AdminSettings?
    /// Set when `DATABASE_URL` is: rooms shared with other replicas through PostgreSQL (PROTOCOL.md §14).
    var database: DatabaseSettings?
    /// Conformance testing: the transport with an echo handler instead of the watch party.
    var echoConformance = false
    /// Benchmarking: the transport with a trivial group fan-out instead of the watch party.
    var fanoutCeiling = false
    /// Seconds between SIGTERM and closing every room (PROTOCOL.md §11).
    var drainDelaySeconds: Double = 0
    /// Seconds after SIGTERM by which the process has exited.
    var shutdownGraceSeconds: Double = 10
}
