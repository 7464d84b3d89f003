import WatchPartyCore

/// One message between two replicas about a connection on one whose session the other serves
/// (PROTOCOL.md §14: members connected to any replica are served by their room's owner).
///
/// The *relay* is the replica the client is connected to; the *owner* serves its session. A
/// connection is named by the id it was greeted with on its relay (unique: a UUID), which
/// stays its name on the bus whatever seat it carries later.
enum BusFrame: Codable, Sendable, Equatable {
    // Relay → owner.
    /// The connection's session moves to the owner, with the message that named the owner's room.
    /// `hops`: how many replicas the connection is relayed through already (1: straight from
    /// the one it is connected to); a session served through a relay may be relayed on once
    /// more at most (``SessionGateway/relayHopLimit``).
    case attach(connection: ClientID, session: SessionTransfer, text: String, hops: Int)
    /// The connection's session moves to the owner to take its user's seat there, as an `auth`
    /// as that user does (PROTOCOL.md §13): how the upstream clients, which know no resume
    /// token, come back.
    case attachResuming(connection: ClientID, session: SessionTransfer, hops: Int)
    /// A text message the client sent, as it arrived.
    case input(connection: ClientID, text: String)
    /// A binary message of this size (the protocol has none: the owner answers with the error).
    case binary(connection: ClientID, bytes: Int)
    /// A round trip the relay's pings measured.
    case roundTrip(connection: ClientID, milliseconds: UInt64)
    /// The connection is gone (whoever closed it): the session goes away or ends, as for a local one.
    case gone(connection: ClientID)
    /// Whether the connection answered a ``probe(connection:probe:withinMs:)``.
    case probed(probe: UInt64, answered: Bool)

    // Owner → relay.
    /// One message for these connections, encoded once.
    case deliver(connections: [ClientID], text: String)
    /// Close the connection with this code (after what was delivered before).
    case close(connection: ClientID, code: UInt16, reason: String)
    /// Ping the connection and say, within this many milliseconds, whether it answered.
    case probe(connection: ClientID, probe: UInt64, withinMs: Int64)

    // Replica → replica.
    /// The sender, draining, released these rooms' claims (PROTOCOL.md §11, §14): the receiver
    /// claims and takes them over at once, so that their members, reconnecting after the 1012,
    /// find a live owner instead of racing to claim them. Only an offer: whoever claims a room
    /// first owns it, and a receiver that cannot (it drains too, the database is away) leaves it
    /// to the members' own resumes. A replica of a version before it cannot read it and drops
    /// the link with the sender, and what else that notification carried is lost with it
    /// (docs/operations.md: only while rolling back to such a version).
    case takeOver(rooms: [RoomID])

    // Either way.
    /// The sender dropped everything it had with the receiver (its listener was lost, or its
    /// backlog to the receiver overflowed): the receiver drops the link too.
    case unlinked
}

/// What one notification carries: frames from one replica, in the order it sent them.
struct BusBatch: Codable, Sendable {
    var from: String
    /// When it was sent, microseconds since 1970 (the cross-replica latency, on one clock or NTP's).
    var sentAt: Int64
    var frames: [BusFrame]
}
