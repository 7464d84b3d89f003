import NIOCore
import Synchronization
import Transport
import WatchPartyCore

/// A client's connection on another replica (its *relay*) whose session this replica serves,
/// because it owns the room the session asked for (PROTOCOL.md §14). What is posted goes to the
/// relay over the bus, in order; the relay writes it to the socket.
///
/// Guarantees: after ``close(code:reason:)`` or ``markGone()`` nothing more is posted; a probe
/// is answered exactly once (by the relay, or `false` when no answer comes in time).
final class RemoteConnection: Carriage {
    /// The replica the client is connected to.
    let peer: String
    /// The connection's name on the bus: the id its relay greeted it with.
    let name: ClientID
    /// How many replicas relay it to here (1: the one it is connected to).
    let hops: Int
    private let bus: ReplicaBus
    /// Where the session's remote input is handled (one loop for all the bus's input, in order).
    private let loop: any EventLoop
    private let probes: RemoteProbes
    private let open = Atomic<Bool>(true)

    init(peer: String, name: ClientID, hops: Int, bus: ReplicaBus, loop: any EventLoop, probes: RemoteProbes) {
        self.peer = peer
        self.name = name
        self.hops = hops
        self.bus = bus
        self.loop = loop
        self.probes = probes
    }

    func post(_ message: OutboundText) -> SendResult {
        guard open.load(ordering: .acquiring) else { return .closed }
        return bus.post(message, to: name, on: peer) ? .queued : .closed
    }

    func close(code: UInt16, reason: String) {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { return }
        bus.send(.close(connection: name, code: code, reason: reason), to: peer)
    }

    /// The relay is asked to close it as for a restart (it cannot be dropped from here).
    func terminate() {
        let restart = CloseCause.serviceRestart
        close(code: restart.code, reason: restart.text)
    }

    /// Its backlog is the relay's (and the bus's, bounded there).
    func takeQueuePeak() -> Int { 0 }

    func probe(within: TimeAmount, answered: @escaping @Sendable (Bool) -> Void) {
        let id = probes.expect(answered, from: peer, within: within + Self.busAllowance, on: loop)
        bus.send(.probe(connection: name, probe: id, withinMs: within.nanoseconds / 1_000_000), to: peer)
    }

    /// What a probe's answer may take on top of the probe itself: two trips over the bus.
    static let busAllowance: TimeAmount = .seconds(1)

    func onEventLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    /// The relay says the connection is gone: nothing more is posted.
    func markGone() {
        open.store(false, ordering: .releasing)
    }
}

/// Probes of remote connections awaiting their relay's answer, each answered exactly once,
/// and only by the replica that was asked (ids are random: another cannot guess one).
final class RemoteProbes: Sendable {
    private struct Waiting {
        let peer: String
        let answered: @Sendable (Bool) -> Void
    }

    private let waiting = Mutex<[UInt64: Waiting]>([:])

    /// Registers `answered` for a probe sent to `peer`; it gets `false` if no answer comes `within`.
    func expect(_ answered: @escaping @Sendable (Bool) -> Void, from peer: String, within: TimeAmount, on loop: any EventLoop) -> UInt64 {
        let id = waiting.withLock { waiting -> UInt64 in
            var id = UInt64.random(in: 1...UInt64.max)
            while waiting[id] != nil { id = UInt64.random(in: 1...UInt64.max) }
            waiting[id] = Waiting(peer: peer, answered: answered)
            return id
        }
        loop.scheduleTask(in: within) { [self] in settle(id, false, from: nil) }
        return id
    }

    /// `peer`'s answer; one from another replica, or a later one, is ignored.
    func answer(_ id: UInt64, _ answered: Bool, from peer: String) {
        settle(id, answered, from: peer)
    }

    /// `from` nil: the timeout.
    private func settle(_ id: UInt64, _ answered: Bool, from peer: String?) {
        waiting.withLock { waiting -> Waiting? in
            guard let entry = waiting[id], peer == nil || entry.peer == peer else { return nil }
            return waiting.removeValue(forKey: id)
        }?.answered(answered)
    }
}
