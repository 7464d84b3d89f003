import NIOCore
import Transport

/// What carries a session's messages to its client, as the gateway sees it: a WebSocket
/// connection on this replica (``Connection``), or one on another replica reached over the bus
/// (``RemoteConnection``). Either way: posted messages reach the client in the order posted,
/// a close comes after what was posted before it, and the calls never block.
protocol Carriage: AnyObject, Sendable {
    /// Queues a message after those posted before it (written after the store update).
    func post(_ message: OutboundText) -> SendResult
    /// Closes with `code` after what was posted; the first close wins.
    func close(code: UInt16, reason: String)
    /// Drops the connection at once.
    func terminate()
    /// The deepest its backlog has been since the previous call.
    func takeQueuePeak() -> Int
    /// Pings the connection; `answered` says, `within` later, whether anything came back.
    func probe(within: TimeAmount, answered: @escaping @Sendable (Bool) -> Void)
    /// Runs `body` where the connection's session is called, in order with its input.
    func onEventLoop(_ body: @escaping @Sendable () -> Void)
}

extension Connection: Carriage {}
