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
    }

    private let state: Mutex<State>
    private let clock: any ServerClock
    private let logger: Logger
    private let metrics: MetricsRegistry

    init(party: Party, clock: any ServerClock, metrics: MetricsRegistry, logger: Logger) {
        self.state = Mutex(State(party: party))
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
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

    func received(text: String, from client: ClientID) {
        let decoded = ClientMessageDecoder.decode(text)
        apply { state, now in
            switch decoded {
            case .success(let message): state.party.receive(message, from: client, now: now)
            case .failure(let error): state.party.reject(client, error.code, now: now)
            }
        }
    }

    func receivedBinary(from client: ClientID) {
        apply { state, now in state.party.reject(client, .unsupportedMessageFormat, now: now) }
    }

    func disconnected(_ client: ClientID) {
        metrics.connectionClosed()
        logger.info("Connection closed", metadata: ["client_id": .string(client)])
        apply { state, now in
            state.connections[client] = nil
            return state.party.disconnect(client, now: now)
        }
    }

    func fire(_ key: TimerKey) {
        apply { state, now in state.party.fire(key, now: now) }
    }

    // MARK: Inspection (health, tests)

    var roomCount: Int { state.withLock { $0.party.rooms.count } }
    var connectionCount: Int { state.withLock { $0.connections.count } }

    // MARK: The one path every change takes

    private func apply(_ body: (inout State, ServerTime) -> Outcome) {
        let outcome = state.withLock { state -> Outcome in
            let now = max(clock.now(), state.lastNow)
            state.lastNow = now
            let outcome = body(&state, now)
            for delivery in outcome.deliveries {
                let text = OutboundText(delivery.message.encodedJSON())
                for recipient in delivery.recipients {
                    guard let connection = state.connections[recipient] else { continue }
                    if connection.send(text) == .overflow {
                        logger.warning("Slow client disconnected: outbound queue full", metadata: ["client_id": .string(recipient)])
                    }
                }
            }
            for close in outcome.closes {
                state.connections[close.client]?.close(code: close.code, reason: close.reason)
            }
            return outcome
        }
        if !outcome.timers.isEmpty {
            let now = clock.now()
            for timer in outcome.timers {
                schedule(timer, now: now)
            }
        }
        for event in outcome.events {
            record(event)
        }
    }

    private func schedule(_ timer: TimerRequest, now: ServerTime) {
        let delay = timer.due > now ? timer.due - now : 0
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(delay))
            self?.fire(timer.key)
        }
    }

    private func record(_ event: DomainEvent) {
        switch event {
        case .roomCreated(let room):
            logger.info("Room created", metadata: ["room_id": .string(room)])
        case .roomClosed(let room, let reason):
            logger.info("Room closed", metadata: ["room_id": .string(room), "reason": .string(reason.rawValue)])
        case .clientLog(let category, let message):
            logger.info("Client log", metadata: ["category": .string(category), "client_message": .string(message)])
        case .barrierReleased(let cause, let waited, let lateness):
            logger.debug("Pending play released", metadata: ["cause": .string(cause.rawValue), "waited_ms": "\(waited)", "lateness_ms": "\(lateness)"])
        default:
            break
        }
    }
}

/// One connection's link back to the gateway.
struct ClientHandle: ConnectionSession {
    let id: ClientID
    let gateway: SessionGateway

    func received(text: String) async { gateway.received(text: text, from: id) }
    func receivedBinary() async { gateway.receivedBinary(from: id) }
    func closed() async { gateway.disconnected(id) }
}
