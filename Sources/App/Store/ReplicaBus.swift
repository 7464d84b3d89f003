import Foundation
import Logging
import Observability
import PostgresNIO
import Synchronization
import Transport
import WatchPartyCore

/// The bus between replicas (PROTOCOL.md §14): PostgreSQL's LISTEN/NOTIFY, one channel per
/// replica, carrying ``BusFrame``s in ``BusBatch``es.
///
/// Guarantees:
/// - **In order.** Frames to one replica are sent in the order they were handed over, one
///   notification at a time per replica (each committed before the next is sent; replicas are
///   sent to side by side); PostgreSQL delivers notifications in commit order, and the listener
///   hands them on in the order received.
/// - **Batched.** Whatever waits for a replica when the sender gets to it goes in as few
///   notifications as fit ``payloadLimit`` (one, usually); one message to several connections
///   on a replica is one frame. A frame too big for a notification is spilled into
///   `owp_bus_spill` and fetched by its receiver (NOTIFY's payload ends at 8000 bytes).
/// - **Never silently lossy.** Whatever can lose frames — this replica's listener going away
///   (notifications sent meanwhile are lost), a send that fails, a backlog past
///   ``backlogLimit``, a peer whose listener is gone or that was not heard of for
///   ``ReplicaDirectory/linkWindowSeconds`` — drops
///   the *link* with that peer (or every peer): the handler is told, so that connections
///   relayed either way are closed (1012) or go away, and resume; the peer is told too
///   (``BusFrame/unlinked``) where it can be.
/// - **Drained promptly.** The listener only decodes and hands on; the work is the handler's.
final class ReplicaBus: Sendable {
    /// Why a link with a peer was dropped (a metric label).
    enum LinkDrop: String, CaseIterable, Sendable {
        case peerGone = "peer_gone"
        case listenerLost = "listener_lost"
        case sendFailed = "send_failed"
        case backlogFull = "backlog_full"
        case peerUnlinked = "peer_unlinked"
        /// A notification too big for NOTIFY could not be fetched, or one could not be read.
        case unreadable
        case shutdown
    }

    /// Frames received from a peer, with how long their notification took to arrive (seconds).
    struct Delivery: Sendable {
        let from: String
        let frames: [BusFrame]
    }

    /// NOTIFY takes payloads below 8000 bytes; this leaves room for nothing to come near it.
    static let payloadLimit = 7_800
    static let heartbeatInterval: Duration = .seconds(1)
    /// A listener that has not heard its own echo for this long is taken for dead and reconnected.
    static let echoLimit: Duration = .seconds(5)
    static let reconnectDelay: Duration = .seconds(1)
    /// Frames waiting for one peer at most; one more drops the link.
    static let backlogLimit = 50_000

    private enum Entry {
        case frame(BusFrame)
        /// One message for several connections (``OutboundText`` posted to each in turn).
        case delivery(OutboundText, [ClientID])
    }

    private struct State {
        var outbox: [String: [Entry]] = [:]
        /// The listener's connection, while it listens (closed to make it reconnect).
        var listener: PostgresConnection?
        /// When this replica last heard its own heartbeat's echo on its channel.
        var echoHeardAt: ContinuousClock.Instant?
        /// Peers sent to or heard from since the link was last dropped.
        var links: Set<String> = []
        var listening = false
        var sending = false
        var stopped = false
        var receiver: (@Sendable (Delivery) -> Void)?
        var dropped: (@Sendable (_ peer: String?, LinkDrop) -> Void)?
    }

    let replica: String
    let channel: String
    private let pool: PostgresClient
    /// The listener's own connection (made anew on every reconnect).
    private let listenConfiguration: @Sendable () throws -> PostgresConnection.Configuration
    let directory: ReplicaDirectory
    /// Told whether this replica listens: not ready while it does not (``HealthState``).
    private let health: HealthState?
    private let metrics: MetricsRegistry
    private let logger: Logger
    private let state = Mutex(State())
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(
        replica: String, pool: PostgresClient, listenConfiguration: @escaping @Sendable () throws -> PostgresConnection.Configuration, health: HealthState? = nil,
        metrics: MetricsRegistry, logger: Logger
    ) {
        self.replica = replica
        self.health = health
        health?.markBus(listening: false)
        self.channel = Self.channel(of: replica)
        self.pool = pool
        self.listenConfiguration = listenConfiguration
        self.directory = ReplicaDirectory(client: pool, replica: replica, logger: logger)
        self.metrics = metrics
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// A replica's channel: its id reduced to what an identifier may hold, the random part first.
    static func channel(of replica: String) -> String {
        let parts = replica.split(separator: "/")
        let ordered = (parts.last.map { [$0] } ?? []) + parts.dropLast()
        let safe = ordered.joined(separator: "_").lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" }
        return String(("owp_bus_" + String(safe)).prefix(63))
    }

    /// Where received frames go (called by the listener, in order) and who is told of a dropped
    /// link (`nil` peer: every link).
    func handle(received: @escaping @Sendable (Delivery) -> Void, dropped: @escaping @Sendable (_ peer: String?, LinkDrop) -> Void) {
        state.withLock { state in
            state.receiver = received
            state.dropped = dropped
        }
    }

    /// True while this replica's listener is up: only then can anyone reach it.
    var isListening: Bool { state.withLock { $0.listening } }

    // MARK: Sending

    /// Queues `frame` for `peer` and wakes the sender.
    func send(_ frame: BusFrame, to peer: String) {
        if enqueue(.frame(frame), to: peer) { wakeSender() }
    }

    /// Queues one message for a connection on `peer`, without waking the sender (call
    /// ``wakeSender()`` once after a batch): consecutive posts of the same message become one frame.
    /// False if the link with `peer` is being dropped (its backlog overflowed).
    @discardableResult
    func post(_ message: OutboundText, to connection: ClientID, on peer: String) -> Bool {
        enqueue(.delivery(message, [connection]), to: peer)
    }

    func wakeSender() {
        wake.yield()
    }

    private func enqueue(_ entry: Entry, to peer: String) -> Bool {
        let overflowed = state.withLock { state -> Bool in
            guard !state.stopped || isUnlink(entry) else { return false }
            var queue = state.outbox.removeValue(forKey: peer) ?? []
            defer { state.outbox[peer] = queue }
            if case .delivery(let message, let connections) = entry, case .delivery(let last, var recipients)? = queue.last, last === message {
                recipients.append(contentsOf: connections)
                queue[queue.count - 1] = .delivery(last, recipients)
                return false
            }
            guard queue.count < Self.backlogLimit else {
                queue = []
                return true
            }
            queue.append(entry)
            state.links.insert(peer)
            return false
        }
        if overflowed {
            drop(peer, .backlogFull, tell: true)
            return false
        }
        return true
    }

    private func isUnlink(_ entry: Entry) -> Bool {
        if case .frame(.unlinked) = entry { return true }
        return false
    }

    /// Sends what waits, to every peer side by side, until nothing does; then waits to be woken.
    private func runSender() async {
        for await _ in wakes {
            while true {
                let taken = state.withLock { state -> [(String, [Entry])] in
                    defer { state.outbox = [:] }
                    state.sending = !state.outbox.isEmpty
                    return state.outbox.map { ($0.key, $0.value) }
                }
                if taken.isEmpty { break }
                // Peers at once, each peer's notifications one after the other (its order): a
                // round costs the slowest peer's round trips, not the sum of them all.
                await withTaskGroup(of: Void.self) { group in
                    for (peer, entries) in taken {
                        group.addTask { await self.deliverOrDrop(entries, to: peer) }
                    }
                }
            }
            state.withLock { $0.sending = false }
        }
    }

    private func deliverOrDrop(_ entries: [Entry], to peer: String) async {
        do {
            try await deliver(entries, to: peer)
        } catch {
            logger.warning("Bus: sending to a replica failed; its relayed connections are dropped", metadata: [
                "peer": .string(peer), "error": .string(StoreFailure.describe(error)),
            ])
            // Told (next round): the peer must not keep sessions for connections closed here.
            drop(peer, .sendFailed, tell: true)
        }
    }

    private func deliver(_ entries: [Entry], to peer: String) async throws {
        let frames = entries.map { entry -> BusFrame in
            switch entry {
            case .frame(let frame): frame
            case .delivery(let message, let connections): .deliver(connections: connections, text: message.text)
            }
        }
        let channel = Self.channel(of: peer)
        for payload in try Self.payloads(frames, from: replica) {
            var spilled: String?
            if payload.utf8.count > Self.payloadLimit {
                spilled = "S" + String(try await spill(payload))
                metrics.busSpilled()
            }
            let notification = spilled ?? payload
            let (pool, logger) = (pool, logger)
            _ = try await timedCall(.notify) {
                try await pool.query("SELECT pg_notify(\(channel), \(notification))", logger: logger)
            }
        }
        metrics.busSent(frames: frames.count)
    }

    /// The frames as notification payloads: as many whole frames per batch as fit the limit;
    /// a frame that alone does not is a batch of its own, to be spilled.
    static func payloads(_ frames: [BusFrame], from replica: String) throws -> [String] {
        let sentAt = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var head = "{\"from\":"
        BusCodec.appendString(replica, to: &head)
        head += ",\"sentAt\":\(sentAt),\"frames\":["
        let tail = "]}"
        var payloads: [String] = []
        var current: [String] = []
        var size = head.utf8.count + tail.utf8.count
        for frame in frames {
            let encoded = try BusCodec.encode(frame)
            let added = encoded.utf8.count + (current.isEmpty ? 0 : 1)
            if !current.isEmpty && size + added > payloadLimit {
                payloads.append(head + current.joined(separator: ",") + tail)
                current = []
                size = head.utf8.count + tail.utf8.count
            }
            size += encoded.utf8.count + (current.isEmpty ? 0 : 1)
            current.append(encoded)
        }
        if !current.isEmpty { payloads.append(head + current.joined(separator: ",") + tail) }
        return payloads
    }

    private func spill(_ payload: String) async throws -> Int64 {
        let (pool, logger) = (pool, logger)
        return try await timedCall(.spill) {
            let rows = try await pool.query("INSERT INTO owp_bus_spill (payload) VALUES (\(payload)) RETURNING id", logger: logger)
            for try await id in rows.decode(Int64.self) { return id }
            throw Deadline.Exceeded(limit: .zero)
        }
    }

    private func fetchSpilled(_ id: Int64) async throws -> String? {
        let (pool, logger) = (pool, logger)
        return try await timedCall(.spill) {
            let rows = try await pool.query("DELETE FROM owp_bus_spill WHERE id = \(id) RETURNING payload", logger: logger)
            for try await payload in rows.decode(String.self) { return payload }
            return nil
        }
    }

    private func timedCall<Value: Sendable>(_ operation: StoreOperation, _ call: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let start = ContinuousClock.now
        do {
            let value = try await Deadline.within(RoomTable.standardCallLimit, call)
            metrics.storeCall(operation.rawValue, seconds: (ContinuousClock.now - start).seconds, failed: false)
            return value
        } catch {
            metrics.storeCall(operation.rawValue, seconds: (ContinuousClock.now - start).seconds, failed: true)
            throw error
        }
    }

    // MARK: Links

    /// Drops the link with `peer` (`nil`: every link): what waits for it is discarded, the
    /// handler told; `tell`: the peer is sent ``BusFrame/unlinked`` so it drops its side too.
    func drop(_ peer: String?, _ reason: LinkDrop, tell: Bool) {
        let (peers, handler) = state.withLock { state -> ([String], (@Sendable (String?, LinkDrop) -> Void)?) in
            let peers = peer.map { state.links.contains($0) ? [$0] : [] } ?? Array(state.links)
            for peer in peers {
                state.links.remove(peer)
                state.outbox[peer] = nil
            }
            return (peers, state.dropped)
        }
        guard !peers.isEmpty else { return }
        for peer in peers {
            metrics.busLinkDropped(reason: reason.rawValue)
            logger.warning("Bus: link with a replica dropped; connections relayed with it reconnect", metadata: [
                "peer": .string(peer), "reason": .string(reason.rawValue),
            ])
            handler?(peer, reason)
        }
        if tell {
            for peer in peers { _ = enqueue(.frame(.unlinked), to: peer) }
            state.withLock { state in for peer in peers { state.links.remove(peer) } }
            wakeSender()
        }
    }

    // MARK: Listening

    /// Listens, sends, and beats until cancelled; then says this replica is gone.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runSender() }
            group.addTask { await self.runListener() }
            group.addTask { await self.runHeartbeat() }
            group.addTask { await self.runLinkCheck() }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(3600))
            }
            wake.finish()
            group.cancelAll()
        }
    }

    /// Sends what waits (within `limit`), drops every link and stops listening for good: the
    /// last step of a drain.
    func finish(within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        await sent(by: deadline)
        // The peers drop their side now rather than at their next heartbeat.
        drop(nil, .shutdown, tell: true)
        await sent(by: deadline)
        state.withLock { $0.stopped = true }
        try? await directory.remove()
    }

    /// Waits until nothing waits to be sent, or `deadline`.
    private func sent(by deadline: ContinuousClock.Instant) async {
        wakeSender()
        while ContinuousClock.now < deadline, state.withLock({ !$0.outbox.isEmpty || $0.sending }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func runListener() async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                // Named after its channel: other replicas see in `pg_stat_activity` that it is connected.
                var configuration = try listenConfiguration()
                configuration.options.additionalStartupParameters.append(("application_name", channel))
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger)
                defer { Task { try? await connection.close() } }
                try await connection.listen(on: channel) { notifications in
                    attempt = 0
                    // Named only now that LISTEN is in force: before, a peer must not take this replica for live.
                    try await connection.query("SELECT set_config('application_name', \(channel), false)", logger: logger)
                    state.withLock { state in
                        state.listening = true
                        state.listener = connection
                        state.echoHeardAt = .now
                    }
                    try? await directory.heartbeat()
                    health?.markBus(listening: true)
                    logger.info("Bus: listening", metadata: ["channel": .string(channel)])
                    for try await notification in notifications {
                        await received(notification.payload)
                    }
                }
            } catch {
                if Task.isCancelled { break }
                if attempt == 0 {
                    logger.error("Bus: listener lost; connections relayed with other replicas reconnect", metadata: [
                        "error": .string(StoreFailure.describe(error))
                    ])
                }
            }
            // Whatever was sent to this replica while it was not listening is lost: every link goes.
            health?.markBus(listening: false)
            if state.withLock({ state in
                defer {
                    state.listening = false
                    state.listener = nil
                }
                return state.listening
            }) {
                drop(nil, .listenerLost, tell: true)
            }
            attempt += 1
            try? await Task.sleep(for: Self.reconnectDelay)
        }
        state.withLock { $0.listening = false }
        health?.markBus(listening: false)
    }

    /// The payload of this replica's own heartbeat echo.
    static let echo = "E"

    private func received(_ payload: String) async {
        if payload == Self.echo {
            state.withLock { $0.echoHeardAt = .now }
            return
        }
        var text = payload
        if payload.hasPrefix("S"), let id = Int64(payload.dropFirst()) {
            guard let fetched = try? await fetchSpilled(id) else {
                // Whose it was is unknown: every link goes (their connections resume).
                logger.error("Bus: a spilled notification could not be fetched; links dropped", metadata: ["spill_id": .stringConvertible(id)])
                drop(nil, .unreadable, tell: true)
                return
            }
            text = fetched
        }
        guard let batch = BusCodec.decodeBatch(text) else {
            // A frame this version does not know (a newer peer mid-upgrade) or a broken one: lost, so the link goes.
            let from = (try? JSONDecoder().decode(Sender.self, from: Data(text.utf8)))?.from
            logger.error("Bus: a notification could not be read; its link is dropped", metadata: [
                "bytes": .stringConvertible(text.utf8.count), "peer": .string(from ?? "?"),
            ])
            drop(from, .unreadable, tell: true)
            return
        }
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        metrics.busReceived(frames: batch.frames.count, latencySeconds: Double(max(0, now - batch.sentAt)) / 1e6)
        // In order: frames before an `unlinked` belong to the old link, those after it to a new one.
        var frames: [BusFrame] = []
        for frame in batch.frames {
            guard frame == .unlinked else {
                frames.append(frame)
                continue
            }
            hand(frames, from: batch.from)
            frames = []
            drop(batch.from, .peerUnlinked, tell: false)
        }
        hand(frames, from: batch.from)
    }

    /// Just enough of a batch to know who sent it.
    private struct Sender: Decodable {
        var from: String
    }

    private func hand(_ frames: [BusFrame], from peer: String) {
        guard !frames.isEmpty else { return }
        let receiver = state.withLock { state in
            state.links.insert(peer)
            return state.receiver
        }
        receiver?(Delivery(from: peer, frames: frames))
    }

    /// Every ``heartbeatInterval``, on the clock rather than after the previous beat: says this
    /// replica listens. Nothing else waits in this loop, so a slow echo or look-up does not
    /// delay the next beat; a beat that itself took long is followed by the next one at once.
    private func runHeartbeat() async {
        var next = ContinuousClock.now
        while !Task.isCancelled {
            next = max(next + Self.heartbeatInterval, .now)
            try? await Task.sleep(until: next)
            guard state.withLock({ $0.listening && !$0.stopped }) else { continue }
            try? await directory.heartbeat()
        }
    }

    /// Every heartbeat interval: checks that the listener still hears (its own echo), and drops
    /// the links with peers gone (``ReplicaDirectory/linkWindowSeconds``).
    private func runLinkCheck() async {
        var checks = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.heartbeatInterval)
            checks += 1
            guard state.withLock({ $0.listening && !$0.stopped }) else { continue }
            // A listener whose connection died without a sign hears nothing, its own echo neither.
            if let deaf = state.withLock({ state -> PostgresConnection? in
                guard let heard = state.echoHeardAt, ContinuousClock.now - heard > Self.echoLimit else { return nil }
                return state.listener
            }) {
                logger.error("Bus: the listener stopped hearing its own heartbeat; reconnecting it (its links are dropped)")
                try? await deaf.close()
                continue
            }
            let (pool, channel, logger) = (pool, channel, logger)
            _ = try? await Deadline.within(RoomTable.standardCallLimit) {
                try await pool.query("SELECT pg_notify(\(channel), \(Self.echo))", logger: logger)
            }
            let peers = state.withLock { Array($0.links) }
            if let linked = try? await directory.live(among: peers, within: ReplicaDirectory.linkWindowSeconds) {
                for peer in peers where !linked.contains(peer) {
                    // Told anyway: a peer whose heartbeats are only late must not keep sessions whose connections are closed here.
                    drop(peer, .peerGone, tell: true)
                }
            }
            if checks % 30 == 0 { try? await directory.removeStale() }
        }
    }
}
