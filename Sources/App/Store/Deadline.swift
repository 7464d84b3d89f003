import Synchronization

/// The store's own time limit on a database call: a database that stops answering (a cut
/// network, a paused server) must not hold a caller for the TCP timeout.
enum Deadline {
    struct Exceeded: Error, CustomStringConvertible {
        let limit: Duration
        var description: String { "no answer from the database within \(limit)" }
    }

    /// `operation`'s result, or ``Exceeded`` once `limit` has passed. The operation itself is
    /// cancelled and left to end on its own; the caller does not wait for it.
    static func within<Value: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let slot = Slot<Value>()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            slot.fill(continuation)
            let work = Task {
                let result: Result<Value, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                slot.take()?.resume(with: result)
            }
            Task {
                try? await Task.sleep(for: limit)
                if let continuation = slot.take() {
                    work.cancel()
                    continuation.resume(throwing: Exceeded(limit: limit))
                }
            }
        }
    }

    /// The waiting caller, resumed once by whichever of the call and the deadline ends first.
    private final class Slot<Value: Sendable>: Sendable {
        private let continuation = Mutex<CheckedContinuation<Value, any Error>?>(nil)

        func fill(_ waiting: CheckedContinuation<Value, any Error>) {
            continuation.withLock { $0 = waiting }
        }

        func take() -> CheckedContinuation<Value, any Error>? {
            continuation.withLock { $0.take() }
        }
    }
}
