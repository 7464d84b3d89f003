import Hummingbird
import Logging
import Observability
import ServiceLifecycle
import Transport
import WatchPartyCore

/// The composition root: wires configuration, the core, the transport and the endpoints into
/// one Hummingbird application and runs it until SIGTERM/SIGINT.
struct SessionServer {
    let settings: ServerSettings
    let logger: Logger
    let health = HealthState()
    let metrics = MetricsRegistry(version: BuildInfo.version, protocolVersion: BuildInfo.protocolVersion, labels: .watchParty)
    let gateway: SessionGateway

    init(settings: ServerSettings, logger: Logger, clock: any ServerClock = WallClock()) {
        self.settings = settings
        self.logger = logger
        let party = Party(rules: settings.rules, roomIDs: RandomRoomIDs())
        self.gateway = SessionGateway(party: party, clock: clock, metrics: metrics, logger: logger)
    }

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        let gateway = self.gateway
        HTTPRoutes.register(on: router, health: health, metrics: { [metrics] in metrics.exposition(gateway.metricsSnapshot()) }, authEnabled: false)
        let transport = WebSocketTransport(configuration: settings.transport, acceptor: gateway)
        let health = self.health
        return Application(
            router: router,
            server: transport.serverBuilder(),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: nil),
            onServerRunning: { _ in health.markListening() },
            logger: logger
        )
    }

    func run() async throws {
        logger.warning("Running in open mode: no JWT_SECRET, every client is accepted as anonymous")
        logger.info("Starting owp-server", metadata: ["version": .string(BuildInfo.version), "host": .string(settings.host), "port": "\(settings.port)"])
        let app = makeApplication()
        let group = ServiceGroup(
            configuration: .init(
                services: [app],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
