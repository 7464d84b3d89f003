import Foundation
import Hummingbird
import NIOCore
import NIOPosix
import Logging
import Observability
import PostgresNIO
import ServiceLifecycle
import Transport
import WatchPartyCore

/// The composition root: wires configuration, the core, the transport and the endpoints into
/// one Hummingbird application and runs it until SIGTERM/SIGINT.
struct SessionServer {
    let settings: ServerSettings
    let logger: Logger
    let health = HealthState()
    let metrics = MetricsRegistry(version: BuildInfo.version, revision: BuildInfo.revision, protocolVersion: BuildInfo.protocolVersion, labels: .watchParty)
    let gateway: SessionGateway
    let transport: WebSocketTransport
    /// The process's soft `RLIMIT_NOFILE`, read at start.
    let descriptorLimit: Int
    /// With `DATABASE_URL`: the database client and the store that shares rooms through it.
    let database: (clients: [PostgresClient], store: PostgresPartyStore, bus: ReplicaBus)?

    init(settings: ServerSettings, logger: Logger, clock: any ServerClock = WallClock()) {
        self.settings = settings
        self.logger = logger
        let party = Party(rules: settings.rules, roomIDs: RandomRoomIDs(), tokens: SecureResumeTokens(), authRequired: settings.jwt != nil)
        let store: any PartyStore
        if let databaseSettings = settings.database {
            // Upkeep (renewals, writes) and the look-ups clients cause have pools of their own.
            let client = PostgresClient(configuration: databaseSettings.clientConfiguration(connections: 4), backgroundLogger: logger)
            let lookups = PostgresClient(configuration: databaseSettings.clientConfiguration(connections: DatabaseSettings.lookupConnections), backgroundLogger: logger)
            // The bus between replicas sends on a pool of its own and listens on a connection of its own.
            let busPool = PostgresClient(configuration: databaseSettings.clientConfiguration(connections: 2), backgroundLogger: logger)
            let replica = Self.replicaID()
            let table = RoomTable(client: client, lookups: lookups, replica: replica, leaseSeconds: databaseSettings.leaseSeconds, logger: logger)
            let bus = ReplicaBus(replica: replica, pool: busPool, listenConfiguration: { try databaseSettings.connectionConfiguration() }, health: health, metrics: metrics, logger: logger)
            let shared = PostgresPartyStore(party, table: table, metrics: metrics, health: health, directory: bus.directory, logger: logger)
            database = ([client, lookups, busPool], shared, bus)
            store = shared
        } else {
            database = nil
            store = InMemoryPartyStore(party)
        }
        self.gateway = SessionGateway(
            store: store, clock: clock, metrics: metrics, logger: logger, verifier: settings.jwt.map(JWTVerifier.init), bus: database?.bus)
        var transportConfiguration = settings.transport
        if settings.echoConformance {
            // Autobahn's client answers a ping even in the middle of a frame it is sending in
            // chops (cases 6.4.3/6.4.4), corrupting its own stream: no early ping in echo mode.
            transportConfiguration.firstPingDelay = transportConfiguration.pingInterval
        }
        let acceptor: any ConnectionAcceptor =
            if settings.echoConformance { EchoAcceptor() } else if settings.fanoutCeiling { FanoutCeilingAcceptor() } else { gateway }
        let descriptors = TCPConnectionBudget.descriptorLimit()
        let gateway = self.gateway
        let budget = TCPConnectionBudget(configured: settings.transport.maxTCPConnections, descriptorLimit: descriptors) { open in
            gateway.connectionBoundReached(open: open)
        }
        self.transport = WebSocketTransport(configuration: transportConfiguration, admission: settings.admission, acceptor: acceptor, budget: budget)
        self.descriptorLimit = descriptors
    }

    /// The drain service; it runs before the HTTP server stops (services stop in reverse order).
    var drainCoordinator: DrainCoordinator {
        DrainCoordinator(settings: settings, health: health, metrics: metrics, gateway: gateway, transport: transport, logger: logger)
    }

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        let gateway = self.gateway
        let traffic = transport.traffic
        let budget = transport.budget
        HTTPRoutes.register(
            on: router, health: health, metrics: { [metrics] in metrics.exposition(gateway.metricsSnapshot(traffic: traffic, budget: budget)) },
            authEnabled: settings.jwt != nil)
        let health = self.health
        return Application(
            router: router,
            server: transport.serverBuilder(),
            configuration: .init(
                address: .hostname(settings.host, port: settings.port), serverName: nil, backlog: settings.transport.listenBacklog,
                availableConnectionsDelegate: transport.budget.delegate),
            onServerRunning: { [logger] channel in
                health.markListening()
                logger.info("Serving WebSocket and HTTP", metadata: ["address": .string(Self.address(of: channel))])
            },
            logger: logger
        )
    }

    /// The admin API's own application, when `ADMIN_PORT` is set (docs/operations.md § Admin API).
    func makeAdminApplication() -> (some ApplicationProtocol)? {
        guard let admin = settings.admin else { return nil as Application<RouterResponder<BasicRequestContext>>? }
        return Application(
            router: AdminAPI.router(gateway: gateway, token: admin.token, logger: logger),
            configuration: .init(address: .hostname(admin.host, port: admin.port), serverName: nil),
            onServerRunning: { [logger] channel in
                logger.info("Serving the admin API", metadata: ["address": .string(Self.address(of: channel))])
            },
            logger: logger
        )
    }

    /// This process's name among replicas: the host name (the pod's, in Kubernetes) and a
    /// random part, so that a restarted process never mistakes its predecessor's claims for its own.
    static func replicaID() -> String {
        "\(ProcessInfo.processInfo.hostName.prefix(64))/\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Starts the database client and migrates the schema; a clear error if it cannot.
    private func openDatabase(_ clients: [PostgresClient], _ store: PostgresPartyStore, settings: DatabaseSettings) async throws -> Task<Void, Never> {
        let running = Task {
            await withTaskGroup(of: Void.self) { group in
                for client in clients { group.addTask { await client.run() } }
            }
        }
        let client = store.table.client
        logger.info("Shared store: connecting", metadata: ["database": .string(settings.description), "replica": .string(store.table.replica)])
        do {
            let connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: settings.connectionConfiguration(), id: 0, logger: logger
            ).get()
            try? await connection.close()
            let applied = try await Deadline.within(.seconds(15)) { [logger] in try await StoreSchema.migrate(client, logger: logger) }
            logger.info("Shared store ready", metadata: [
                "schema_version": .stringConvertible(StoreSchema.latestVersion), "migrations_applied": .string(applied.map(String.init).joined(separator: ",")),
                "room_lease_s": .stringConvertible(settings.leaseSeconds),
            ])
        } catch {
            running.cancel()
            throw StartupError("cannot use the database at \(settings.description): \(StoreFailure.describe(error))")
        }
        return running
    }

    /// `host:port` of a listening channel.
    static func address(of channel: any Channel) -> String {
        guard let address = channel.localAddress else { return "?" }
        return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
    }

    func run() async throws {
        if settings.echoConformance {
            logger.warning("Echo conformance mode: the WebSocket echoes messages, no watch party is served")
        }
        if settings.fanoutCeiling {
            logger.warning("Fan-out ceiling mode: the WebSocket relays messages within groups, no watch party is served")
        }
        if let jwt = settings.jwt {
            logger.info("JWT mode: clients must authenticate", metadata: ["audience": .string(jwt.audience), "issuer": .string(jwt.issuer)])
        } else {
            logger.warning("Running in open mode: no JWT_SECRET, every client is accepted as anonymous")
        }
        if settings.admission.allowsAnyOrigin {
            logger.warning("ALLOWED_ORIGINS is '*': any web page may open a WebSocket to this server")
        }
        logger.info("Starting owp-server", metadata: [
            "version": .string(BuildInfo.version), "revision": .string(BuildInfo.revision), "host": .string(settings.host), "port": .stringConvertible(settings.port),
        ])
        logger.debug("Settings", metadata: ["settings": .string("\(settings)")])
        logger.info("Connection bound", metadata: [
            "descriptor_limit": .stringConvertible(descriptorLimit), "tcp_connection_limit": .stringConvertible(transport.budget.limit),
            "websocket_limit": .stringConvertible(settings.admission.maxConnections),
            "request_head_timeout_s": .stringConvertible(settings.transport.requestHeadTimeout.seconds),
        ])
        if settings.admission.maxConnections > transport.budget.limit {
            logger.warning(
                "MAX_CONNECTIONS is above the TCP connection bound: the bound (from the descriptor limit) is what holds",
                metadata: ["max_connections": .stringConvertible(settings.admission.maxConnections), "tcp_connection_limit": .stringConvertible(transport.budget.limit)])
        }
        var databaseClient: Task<Void, Never>?
        if let (clients, store, _) = database, let databaseSettings = settings.database {
            databaseClient = try await openDatabase(clients, store, settings: databaseSettings)
        }
        defer { databaseClient?.cancel() }
        let app = makeApplication()
        var services: [any Service] = [app, drainCoordinator]
        if let (_, store, bus) = database {
            // Before the server, so it stops after it: the drain's handover writes through it.
            services.insert(StoreService(store: store, bus: bus), at: 0)
        }
        if let admin = makeAdminApplication() {
            // First in the group, so it stops last: an operator can watch the drain.
            services.insert(admin, at: 0)
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Whatever is still running at the end of the grace period is cancelled.
        configuration.maximumGracefulShutdownDuration = .seconds(settings.shutdownGraceSeconds)
        configuration.maximumCancellationDuration = .seconds(1)
        try await ServiceGroup(configuration: configuration).run()
        logger.info("owp-server stopped")
    }
}
