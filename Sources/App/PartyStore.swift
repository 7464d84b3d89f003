import Synchronization
import WatchPartyCore

/// Where the watch party's state (rooms and sessions, the core's ``Party``) lives, and the one
/// place every change to it passes through.
///
/// Guarantees: ``update(_:)`` runs one input at a time, so inputs are applied in one order
/// and each sees the state the previous one left; ``read(_:)`` sees the state between two
/// inputs, never in the middle of one. Each update's ``Outcome/changes`` names the rooms and
/// sessions that input touched: a store that keeps the state elsewhere (PostgreSQL, for
/// several replicas: PROTOCOL.md §14) writes exactly those.
protocol PartyStore: AnyObject, Sendable {
    /// Runs one input: `body` changes the state and returns the input's outcome and whatever
    /// else its caller needs from inside the update.
    func update<Extra>(_ body: (inout Party) -> (outcome: Outcome, extra: Extra)) -> (outcome: Outcome, extra: Extra)

    /// A consistent view of the state, for inspection (admin API, metrics, tests).
    func read<Result>(_ body: (Party) -> Result) -> Result
}

/// The embedded default: the state in this process's memory, behind one lock; nothing to
/// set up, and nothing survives a restart. Changes need no writing anywhere.
final class InMemoryPartyStore: PartyStore {
    private let party: Mutex<Party>

    init(_ party: Party) {
        self.party = Mutex(party)
    }

    func update<Extra>(_ body: (inout Party) -> (outcome: Outcome, extra: Extra)) -> (outcome: Outcome, extra: Extra) {
        party.withLock { body(&$0) }
    }

    func read<Result>(_ body: (Party) -> Result) -> Result {
        party.withLock { body($0) }
    }
}

/// What a store that keeps rooms outside this process adds (PROTOCOL.md §14): rooms brought
/// here before an input that names them, the inputs it cannot serve now, and the handover of
/// every room at a drain.
protocol SharedRoomStore: AnyObject, Sendable {
    /// Brings here the rooms `need` may name that the store holds and no live replica owns,
    /// each handed to `adopt` with when its previous owner was last heard of (which takes it
    /// over in the core, returning false if the core refused it). `.elsewhere`: a live replica
    /// that listens on the bus owns it. `.unavailable`: the store could not be asked, too many
    /// recoveries were waiting too long, or the room is owned by a replica that cannot be reached;
    /// the input then gets SERVICE_UNAVAILABLE.
    func recover(_ need: RecoveryNeed, adopt: @escaping @Sendable (RoomRecord, ServerTime?) -> Bool) async -> RecoveryVerdict

    /// True when a message of `type` cannot be served now: it needs the database and the
    /// database cannot be reached, or it acts on a room whose claim may no longer be current.
    func refuses(_ type: ClientMessageType) -> Bool

    /// True while this replica may act on its rooms (its claims are current). Timers of rooms
    /// wait while it is false.
    var isActing: Bool { get }

    /// The drain with a shared store: stops acting, writes every room, releases their claims,
    /// then hands each to `release` (which removes it here, true if it was here); returns what
    /// was handed over.
    func handOver(release: @escaping @Sendable (RoomID) -> Bool) async -> RoomHandover

    /// Where the store reports rooms whose claim it found taken by another replica: they
    /// must be removed here at once, without a departure.
    func whenLost(_ handler: @escaping @Sendable ([RoomID]) -> Void)

    /// Where the store reports, when they change, the rooms other replicas own (read every
    /// ``PostgresPartyStore/listingInterval``): a lobby here lists them with its own.
    func whenRoomsElsewhereChange(_ handler: @escaping @Sendable ([ListedRoom]) -> Void)
}

/// What an input needs the store to look up before the core sees it.
enum RecoveryNeed: Sendable, Equatable {
    /// `resume`: the seat a token with this digest resumes.
    case token(ResumeDigest)
    /// `auth` that may resume by identity: every seat of this identity.
    case identity(String)
    /// `join_room`: this room.
    case room(RoomID)

    /// Whether the message may be served through the replica that owns its room (a `resume`
    /// or a `join_room`: the connection is then relayed there). An identity `auth` is served
    /// here; its seats stay where they are.
    var relays: Bool {
        switch self {
        case .token, .room: true
        case .identity: false
        }
    }
}

enum RecoveryVerdict: Sendable, Equatable {
    case proceed
    case unavailable
    /// The room is owned by this live replica, reachable over the bus (PROTOCOL.md §14).
    case elsewhere(String)
}

/// What a drain's handover did (``SharedRoomStore/handOver(release:)``).
struct RoomHandover: Sendable, Equatable {
    /// Every room handed over (it was here, and is removed), in room order: a claim held for a
    /// room not in memory (being taken over, or closed and its removal not yet written) is
    /// released but not listed, so that it is never offered to another replica.
    var rooms: [RoomID] = []
    /// Whether their claims were released, so that another replica may claim them at once; if
    /// not, they move only when their leases run out.
    var released = false
}
