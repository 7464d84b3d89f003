import Synchronization

/// Liveness and readiness as `/healthz` and `/readyz` report them (PROTOCOL.md §12).
///
/// Readiness is false until the listener is up, again from the moment a drain begins, while
/// the shared store cannot be reached, and (with several replicas) while this replica does not
/// listen on the bus — the members relayed through it would hear nothing from their rooms'
/// owners — so a load balancer only sends clients to an instance that will keep them.
public final class HealthState: Sendable {
    private struct State {
        var listening = false
        var draining = false
        /// The shared store answers (always true without one, PROTOCOL.md §14).
        var storeReachable = true
        /// This replica listens on the bus (always true without one, PROTOCOL.md §14).
        var busListening = true
    }

    private let state = Mutex(State())

    public init() {}

    public func markListening() { state.withLock { $0.listening = true } }
    public func markDraining() { state.withLock { $0.draining = true } }
    public func markStore(reachable: Bool) { state.withLock { $0.storeReachable = reachable } }
    public func markBus(listening: Bool) { state.withLock { $0.busListening = listening } }

    public var isReady: Bool { state.withLock { $0.listening && !$0.draining && $0.storeReachable && $0.busListening } }
    public var isDraining: Bool { state.withLock { $0.draining } }
}
