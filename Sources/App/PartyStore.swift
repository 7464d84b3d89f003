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
