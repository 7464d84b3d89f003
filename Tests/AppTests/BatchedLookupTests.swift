import Foundation
import Synchronization
import Testing

@testable import App

/// The reconnect storm's tools (PostgresPartyStore): look-ups made together, and a fair line
/// for the recoveries over the bound. No database: the calls are counted and held by hand.
@Suite(.timeLimit(.minutes(1))) struct BatchedLookupTests {
    /// A fetch that records every batch it is given and holds each until released.
    final class HeldFetch: Sendable {
        let batches = Mutex<[[String]]>([])
        let releases: AsyncStream<Void>
        let release: AsyncStream<Void>.Continuation
        let failing: Set<String>

        init(failing: Set<String> = []) {
            (releases, release) = AsyncStream.makeStream(of: Void.self)
            self.failing = failing
        }

        func fetch(_ keys: [String]) async throws -> [String: Int] {
            batches.withLock { $0.append(keys) }
            var iterator = releases.makeAsyncIterator()
            _ = await iterator.next()
            if keys.contains(where: failing.contains) { throw TestFailure("refused") }
            return Dictionary(uniqueKeysWithValues: keys.filter { $0 != "missing" }.map { ($0, $0.count) })
        }
    }

    /// Shared, locked state for the test's tasks.
    final class Shared<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
        func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
    }

    static func waitFor(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func keysAskedForDuringABatchGoTogetherInTheNext() async throws {
        let held = HeldFetch()
        let lookup = BatchedLookup<String, Int>(maxBatch: 100, concurrentBatches: 1) { try await held.fetch($0) }
        async let first = lookup.value(for: "a")
        try await Self.waitFor { held.batches.withLock { $0.count } == 1 }
        // While "a" is in flight: six callers, five distinct keys (one asked twice), one unknown.
        let keys = ["bb", "ccc", "bb", "dddd", "missing", "eeeee"]
        let answers = Shared<[String: Int?]>([:])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask {
                    let value = try await lookup.value(for: key)
                    answers.withLock { $0["\(index):\(key)"] = value }
                }
            }
            try await Self.waitFor { lookup.waitingKeys == 5 }
            #expect(held.batches.withLock { $0.count } == 1, "nothing more goes while the one batch allowed is in flight")
            held.release.yield()  // a's batch
            try await Self.waitFor { held.batches.withLock { $0.count } == 2 }
            held.release.yield()  // everyone else's
            try await group.waitForAll()
        }
        #expect(try await first == 1)
        let batches = held.batches.withLock { $0 }
        #expect(batches[0] == ["a"], "an idle lookup goes at once, alone")
        #expect(Set(batches[1]) == ["bb", "ccc", "dddd", "missing", "eeeee"], "one call for all who waited, each key once")
        #expect(batches[1].count == 5)
        let got = answers.withLock { $0 }
        #expect(got["0:bb"] == .some(2) && got["2:bb"] == .some(2), "both callers of one key get its answer")
        #expect(got["4:missing"] == .some(nil), "a key with no value is nil, not an error")
        #expect(got["5:eeeee"] == .some(5))
    }

    @Test func aBatchIsBoundedAndAFailureFailsOnlyItsOwnCallers() async throws {
        let held = HeldFetch(failing: ["bad"])
        let lookup = BatchedLookup<String, Int>(maxBatch: 2, concurrentBatches: 1) { try await held.fetch($0) }
        async let first = lookup.value(for: "x")
        try await Self.waitFor { held.batches.withLock { $0.count } == 1 }
        let good = Task { try await lookup.value(for: "ok") }
        try await Self.waitFor { lookup.waitingKeys == 1 }  // asked for in this order
        let bad = Task { try await lookup.value(for: "bad") }
        try await Self.waitFor { lookup.waitingKeys == 2 }
        let later = Task { try await lookup.value(for: "later") }
        try await Self.waitFor { lookup.waitingKeys == 3 }
        for _ in 0..<3 { held.release.yield() }
        #expect(try await first == 1)
        await #expect(throws: TestFailure.self) { try await good.value }
        await #expect(throws: TestFailure.self) { try await bad.value }
        #expect(try await later.value == 5, "the next batch, of its own, is answered")
        #expect(held.batches.withLock { $0.map(\.count) } == [1, 2, 1], "at most two keys a batch")
    }

    @Test func theGateLetsTheLimitInAndTheRestInTurn() async throws {
        let gate = TurnGate(limit: 2)
        let far = ContinuousClock.now + .seconds(60)
        #expect(await gate.enter(by: far))
        #expect(await gate.enter(by: far))
        let order = Shared<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for waiter in 1...3 {
                group.addTask {
                    #expect(await gate.enter(by: far))
                    order.withLock { $0.append(waiter) }
                }
                try await Self.waitFor { gate.counts.waiting == waiter }
            }
            #expect(gate.counts == (2, 3), "two holders, three waiting, none polling")
            gate.leave()
            try await Self.waitFor { order.withLock { $0 } == [1] }
            #expect(gate.counts == (2, 2), "the turn passed on: still two holders")
            gate.leave()
            gate.leave()
            try await group.waitForAll()
        }
        #expect(order.withLock { $0 } == [1, 2, 3], "first come, first served")
        gate.leave()
        gate.leave()
        #expect(gate.counts == (0, 0))
    }

    @Test func aWaiterPastItsDeadlineIsToldSoAndTheTurnGoesOn() async throws {
        let gate = TurnGate(limit: 1)
        #expect(await gate.enter(by: .now + .seconds(60)))
        async let late = gate.enter(by: .now + .milliseconds(20))
        try await Self.waitFor { gate.counts.waiting == 1 }
        async let patient = gate.enter(by: .now + .seconds(60))
        try await Self.waitFor { gate.counts.waiting == 2 }
        try await Task.sleep(for: .milliseconds(40))
        gate.leave()
        #expect(await late == false, "its turn came after its deadline")
        #expect(await patient == true, "and went on to the next in line")
        #expect(gate.counts == (1, 0))
    }
}
