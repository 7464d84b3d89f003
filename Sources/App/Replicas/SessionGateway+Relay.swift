import Logging
import NIOCore
import Transport
import WatchPartyCore

/// Connections relayed over the bus, both ways (PROTOCOL.md §14).
struct RelayBook {
    /// Relay side: connections here whose session another replica serves, by greeting id.
    var outgoing: [ClientID: (handle: ClientHandle, owner: String)] = [:]
    /// Owner side: the handles of connections on other replicas, by replica, then by bus name.
    var incoming: [String: [ClientID: ClientHandle]] = [:]
}

/// Members connected to one replica, served by their room's owner (PROTOCOL.md §14).
///
/// A connection here whose `join_room` or `resume` names a room a live replica owns is
/// *relayed*: its session (in no room yet) moves to the owner as a value
/// (``Party/transferOut(_:)``), and from then on this replica only passes frames: the client's
/// messages to the owner, the owner's deliveries and closes back to the socket. The owner
/// serves the session like any of its own (``RemoteConnection`` carries it), so every member
/// of a room gets the room's messages from one core, in one order. A link that can lose frames
/// is dropped (``ReplicaBus``): relayed connections here are closed with 1012 and resume;
/// sessions served here for another replica's connections go away, resumable.
extension SessionGateway {
    /// A session served through a relay may be relayed on once (it left its room for one a
    /// third replica owns); further it is refused (SERVICE_UNAVAILABLE) until it reconnects.
    static let relayHopLimit = 2

    /// How many replicas `handle`'s connection is relayed through to here (0: it is here).
    static func hops(of handle: ClientHandle) -> Int {
        (handle.connection as? RemoteConnection)?.hops ?? 0
    }

    /// Moves `client`'s session to `owner` and relays `handle`'s connection there from now on,
    /// `first` the message that named the owner's room (`nil`: its user's seat is there, and it
    /// resumes it as its `auth` would have here). False if the session cannot move.
    @discardableResult
    func relay(_ handle: ClientHandle, carrying client: ClientID, to owner: String, first: String?) -> Bool {
        let hops = Self.hops(of: handle) + 1
        guard let bus, hops <= Self.relayHopLimit else { return false }
        var transfer: SessionTransfer?
        apply { party, state, _ in
            // Draining: its message is answered here (SERVER_SHUTTING_DOWN), and its connection closed with the others.
            guard !party.draining, state.carriers[client]?.handle === handle, let (moved, outcome) = party.transferOut(client) else { return Outcome() }
            state.carriers[client] = nil
            transfer = moved
            return outcome
        }
        guard let transfer else { return false }
        relays.withLock { $0.outgoing[handle.greetedAs] = (handle, owner) }
        handle.relay(to: owner)
        if let first {
            bus.send(.attach(connection: handle.greetedAs, session: transfer, text: first, hops: hops), to: owner)
        } else {
            bus.send(.attachResuming(connection: handle.greetedAs, session: transfer, hops: hops), to: owner)
        }
        logger.info("Connection served by the room's owner", metadata: [
            "client_id": .string(client), "connection_client_id": .string(handle.greetedAs), "owner": .string(owner),
        ])
        return true
    }

    /// A relayed connection's `ping` is answered here, by the replica the client is connected to:
    /// its round trip is then the client's to this replica, without two bus hops in it (the
    /// clients estimate the server's clock from it), and half the traffic a relayed member
    /// causes never crosses the bus. The replicas' clocks are one (NTP), as they must be for
    /// the owner's `target_server_ts` anyway. True if it was answered.
    func answeredAtRelay(_ text: String, by handle: ClientHandle, readAt: ReadStamp) -> Bool {
        guard text.utf8.count <= Self.relayedPingLimit, text.contains("\"ping\""), case .success(let message) = ClientMessageDecoder.decode(text),
            message.type == .ping, handle.admitsRelayedPing(at: readAt.uptimeNanoseconds, limit: rateLimitPerSecond)
        else { return false }
        let pong = OutboundText(ServerMessage(room: message.room, ts: clock.now(), payload: .pong(message.payload)).encodedJSON())
        if handle.connection.post(pong) == .queued {
            if let local = handle.connection as? Connection { local.deliver() } else { bus?.wakeSender() }
            metrics.messagesSent(type: ServerMessageType.pong.rawValue, count: 1, bytes: pong.byteCount)
        }
        metrics.messageReceived(type: ClientMessageType.ping.rawValue, bytes: text.utf8.count)
        metrics.messageHandled(type: ClientMessageType.ping.rawValue, seconds: Self.seconds(since: readAt.uptimeNanoseconds))
        return true
    }

    /// Longest relayed message looked at as a possible ping (a ping is a few dozen bytes).
    static let relayedPingLimit = 1024

    /// Passes a relayed connection's input to the replica serving it.
    func forward(_ frame: BusFrame, to owner: String) {
        bus?.send(frame, to: owner)
    }

    /// A relayed connection closed: its owner is told (the session goes away there). False if
    /// `handle` was not relayed.
    func relayEnded(_ handle: ClientHandle, code: UInt16?) -> Bool {
        guard handle.relayedTo != nil else { return false }
        // Counted where the socket is (a session relayed on from here was another replica's connection).
        if handle.connection is Connection { metrics.connectionClosed(code: code) }
        logger.info("Connection closed", metadata: [
            "client_id": .string(handle.greetedAs), "code": code.map { .stringConvertible($0) } ?? .string("client"),
            "reason": .string(CloseReasons.reason(for: code)), "owner": .string(handle.relayedTo ?? "?"),
        ])
        let owner = relays.withLock { relays -> String? in
            guard let entry = relays.outgoing[handle.greetedAs], entry.handle === handle else { return nil }
            relays.outgoing[handle.greetedAs] = nil
            return entry.owner
        }
        if let owner { bus?.send(.gone(connection: handle.greetedAs), to: owner) }
        return true
    }

    /// Every connection here that another replica serves.
    var relayedHandles: [ClientHandle] { relays.withLock { $0.outgoing.values.map(\.handle) } }

    /// Connections here served elsewhere, and sessions served here for connections elsewhere.
    var relayCounts: (relayed: Int, remote: Int) {
        relays.withLock { ($0.outgoing.count, $0.incoming.values.reduce(0) { $0 + $1.count }) }
    }

    // MARK: Frames from the bus

    /// Frames from `delivery.from`, handled on the bus's loop, in order.
    func busReceived(_ delivery: ReplicaBus.Delivery) {
        busLoop.execute { [self] in
            let readAt = ReadStamp.now()  // how long the frame waited on the bus is not known here
            var written: [ObjectIdentifier: Connection] = [:]
            for frame in delivery.frames {
                handle(frame, from: delivery.from, readAt: readAt, written: &written)
            }
            Connection.deliver(written.values)
        }
    }

    private func handle(_ frame: BusFrame, from peer: String, readAt: ReadStamp, written: inout [ObjectIdentifier: Connection]) {
        switch frame {
        // As the owner.
        case .attach(let name, let session, let text, let hops):
            attach(name, session: session, on: peer, first: text, hops: hops, readAt: readAt)
        case .attachResuming(let name, let session, let hops):
            attach(name, session: session, on: peer, first: nil, hops: hops, readAt: readAt)
        case .input(let name, let text):
            incoming(name, on: peer)?.received(text: text, readAt: readAt)
        case .binary(let name, let bytes):
            incoming(name, on: peer)?.received(binaryOf: bytes, readAt: readAt)
        case .roundTrip(let name, let milliseconds):
            incoming(name, on: peer)?.measured(roundTrip: .milliseconds(Int64(clamping: milliseconds)))
        case .gone(let name):
            guard let handle = relays.withLock({ $0.incoming[peer]?.removeValue(forKey: name) }) else { return }
            (handle.connection as? RemoteConnection)?.markGone()
            handle.closed(code: nil)
        case .probed(let probe, let answered):
            remoteProbes.answer(probe, answered, from: peer)
        // As the relay.
        case .deliver(let names, let text):
            let message = OutboundText(text)
            for name in names {
                guard let handle = outgoing(name, to: peer) else { continue }
                switch handle.connection.post(message) {
                case .queued:
                    if let local = handle.connection as? Connection { written[ObjectIdentifier(local)] = local } else { bus?.wakeSender() }
                case .overflow:
                    metrics.slowClientDisconnected()
                    logger.warning("Slow client disconnected: outbound queue full", metadata: ["client_id": .string(name), "owner": .string(peer)])
                case .closed:
                    break
                }
            }
        case .close(let name, let code, let reason):
            outgoing(name, to: peer)?.connection.close(code: code, reason: reason)
        case .probe(let name, let probe, let withinMs):
            guard let connection = outgoing(name, to: peer)?.connection else {
                return forward(.probed(probe: probe, answered: false), to: peer)
            }
            connection.probe(within: .milliseconds(withinMs)) { [weak self] answered in
                self?.forward(.probed(probe: probe, answered: answered), to: peer)
            }
        // Replica to replica.
        case .takeOver(let rooms):
            offered(rooms, by: peer)
        case .unlinked:
            break  // the bus drops the link itself
        }
    }

    /// The session served here for `peer`'s connection `name`. None (it ended here, or a link
    /// drop lost it): the relay is told to close the connection, which then resumes.
    private func incoming(_ name: ClientID, on peer: String) -> ClientHandle? {
        if let handle = relays.withLock({ $0.incoming[peer]?[name] }) { return handle }
        let restart = CloseCause.serviceRestart
        forward(.close(connection: name, code: restart.code, reason: restart.text), to: peer)
        return nil
    }

    /// The connection here whose session `peer` serves. None (it closed here, or a link drop
    /// lost it): the owner is told it is gone, so the session goes away there.
    private func outgoing(_ name: ClientID, to peer: String) -> ClientHandle? {
        if let handle = relays.withLock({ relays in relays.outgoing[name].flatMap { $0.owner == peer ? $0.handle : nil } }) { return handle }
        forward(.gone(connection: name), to: peer)
        return nil
    }

    /// A session moved here from `peer`: served from now on, `first` its first message (`nil`:
    /// it resumes its user's seat here).
    private func attach(_ name: ClientID, session: SessionTransfer, on peer: String, first: String?, hops: Int, readAt: ReadStamp) {
        guard let bus else { return }
        let connection = RemoteConnection(peer: peer, name: name, hops: hops, bus: bus, loop: busLoop, probes: remoteProbes)
        let handle = ClientHandle(id: session.seat.id, gateway: self, connection: connection)
        var accepted = false
        // Once the rooms are being handed over, nothing new is taken on (during the drain delay
        // a join is answered SERVER_SHUTTING_DOWN by the core, as for a member here).
        let known = handingOver.load(ordering: .acquiring) || relays.withLock { $0.incoming[peer]?[name] != nil }
        apply { party, state, now in
            guard !known, case .success(let outcome) = party.transferIn(session, now: now, resumingIdentity: first == nil) else { return Outcome() }
            state.carriers[session.seat.id] = Carrier(connection: connection, handle: handle)
            accepted = true
            return outcome
        }
        guard accepted else {
            // Handing over, a name or a session (by id or token) that is here already: the client reconnects.
            let restart = CloseCause.serviceRestart
            connection.close(code: restart.code, reason: restart.text)
            logger.warning("Session from another replica not served here: its connection reconnects", metadata: [
                "client_id": .string(session.seat.id), "peer": .string(peer),
            ])
            return
        }
        relays.withLock { $0.incoming[peer, default: [:]][name] = handle }
        logger.info("Serving a member connected to another replica", metadata: ["client_id": .string(session.seat.id), "peer": .string(peer)])
        if let first { handle.received(text: first, readAt: readAt) }
    }

    // MARK: Links

    /// The link with `peer` (`nil`: every peer) was dropped: frames may have been lost. Relayed
    /// connections here are closed with 1012 (they reconnect and resume); sessions served here
    /// for connections there go away (resumable), as if those connections had dropped.
    ///
    /// On the bus's loop, in order with the frames received (an `attach` handled before the drop
    /// is dropped with it; one after it starts a new link). Each side is also told of each
    /// connection or session by name, so that one the other side took on meanwhile does not
    /// outlive the link.
    func linkDropped(with peer: String?) {
        busLoop.execute { [self] in
            let (outgoing, incoming) = relays.withLock { relays -> ([(ClientID, String, ClientHandle)], [(ClientID, String, ClientHandle)]) in
                let outgoing = relays.outgoing.filter { peer == nil || $0.value.owner == peer }
                for name in outgoing.keys { relays.outgoing[name] = nil }
                var incoming: [(ClientID, String, ClientHandle)] = []
                for (from, handles) in relays.incoming where peer == nil || from == peer {
                    incoming.append(contentsOf: handles.map { ($0.key, from, $0.value) })
                    relays.incoming[from] = nil
                }
                return (outgoing.map { ($0.key, $0.value.owner, $0.value.handle) }, incoming)
            }
            let restart = CloseCause.serviceRestart
            for (name, owner, handle) in outgoing {
                handle.connection.close(code: restart.code, reason: restart.text)
                forward(.gone(connection: name), to: owner)
            }
            for (name, relay, handle) in incoming {
                (handle.connection as? RemoteConnection)?.markGone()
                handle.closed(code: nil)
                forward(.close(connection: name, code: restart.code, reason: restart.text), to: relay)
            }
        }
    }

    /// The last step of a drain: what waits for other replicas is sent (within `limit`), and
    /// this one leaves the bus.
    func leaveBus(within limit: Duration) async {
        await bus?.finish(within: limit)
    }
}
