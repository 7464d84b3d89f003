import Synchronization

/// Decides, before the upgrade, whether a WebSocket may open, and keeps the connection counts.
///
/// Guarantees: a slot is reserved atomically with the check (no burst overshoots a limit) and
/// released exactly once, when the socket closes, whatever happened in between.
final class UpgradeGate: Sendable {
    enum Refusal: Sendable, Equatable {
        /// Not the WebSocket path: 404, not counted.
        case notFound
        case refused(RefusalReason)

        var status: Int {
            switch self {
            case .notFound: 404
            case .refused(let reason): reason.status
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
            if state.draining { return .refused(.draining) }
            if !policy.allows(origin: origin) { return .refused(.origin) }
            if state.total >= policy.maxConnections { return .refused(.maxConnections) }
            if state.perIP[client, default: 0] >= policy.maxConnectionsPerIP { return .refused(.maxConnectionsPerIP) }
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
