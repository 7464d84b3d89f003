import NIOCore

/// A text message encoded once and shared, without copying, by every connection it is sent to.
public struct OutboundText: Sendable {
    let buffer: ByteBuffer

    public init(_ text: String) {
        self.buffer = ByteBuffer(string: text)
    }

    public var byteCount: Int { buffer.readableBytes }
}

/// One accepted WebSocket connection, as the application sees it.
///
/// Sending never blocks: messages go to the connection's bounded queue and its own writer
/// task drains them, so a slow client never delays any other. Thread-safe.
public final class Connection: Sendable {
    /// The peer's IP address, when known.
    public let remoteAddress: String?
    /// The extensions negotiated at upgrade (e.g. `permessage-deflate`).
    public let negotiatedExtensions: [String]
    let queue: OutboundQueue
    private let channel: any Channel

    init(remoteAddress: String?, negotiatedExtensions: [String], queueCapacity: Int, channel: any Channel) {
        self.remoteAddress = remoteAddress
        self.negotiatedExtensions = negotiatedExtensions
        self.queue = OutboundQueue(capacity: queueCapacity)
        self.channel = channel
    }

    /// Whether the socket is still open. Once the peer has gone (a reset, a close), messages it
    /// sent before are no longer handed to the application: nobody is left to answer.
    public var isOpen: Bool { channel.isActive }

    /// Drops the socket at once, without a close handshake (for a peer that will not answer).
    public func terminate() {
        channel.close(promise: nil)
    }

    /// Queues a text message. On `.overflow` the connection is being closed (4003, too slow).
    @discardableResult
    public func send(_ message: OutboundText) -> SendResult {
        queue.push(.text(message.buffer))
    }

    /// Queues a binary message (the watch-party protocol has none; the conformance echo does).
    @discardableResult
    public func send(binary bytes: [UInt8]) -> SendResult {
        queue.push(.binary(ByteBuffer(bytes: bytes)))
    }

    /// Closes the connection with `code` after the messages already queued are written.
    public func close(code: UInt16, reason: String) {
        queue.close(code: code, reason: reason)
    }

    /// The deepest this connection's outbound queue has been since the previous call.
    public func takeQueuePeak() -> Int { queue.takePeakDepth() }
}

/// Receives the application-level events of one connection. Implemented by the application.
///
/// Nothing here has a default: a conformer that forgets an event fails to compile rather than
/// silently dropping what an operator would count.
public protocol ConnectionSession: Sendable {
    /// A complete text message (reassembled, decompressed, within the size limit).
    /// `readAt` is when its last frame was read off the socket (uptime nanoseconds, see
    /// ``TransportClock``): handling latency starts there, before any wait for a thread.
    func received(text: String, readAt: UInt64) async
    /// A binary message (the protocol has none; the application answers with an error).
    func received(binary: [UInt8], readAt: UInt64) async
    /// A round trip measured by the server's ping.
    func measured(roundTrip: Duration)
    /// The connection is gone, for whatever reason. Called exactly once. `code` is the close
    /// code the server sent, or `nil` when the client closed or vanished first.
    func closed(code: UInt16?) async
}

/// Accepts new connections. Implemented by the application; the transport knows nothing of rooms.
public protocol ConnectionAcceptor: Sendable {
    /// Called once per upgraded connection, before any of its messages are read.
    func accept(_ connection: Connection) async -> any ConnectionSession
    /// An upgrade was refused before it happened (answered with `reason.status`).
    /// `client` is the address it counts against; `origin` the request's `Origin`, if any.
    func refused(reason: RefusalReason, client: String, origin: String?)
}

/// The monotonic clock the transport stamps reads with.
public enum TransportClock {
    /// Nanoseconds since an arbitrary fixed point (NIO's uptime clock).
    public static func uptimeNanoseconds() -> UInt64 { ActivityClock.uptimeNanoseconds() }
}
