import Foundation
import Logging
import Observability
import Synchronization
import Transport
import WatchPartyCore

/// Connects the transport to the pure core: the one place where the ``Party`` state lives.
///
/// Every input (connect, message, disconnect, timer) takes the lock, reads the clock, runs the
/// core and queues the resulting messages — each encoded once — on the recipients'
/// connections before the lock is released, so every client sees messages in exactly the
/// order the core produced them. Queuing never blocks (bounded per-connection queues).
final class SessionGateway: ConnectionAcceptor {
    private struct State {
        var party: Party
        var connections: [ClientID: Connection] = [:]
        /// The last time handed to the core; time never runs backwards for it.
        var lastNow: ServerTime = 0
        /// Deepest outbound queue of any connection that has closed.
        var closedQueueHighWater = 0
    }

    private let state: Mutex<State>
    private let clock: any ServerClock
    private let logger: Logger
    private let metrics: MetricsRegistry
    /// JWT mode only.
    private let verifier: JWTVerifier?

    init(party: Party, clock: any ServerClock, metrics: MetricsRegistry, logger: Logger, verifier: JWTVerifier? = nil) {
        self.state = Mutex(State(party: party))
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.verifier = verifier
    }

    // MARK: ConnectionAcceptor

    func accept(_ connection: Connection) async -> any ConnectionSession {
        let id = UUID().uuidString.lowercased()
        metrics.connectionOpened()
        logger.info("Connection opened", metadata: ["client_id": .string(id), "remote": .string(connection.remoteAddress ?? "?")])
        apply { state, now in
            state.connections[id] = connection
            return state.party.connect(id, now: now)
        }
        return ClientHandle(id: id, gateway: self)
    }

    func received(text: String, from client: ClientID) async {
        let start = ContinuousClock.now
        let decoded = ClientMessageDecoder.decode(text)
        let type: String
        var verdict: TokenVerdict?
        switch decoded {
        case .success(let message):
            type = message.type.rawValue
            // JWT mode: the token is checked before the core sees the auth (and never logged).
            if message.type == .auth, let verifier, let token = message.payload?["token"]?.string, !token.isEmpty {
                switch await verifier.check(token: token, now: clock.now()) {
                case .success(let valid):
                    verdict = valid
                case .failure(let rejection):
                    verdict = .invalid
                    logger.info("Token refused", metadata: ["client_id": .string(client), "reason": .string(rejection.rawValue)])
                }
            }
        case .failure:
            type = "invalid"
        }
        metrics.messageReceived(type: type)
        logger.debug("Message received", metadata: ["client_id": .string(client), "type": .string(type)])
        apply { state, now in
            switch decoded {
            case .success(let message): state.party.receive(message, from: client, now: now, verdict: verdict)
            case .failure(let error): state.party.reject(client, error.code, now: now)
            }
        }
        metrics.messageHandled(type: type, seconds: (ContinuousClock.now - start).seconds)
    }

    func receivedBinary(from client: ClientID) {
        metrics.messageReceived(type: "binary")
        apply { state, now in state.party.reject(client, .unsupportedMessageFormat, now: now) }
    }

    func disconnected(_ client: ClientID, code: UInt16?) {
        metrics.connectionClosed(code: code.map { String($0) } ?? "client")
        logger.info("Connection closed", metadata: ["client_id": .string(client), "code": .string(code.map { String($0) } ?? "client")])
        apply { state, now in
            if let connection = state.connections.removeValue(forKey: client) {
                state.closedQueueHighWater = max(state.closedQueueHighWater, connection.queueHighWater)
            }
            return state.party.disconnect(client, now: now)
        }
    }

    /// A ping's round trip to `client`: kept by the core (adaptive scheduling) and exported.
    func recordRoundTrip(_ client: ClientID, _ rtt: Duration) {
        metrics.roundTrip(seconds: rtt.seconds)
        let milliseconds = UInt64(max(0, (rtt.seconds * 1000).rounded()))
        state.withLock { $0.party.recordRoundTrip(client, milliseconds: milliseconds) }
    }

    func fire(_ timer: TimerRequest) {
        apply { state, now in state.party.fire(timer.key, now: now) }
        // Measured after the handler ran, with sub-millisecond precision: timer delay + handling.
        let lateness = (clock.preciseNow() - Double(timer.due)) / 1000
        metrics.scheduledRelease(latenessSeconds: lateness)
    }

    // MARK: Drain (PROTOCOL.md §11)

    /// From now on create and join are refused with SERVER_SHUTTING_DOWN.
    func beginDrain() {
        state.withLock { $0.party.beginDrain() }
    }

    /// Closes every room ("Server shutting down"); returns how many there were.
    @discardableResult
    func closeAllRooms() -> Int {
        let count = roomCount
        apply { state, now in state.party.closeAllRooms(now: now) }
        return count
    }

    /// Closes every connection with `code` after its queued messages; returns how many.
    @discardableResult
    func closeAllConnections(code: UInt16, reason: String) -> Int {
        state.withLock { state in
            for connection in state.connections.values {
                connection.close(code: code, reason: reason)
            }
            return state.connections.count
        }
    }

    /// Drops every remaining socket at once; returns how many.
    @discardableResult
    func terminateAllConnections() -> Int {
        state.withLock { state in
            for connection in state.connections.values {
                connection.terminate()
            }
            return state.connections.count
        }
    }

    // MARK: Inspection (metrics, health, tests)

    var roomCount: Int { state.withLock { $0.party.rooms.count } }
    var connectionCount: Int { state.withLock { $0.connections.count } }

    func metricsSnapshot() -> MetricsRegistry.Snapshot {
        state.withLock { state in
            var statuses: [String: Int] = [:]
            for room in state.party.rooms.values {
                for status in room.statuses.values {
                    statuses[status.rawValue, default: 0] += 1
                }
            }
            let openHighWater = state.connections.values.map(\.queueHighWater).max() ?? 0
            return MetricsRegistry.Snapshot(
                roomsActive: state.party.rooms.count,
                authenticatedConnections: state.party.sessions.values.filter(\.authenticated).count,
                participantsByStatus: statuses,
                queueHighWater: max(openHighWater, state.closedQueueHighWater)
            )
        }
    }

    // MARK: The one path every change takes

    private func apply(_ body: (inout State, ServerTime) -> Outcome) {
        let outcome = state.withLock { state -> Outcome in
            let now = max(clock.now(), state.lastNow)
            state.lastNow = now
            let outcome = body(&state, now)
            for delivery in outcome.deliveries {
                let text = OutboundText(delivery.message.encodedJSON())
                var sent = 0
                for recipient in delivery.recipients {
                    guard let connection = state.connections[recipient] else { continue }
                    switch connection.send(text) {
                    case .queued:
                        sent += 1
                    case .overflow:
                        metrics.slowClientDisconnected()
                        logger.warning("Slow client disconnected: outbound queue full", metadata: ["client_id": .string(recipient)])
                    case .closed:
                        break
                    }
                }
                metrics.messagesSent(type: delivery.message.type, count: sent)
            }
            for close in outcome.closes {
                state.connections[close.client]?.close(code: close.code, reason: close.reason)
            }
            return outcome
        }
        for timer in outcome.timers {
            schedule(timer)
        }
        for event in outcome.events {
            record(event)
        }
    }

    private func schedule(_ timer: TimerRequest) {
        // From the precise clock: sleeping `due − now` whole milliseconds would fire every timer
        // up to 1 ms late before any real delay (the server clock floors to milliseconds).
        let delay = max(0, (Double(timer.due) - clock.preciseNow()) / 1000)
        Task { [weak self] in
            try? await Task.sleep(for: .seconds(delay), tolerance: .zero)
            self?.fire(timer)
        }
    }

    /// Turns what the core reports into metrics and logs.
    private func record(_ event: DomainEvent) {
        switch event {
        case .roomCreated(let room):
            metrics.roomCreated()
            metrics.roomMembership(members: 1)
            logger.info("Room created", metadata: ["room_id": .string(room)])
        case .roomClosed(let room, let reason):
            metrics.roomClosed(reason: reason.rawValue)
            logger.info("Room closed", metadata: ["room_id": .string(room), "reason": .string(reason.rawValue)])
        case .memberJoined(_, let members), .memberLeft(_, let members):
            metrics.roomMembership(members: members)
        case .hostChanged(let room):
            logger.info("Host changed", metadata: ["room_id": .string(room)])
        case .errorSent(let code):
            metrics.errorSent(code: code.rawValue)
        case .stateUpdate(let result, let drift):
            metrics.stateUpdate(result: result.rawValue, driftSeconds: drift)
        case .barrierReleased(let cause, let waited, _):
            metrics.barrierReleased(cause: cause.rawValue, waitSeconds: Double(waited) / 1000)
        case .clientLog(let category, let message):
            logger.info("Client log", metadata: ["category": .string(category), "client_message": .string(message)])
        case .playScheduled(let lead):
            metrics.playScheduled(leadSeconds: Double(lead) / 1000)
        case .participantStatus:
            break  // statuses are read at scrape time; timer lateness is measured precisely in `fire`
        }
    }
}

/// One connection's link back to the gateway.
struct ClientHandle: ConnectionSession {
    let id: ClientID
    let gateway: SessionGateway

    func received(text: String) async { await gateway.received(text: text, from: id) }
    func received(binary: [UInt8]) async { gateway.receivedBinary(from: id) }
    func closed(code: UInt16?) async { gateway.disconnected(id, code: code) }
    func measured(roundTrip: Duration) { gateway.recordRoundTrip(id, roundTrip) }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
