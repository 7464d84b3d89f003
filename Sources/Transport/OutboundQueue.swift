import DequeModule
import NIOCore
import Synchronization

/// One connection's bounded queue of outgoing frames, drained by that connection's own writer.
///
/// Guarantees: `push` never blocks and never grows the queue past its capacity. When the
/// queue is full the client is too slow: everything queued is dropped, a close (4003,
/// ``TransportCloseCause/slowClient``) is arranged, and the writer is told to abort even if it is stuck in a write. After a close
/// is requested nothing more is accepted, and the close goes out after what was queued.
final class OutboundQueue: Sendable {
    enum Item: Sendable, Equatable {
        case text(ByteBuffer)
        case binary(ByteBuffer)
        case close(code: UInt16, reason: String)
    }

    private struct State {
        var items: Deque<Item> = []
        var waiter: CheckedContinuation<Item?, Never>?
        var abortWaiter: CheckedContinuation<Void, Never>?
        var closing = false
        var aborted = false
        var highWater = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Appends a frame. `.overflow` means the client was just judged too slow.
    func push(_ item: Item) -> SendResult {
        let (result, wake, abort) = state.withLock { state -> (SendResult, CheckedContinuation<Item?, Never>?, CheckedContinuation<Void, Never>?) in
            guard !state.closing else { return (.closed, nil, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                state.highWater = max(state.highWater, 1)
                return (.queued, waiter, nil)
            }
            guard state.items.count < capacity else {
                state.closing = true
                state.aborted = true
                state.items = [.close(code: TransportCloseCause.slowClient.code, reason: TransportCloseCause.slowClient.text)]
                let abort = state.abortWaiter
                state.abortWaiter = nil
                return (.overflow, nil, abort)
            }
            state.items.append(item)
            state.highWater = max(state.highWater, state.items.count)
            return (.queued, nil, nil)
        }
        wake?.resume(returning: item)
        abort?.resume()
        return result
    }

    /// Queues a close after everything already queued; later pushes are refused.
    func close(code: UInt16, reason: String) {
        let wake = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            guard !state.closing else { return nil }
            state.closing = true
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(.close(code: code, reason: reason))
            return nil
        }
        wake?.resume(returning: .close(code: code, reason: reason))
    }

    /// The next frame to write; `nil` once closed and drained, or when the caller is cancelled.
    func next() async -> Item? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Item?, Never>) in
                let immediate: Item?? = state.withLock { state in
                    if let first = state.items.popFirst() { return .some(first) }
                    if state.closing || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Returns when the queue overflowed (or the caller is cancelled).
    func waitForAbort() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state in
                    if state.aborted || Task.isCancelled { return true }
                    state.abortWaiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.abortWaiter = nil }
                return state.abortWaiter
            }
            waiter?.resume()
        }
    }

    var wasAborted: Bool { state.withLock { $0.aborted } }

    /// The deepest the queue has been since the previous call (or since it was made); the next
    /// period starts from the depth it has now.
    func takePeakDepth() -> Int {
        state.withLock { state in
            defer { state.highWater = state.items.count }
            return state.highWater
        }
    }

    var depth: Int { state.withLock { $0.items.count } }
}

/// What happened to a message handed to a connection.
public enum SendResult: Sendable, Equatable {
    /// It will be written after the messages queued before it.
    case queued
    /// The queue was full: the client is being disconnected (4003, ``TransportCloseCause/slowClient``).
    case overflow
    /// The connection is closing; the message was dropped.
    case closed
}
