/// While a connection's handler reads (from its first `channelRead` to its
/// `channelReadComplete`), the other connections of the same event loop that it writes to —
/// the members of the room its messages fan out to — are not flushed one message at a time:
/// they are flushed together when that read is complete. A burst of messages read at once
/// then costs each member one `writev`, not one per message. Outside a read (timers, hops
/// from other threads) writes are flushed at once, as before.
///
/// Thread confinement: an instance is only reachable through ``current``, which hands each
/// thread (each event loop) its own, and is only used on that thread (hence the unchecked
/// `Sendable`, which only lets the per-thread variable be a static).
final class ReadScope: @unchecked Sendable {
    private static let perThread = PerThread { ReadScope() }

    /// This thread's scope (made on first use).
    static var current: ReadScope { perThread.current }

    /// The handler whose read is under way on this thread, if any.
    private(set) weak var reader: WebSocketConnectionHandler?
    private var deferred: [WebSocketConnectionHandler] = []

    /// A read begins (or goes on: several reads may come before their completion).
    func begin(_ handler: WebSocketConnectionHandler) {
        if reader !== handler {
            finish()  // another handler's read never completed (it closed): flush what it left
            reader = handler
        }
    }

    /// Whether `handler`'s flush can wait for the read under way; if so it is remembered.
    func deferFlush(of handler: WebSocketConnectionHandler) -> Bool {
        guard reader != nil else { return false }
        deferred.append(handler)
        return true
    }

    /// The read is complete: everything deferred is flushed.
    func finish() {
        reader = nil
        guard !deferred.isEmpty else { return }
        let handlers = deferred
        deferred.removeAll(keepingCapacity: true)
        for handler in handlers { handler.flushIfNeeded() }
    }
}
