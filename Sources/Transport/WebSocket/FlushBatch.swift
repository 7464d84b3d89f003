import NIOCore

/// The connections of one event loop that wrote during the loop's current tick, flushed
/// together once the tick's reads and hops are done: a connection that several messages reach
/// in one tick (from the reads of several room members, from hops of other loops, its own
/// replies) costs one `writev`, not one `write` per message. Each tick the loop handles its
/// ready sockets, then the tasks submitted to it; the flush is one such task, submitted with
/// the tick's first write, so it runs in the same tick, after the reads before it (and after
/// the hops submitted before it: those submitted later flush in a task of their own, in the
/// same tick).
///
/// Only an optimisation of when bytes leave: what a connection wrote is flushed in the tick
/// it was written, in its order. Timers, pings, closes and a backlog draining on writability
/// flush at once, as before.
///
/// Thread confinement: an instance is only reachable through ``current``, which hands each
/// thread its own, and is only used on that thread (hence the unchecked `Sendable`, which only
/// lets the per-thread variable be a static and the flush task capture it).
final class FlushBatch: @unchecked Sendable {
    private static let perThread = PerThread { FlushBatch() }

    /// This thread's batch (made on first use).
    static var current: FlushBatch { perThread.current }

    /// Handlers waiting for their loop's flush task, per loop. One loop per thread in a
    /// server; tests run several embedded loops on one thread, each with its own task.
    private var waiting: [(loop: any EventLoop, handlers: [WebSocketConnectionHandler])] = []

    /// `handler`, on `loop` (this thread's), is flushed at the end of the loop's tick.
    func add(_ handler: WebSocketConnectionHandler, on loop: any EventLoop) {
        if let index = waiting.firstIndex(where: { $0.loop === loop }) {
            waiting[index].handlers.append(handler)
            return
        }
        waiting.append((loop, [handler]))
        loop.execute { self.flush(loop) }
    }

    private func flush(_ loop: any EventLoop) {
        guard let index = waiting.firstIndex(where: { $0.loop === loop }) else { return }
        let handlers = waiting.remove(at: index).handlers
        for handler in handlers { handler.flushIfNeeded() }
    }
}
