import Synchronization

/// At most `limit` holders at once; the others wait their turn, first come first served,
/// suspended (not polling) until a holder leaves.
///
/// Guarantees: a turn is handed from the leaving holder straight to the longest waiter, so
/// the count never exceeds `limit` and no waiter is overtaken. A waiter whose deadline has
/// passed when its turn comes is told so (``enter(by:)`` returns false) and the turn goes on
/// to the next: it waits at most until the first turn after its deadline, which comes as soon
/// as a holder leaves (holders here are database calls bounded by their own time limits).
final class TurnGate: Sendable {
    private struct Line {
        var holders = 0
        var waiting: [(deadline: ContinuousClock.Instant, turn: CheckedContinuation<Bool, Never>)] = []
        var first = 0
    }

    let limit: Int
    private let line = Mutex(Line())

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Waits for a turn; false when the turn came only after `deadline` (not entered).
    func enter(by deadline: ContinuousClock.Instant) async -> Bool {
        await withCheckedContinuation { turn in
            let entered = line.withLock { line -> Bool in
                guard line.holders >= limit || line.first < line.waiting.count else {
                    line.holders += 1
                    return true
                }
                line.waiting.append((deadline, turn))
                return false
            }
            if entered { turn.resume(returning: true) }
        }
    }

    /// Ends a turn (after an ``enter(by:)`` that returned true): the next waiter in time gets it.
    func leave() {
        var expired: [CheckedContinuation<Bool, Never>] = []
        let next = line.withLock { line -> CheckedContinuation<Bool, Never>? in
            let now = ContinuousClock.now
            while line.first < line.waiting.count {
                let waiter = line.waiting[line.first]
                line.first += 1
                if line.first > 1024, line.first * 2 > line.waiting.count {
                    line.waiting.removeFirst(line.first)
                    line.first = 0
                }
                if waiter.deadline < now {
                    expired.append(waiter.turn)
                } else {
                    return waiter.turn  // the turn passes on: holders unchanged
                }
            }
            line.waiting.removeAll(keepingCapacity: true)
            line.first = 0
            line.holders -= 1
            return nil
        }
        for waiter in expired { waiter.resume(returning: false) }
        next?.resume(returning: true)
    }

    /// Holders now and waiters in line (for tests and metrics).
    var counts: (holders: Int, waiting: Int) {
        line.withLock { ($0.holders, $0.waiting.count - $0.first) }
    }
}
