import Synchronization

/// Look-ups of one kind, made together: a key asked for while a batch is in flight waits and
/// goes with the keys asked for meanwhile, in the next batch, as one database call.
///
/// Guarantees:
/// - Nothing waits on a timer: a key asked for while no batch is in flight goes at once, so an
///   idle store answers in one round trip, and a reconnect storm of N look-ups costs about
///   N / ``maxBatch`` calls instead of N.
/// - At most ``concurrentBatches`` calls at once, each of at most ``maxBatch`` distinct keys;
///   keys are taken in the order they were first asked for. A key asked for twice before its
///   batch goes is looked up once and both callers get the answer.
/// - A call that fails fails every caller of its batch, and only those.
final class BatchedLookup<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    typealias Fetch = @Sendable ([Key]) async throws -> [Key: Value]

    private struct Waiting {
        var callers: [Key: [CheckedContinuation<Value?, any Error>]] = [:]
        var order: [Key] = []
        var running = 0
    }

    let maxBatch: Int
    let concurrentBatches: Int
    private let fetch: Fetch
    private let waiting = Mutex(Waiting())

    init(maxBatch: Int = 256, concurrentBatches: Int = 2, fetch: @escaping Fetch) {
        precondition(maxBatch > 0 && concurrentBatches > 0)
        self.maxBatch = maxBatch
        self.concurrentBatches = concurrentBatches
        self.fetch = fetch
    }

    /// The value for `key` (nil: there is none), from the batch it goes with.
    func value(for key: Key) async throws -> Value? {
        try await withCheckedThrowingContinuation { continuation in
            let start = waiting.withLock { waiting -> Bool in
                if waiting.callers[key] == nil { waiting.order.append(key) }
                waiting.callers[key, default: []].append(continuation)
                guard waiting.running < concurrentBatches else { return false }
                waiting.running += 1
                return true
            }
            if start { Task { await self.runBatches() } }
        }
    }

    /// Distinct keys waiting for a batch (not those in flight), for tests.
    var waitingKeys: Int { waiting.withLock { $0.order.count } }

    /// Sends batches until no key waits.
    private func runBatches() async {
        while true {
            let batch = waiting.withLock { waiting -> [(key: Key, callers: [CheckedContinuation<Value?, any Error>])] in
                let keys = waiting.order.prefix(maxBatch)
                waiting.order.removeFirst(keys.count)
                if keys.isEmpty { waiting.running -= 1 }
                return keys.map { ($0, waiting.callers.removeValue(forKey: $0) ?? []) }
            }
            guard !batch.isEmpty else { return }
            do {
                let found = try await fetch(batch.map(\.key))
                for (key, callers) in batch {
                    for caller in callers { caller.resume(returning: found[key]) }
                }
            } catch {
                for (_, callers) in batch {
                    for caller in callers { caller.resume(throwing: error) }
                }
            }
        }
    }
}
