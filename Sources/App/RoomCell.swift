import NIOConcurrencyHelpers
import Synchronization
import WatchPartyCore

/// One room of the embedded store, cut out of the party (``Party/detachRoom(_:)``) behind a
/// lock of its own: the unit of isolation. An input only its room answers (a member's ready,
/// player event, state update, chat, status, ping; the room's barrier and status timers) takes
/// this lock alone, so rooms never wait on one another; any other input takes the party's lock
/// and, in order of their ids, the locks of the rooms it involves (``Party/roomsInvolved(receiving:from:verdict:)``).
///
/// Guarantees: while its lock is not held, the cell holds its room's part (or nothing, once the
/// room is gone) and a copy of the carriers of its attached members, both exactly as the last
/// input that involved the room left them. Only ``SessionGateway`` changes either, holding the lock.
final class RoomCell: @unchecked Sendable {
    struct Contents {
        /// The room and its members' sessions; `nil` once the room is gone (or, inside an
        /// input of the whole party, while it is put back there).
        var part: Party?
        /// The connections of the members attached now, as the gateway's carriers map has them.
        var carriers: [ClientID: SessionGateway.Carrier] = [:]
    }

    let room: RoomID
    /// The room's place in `room_list` (rooms are shown oldest first).
    let sequence: UInt64
    private let lock = NIOLock()
    /// Guarded by `lock`.
    private var contents = Contents()
    /// Round trips measured for the room's members since the room last took them: a pong takes
    /// this small lock, never the room's.
    let roundTrips = Mutex(PendingRoundTrips())

    init(room: RoomID, sequence: UInt64) {
        self.room = room
        self.sequence = sequence
    }

    /// Runs `body` on the contents under the room's lock.
    func withLock<Result>(_ body: (inout Contents) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&contents) }
    }

    /// Takes the lock until ``unlock()``: an input of the whole party holds the locks of every
    /// room it involves at once (always taken in order of room id, so two never wait on each other).
    func lockForWhole() { lock.lock() }

    func unlock() { lock.unlock() }

    /// The contents, with the lock held by ``lockForWhole()``.
    var locked: Contents {
        get { contents }
        _modify { yield &contents }
    }
}
