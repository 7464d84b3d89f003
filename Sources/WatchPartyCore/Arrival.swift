/// When a client message reached the server, as far as the shell can tell: the server time
/// it was read off its connection, and how long before that it may already have been waiting
/// in the kernel's socket buffer (the event loop that reads it was busy or descheduled for that
/// long). The rate limit (PROTOCOL.md §9, docs/protocol.md choices 20 and 22) counts a message
/// when it arrived; with `mayHaveWaited` it gives the client the benefit of that doubt.
public struct Arrival: Sendable, Equatable {
    /// Server time the message was read.
    public var readAt: ServerTime
    /// Milliseconds it may have waited unread before `readAt` (0: it was read as it came).
    public var mayHaveWaited: ServerTime

    public init(readAt: ServerTime, mayHaveWaited: ServerTime = 0) {
        self.readAt = readAt
        self.mayHaveWaited = mayHaveWaited
    }
}
