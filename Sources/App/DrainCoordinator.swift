import Foundation
import Logging
import Observability
import ServiceLifecycle
import UnixSignals
import Transport

/// The SIGTERM drain of PROTOCOL.md §11, as a service that runs first when the group shuts down.
///
/// Order: readiness 503 and new upgrades 503 at once, create/join refused; after
/// `DRAIN_DELAY_SECONDS` every room is closed ("Server shutting down", pending plays dropped)
/// and every connection's queue is flushed and it is closed 1001 — or, with a shared store
/// (PROTOCOL.md §14), every room is written and handed over and connections close with 1012; sockets still open near the end
/// of `SHUTDOWN_GRACE_SECONDS` are dropped. A second signal exits at once.
struct DrainCoordinator: Service {
    let settings: ServerSettings
    let health: HealthState
    let metrics: MetricsRegistry
    let gateway: SessionGateway
    let transport: WebSocketTransport
    let logger: Logger

    /// Time kept back from the grace period for the HTTP server itself to stop.
    static let shutdownMargin: Duration = .milliseconds(500)

    func run() async throws {
        // Sleeps until the group starts its graceful shutdown (or is cancelled).
        do {
            try await gracefulShutdown()
        } catch {
            return
        }
        await drain()
    }

    func drain() async {
        let started = ContinuousClock.now
        let deadline = started + .seconds(settings.shutdownGraceSeconds) - Self.shutdownMargin
        let secondSignal = Task {
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                logger.warning("Second signal during drain: exiting now", metadata: ["signal": "\(signal)"])
                exit(1)
            }
        }
        defer { secondSignal.cancel() }

        health.markDraining()
        metrics.drainStarted()
        transport.beginDrain()
        gateway.beginDrain()
        logger.info("Drain started: readiness 503, new connections refused", metadata: [
            "connections": .stringConvertible(gateway.connectionCount), "rooms": .stringConvertible(gateway.roomCount),
            "drain_delay_s": .stringConvertible(settings.drainDelaySeconds),
        ])

        let delayEnd = min(started + .seconds(settings.drainDelaySeconds), deadline)
        try? await Task.sleep(until: delayEnd, clock: .continuous)

        let rooms: Int
        let connections: Int
        if gateway.sharesRooms {
            // PROTOCOL.md §11 with a shared store: no room closes; its members resume on another replica.
            rooms = await gateway.handOverRooms()
            connections = gateway.closeAllConnections(.serviceRestart)
            logger.info("Drain: rooms handed over, connections closing with 1012", metadata: [
                "rooms_handed_over": .stringConvertible(rooms), "connections": .stringConvertible(connections),
            ])
        } else {
            rooms = gateway.closeAllRooms()
            connections = gateway.closeAllConnections(.serverShutdown)
            logger.info("Drain: rooms closed, connections closing with 1001", metadata: ["rooms_closed": .stringConvertible(rooms), "connections": .stringConvertible(connections)])
        }

        while transport.openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let stragglers = transport.openConnections
        if stragglers > 0 {
            gateway.terminateAllConnections()
            logger.warning("Drain: grace period over, dropping connections that did not close", metadata: ["connections": .stringConvertible(stragglers)])
        }
        // The owners of relayed connections hear that they closed; the relays of sessions served
        // here, that they must: within what is left of the grace (at least a moment).
        await gateway.leaveBus(within: max(.milliseconds(200), min(.seconds(2), deadline + Self.shutdownMargin / 2 - ContinuousClock.now)))
        let elapsed = (ContinuousClock.now - started).seconds
        metrics.drainFinished()
        logger.info("Drain finished", metadata: [
            "rooms_closed": .stringConvertible(rooms), "connections_closed": .stringConvertible(connections), "dropped": .stringConvertible(stragglers),
            "duration_s": .stringConvertible((elapsed * 1000).rounded() / 1000),
        ])
    }
}
