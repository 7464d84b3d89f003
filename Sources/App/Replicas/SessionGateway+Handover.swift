import Logging
import WatchPartyCore

/// A drain's rooms offered to the replicas that stay (PROTOCOL.md §14).
///
/// A draining replica writes and releases its rooms and closes their members' connections with
/// 1012, then at once offers each room to one live peer (``BusFrame/takeOver(rooms:)``). The peer
/// claims the room while the members wait out their back-off, so that when they reconnect,
/// wherever the load balancer puts them, the room has a live owner: their resumes are served
/// there or relayed to it, and none waits for a claim.
///
/// Guarantees: an offer is only a hint. A room is owned by whoever claims it first (the
/// claim's fencing rule), so an offer lost, refused or beaten by a member's own resume changes
/// nothing but who owns the room; without a peer, or when the claims could not be released,
/// nothing is offered and the members' resumes take the rooms over as before.
extension SessionGateway {
    /// Rooms per offer frame: far inside one notification (a room id is at most 64 bytes).
    static let roomsPerOffer = 64

    /// Which peer is offered which rooms: the rooms in id order dealt to the peers in id order,
    /// one each in turn, so that every peer takes an equal share (within one room).
    static func successors(of rooms: [RoomID], among peers: [String]) -> [String: [RoomID]] {
        let peers = Array(Set(peers)).sorted()
        guard !peers.isEmpty else { return [:] }
        var shares: [String: [RoomID]] = [:]
        for (index, room) in Array(Set(rooms)).sorted().enumerated() {
            shares[peers[index % peers.count], default: []].append(room)
        }
        return shares
    }

    /// The live replicas a drain may offer its rooms to (`nil`: they could not be read, logged).
    func peersToOffer() async -> [String]? {
        guard let bus else { return [] }
        do {
            return try await bus.directory.livePeers()
        } catch {
            logger.warning("Drain: the live replicas could not be read; the rooms are taken over as their members come back", metadata: [
                "error": .string(StoreFailure.describe(error))
            ])
            return nil
        }
    }

    /// Offers the rooms a handover released to `peers`. Frames go out in order with what the
    /// handover queued before them (the closes of relayed members' connections).
    func offer(_ handover: RoomHandover, to peers: [String]?) {
        guard let bus, let peers, handover.released, !handover.rooms.isEmpty else { return }
        let shares = Self.successors(of: handover.rooms, among: peers)
        for (peer, rooms) in shares.sorted(by: { $0.key < $1.key }) {
            for start in stride(from: 0, to: rooms.count, by: Self.roomsPerOffer) {
                bus.send(.takeOver(rooms: Array(rooms[start..<min(start + Self.roomsPerOffer, rooms.count)])), to: peer)
            }
        }
        let offered = shares.values.reduce(0) { $0 + $1.count }
        metrics.roomsOffered(offered)
        logger.info("Drain: rooms offered to the replicas that stay", metadata: [
            "rooms": .stringConvertible(offered), "replicas": .stringConvertible(shares.count),
        ])
    }

    /// Claims of one offer frame under way at once: as many as the look-up pool has connections,
    /// so that an offer of many rooms takes only a few of the recoveries' turns and returning
    /// members' resumes never queue behind it.
    static let offeredClaimsAtOnce = DatabaseSettings.lookupConnections

    /// `peer`, draining, offered these rooms: each is claimed and taken over here now (at most
    /// ``offeredClaimsAtOnce`` at a time), unless this replica is draining itself (a drain takes
    /// nothing on). A room another replica claimed first stays there (its members are relayed
    /// to it).
    func offered(_ rooms: [RoomID], by peer: String) {
        guard let shared, !handingOver.load(ordering: .acquiring) else { return }
        let adopt = adopter
        Task {
            await withTaskGroup(of: Void.self) { group in
                for (index, room) in rooms.enumerated() {
                    if index >= Self.offeredClaimsAtOnce { await group.next() }
                    group.addTask { _ = await shared.recover(.room(room), adopt: adopt) }
                }
            }
            let taken = hostedCount(of: rooms)
            logger.notice("Rooms offered at another replica's handover", metadata: [
                "peer": .string(peer), "rooms": .stringConvertible(rooms.count), "taken_over": .stringConvertible(taken),
            ])
        }
    }
}
