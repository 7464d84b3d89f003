import Synchronization

/// Decides, before the upgrade, whether a WebSocket may open, and keeps the connection counts.
///
/// Guarantees: a slot is reserved atomically with the check (no burst overshoots a limit) and
/// released exactly once, when the socket closes, whatever happened in between.
final class UpgradeGate: Sendable {
    enum Refusal: Sendable, Equatable {
        case notFound
        case draining
        case origin
        case maxConnections
        case maxConnectionsPerIP

        var status: Int {
            switch self {
            case .notFound: 404
            case .draining: 503
            case .origin: 403
            case .maxConnections, .maxConnectionsPerIP: 429
            }
        }

        /// The `reason` label of the rejection metric.
        var metricReason: String? {
            switch self {
            case .notFound: nil
            case .draining: "draining"
            case .origin: "origin"
            case .maxConnections: "max_connections"
            case .maxConnectionsPerIP: "max_connections_per_ip"
            }
        }
    }

    private struct State {
        var draining = false
        var total = 0
        var perIP: [String: Int] = [:]
    }

    let policy: AdmissionPolicy
    private let state = Mutex(State())

    init(policy: AdmissionPolicy) {
        self.policy = policy
    }

    /// Checks an upgrade in the protocol's order and, when it may proceed, reserves its slot.
    func admit(pathMatches: Bool, origin: String?, client: String) -> Refusal? {
        guard pathMatches else { return .notFound }
        return state.withLock { state in
            if state.draining { return .draining }
            if !policy.allows(origin: origin) { return .origin }
            if state.total >= policy.maxConnections { return .maxConnections }
            if state.perIP[client, default: 0] >= policy.maxConnectionsPerIP { return .maxConnectionsPerIP }
            state.total += 1
            state.perIP[client, default: 0] += 1
            return nil
        }
    }

    func release(client: String) {
        state.withLock { state in
            state.total -= 1
            let remaining = state.perIP[client, default: 1] - 1
            state.perIP[client] = remaining > 0 ? remaining : nil
        }
    }

    func beginDrain() {
        state.withLock { $0.draining = true }
    }

    var openConnections: Int { state.withLock { $0.total } }
}
