import Synchronization

/// Bytes that crossed the WebSocket sockets, as sent on the wire (framing and compression
/// included), for the whole process. Read at scrape time.
public final class TrafficCounters: Sendable {
    private let received = Atomic<Int>(0)
    private let sent = Atomic<Int>(0)

    public init() {}

    func add(received bytes: Int) { received.wrappingAdd(bytes, ordering: .relaxed) }
    func add(sent bytes: Int) { sent.wrappingAdd(bytes, ordering: .relaxed) }

    public var receivedBytes: Int { received.load(ordering: .relaxed) }
    public var sentBytes: Int { sent.load(ordering: .relaxed) }
}
