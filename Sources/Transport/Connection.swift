import NIOCore
import Synchronization

/// A text message encoded once and shared, without copying, by every connection it is sent
/// to: its frame is built once, and its compressed frame at most once (no context takeover
/// makes it the same bytes for every peer with the usual window).
public final class OutboundText: Sendable {
    let payload: ByteBuffer
    let frame: ByteBuffer
    private let deflatedFrame = Mutex<ByteBuffer?>(nil)

    public init(_ text: String) {
        self.payload = ByteBuffer(string: text)
        self.frame = FrameWriter.frame(opcode: FrameWriter.text, payload: payload)
    }

    public var byteCount: Int { payload.readableBytes }

    /// The frame for a peer with `deflate` negotiated: compressed when the message is at least
    /// `threshold` bytes and compression helps, else the plain frame.
    func frame(for deflate: DeflateParameters?, threshold: Int) -> ByteBuffer {
        guard let deflate, payload.readableBytes >= threshold else { return frame }
        if deflate.serverMaxWindowBits != 15 { return Self.compressed(payload, windowBits: deflate.serverMaxWindowBits) ?? frame }
        if let cached = deflatedFrame.withLock({ $0 }) { return cached }
        let made = Self.compressed(payload, windowBits: 15) ?? frame
        deflatedFrame.withLock { $0 = made }
        return made
    }

    static func compressed(_ payload: ByteBuffer, windowBits: Int) -> ByteBuffer? {
        guard let deflated = DeflateCodec.current.deflate(payload, windowBits: windowBits) else { return nil }
        return FrameWriter.frame(opcode: FrameWriter.text, payload: deflated, compressed: true)
    }
}

/// What a connection has been handed and not yet written into its channel, shared by the
/// ``Connection`` (any thread) and its handler (its event loop).
final class OutboundBudget: Sendable {
    let capacity: Int
    private let queued = Atomic<Int>(0)
    private let peak = Atomic<Int>(0)
    private let accepting = Atomic<Bool>(true)

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    enum Admission { case queued, overflow, closed }

    /// Reserves room for one more message.
    func admit() -> Admission {
        guard accepting.load(ordering: .acquiring) else { return .closed }
        let depth = queued.wrappingAdd(1, ordering: .relaxed).newValue
        if depth > peak.load(ordering: .relaxed) { peak.store(depth, ordering: .relaxed) }
        guard depth <= capacity else {
            queued.wrappingSubtract(1, ordering: .relaxed)
            return stopAccepting() ? .overflow : .closed
        }
        return .queued
    }

    /// One admitted message left the budget (written into the channel, or dropped).
    func release(_ count: Int = 1) {
        queued.wrappingSubtract(count, ordering: .relaxed)
    }

    /// Stops admitting; true only for the call that stopped it.
    func stopAccepting() -> Bool {
        accepting.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged
    }

    var depth: Int { queued.load(ordering: .relaxed) }

    func takePeak() -> Int {
        let now = queued.load(ordering: .relaxed)
        return peak.exchange(now, ordering: .relaxed)
    }
}

/// One accepted WebSocket connection, as the application sees it.
///
/// Sending never blocks and never waits for the client: a message is written into the
/// channel at once from the connection's event loop (or after one hop onto it), and what the
/// socket cannot take yet waits in a bounded backlog. At most `outboundQueueCapacity`
/// messages wait; one more and the client is judged too slow (4003). Thread-safe.
public final class Connection: Sendable {
    /// The peer's IP address, when known.
    public let remoteAddress: String?
    /// The extensions negotiated at upgrade (e.g. `permessage-deflate`).
    public let negotiatedExtensions: [String]
    let eventLoop: any EventLoop
    private let channel: any Channel
    private let handler: NIOLoopBound<WebSocketConnectionHandler>
    let budget: OutboundBudget

    init(remoteAddress: String?, negotiatedExtensions: [String], channel: any Channel, handler: WebSocketConnectionHandler, budget: OutboundBudget) {
        self.remoteAddress = remoteAddress
        self.negotiatedExtensions = negotiatedExtensions
        self.eventLoop = channel.eventLoop
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.budget = budget
    }

    /// Whether the socket is still open.
    public var isOpen: Bool { channel.isActive }

    /// Drops the socket at once, without a close handshake (for a peer that will not answer).
    public func terminate() {
        channel.close(promise: nil)
    }

    /// Sends a text message. On `.overflow` the connection is being closed (4003, too slow).
    @discardableResult
    public func send(_ message: OutboundText) -> SendResult {
        let result = Self.admit(self)
        if result == .queued { onLoop { $0.enqueue(message, flush: true) } }
        return result
    }

    /// Sends a binary message (the watch-party protocol has none; the conformance echo does).
    @discardableResult
    public func send(binary bytes: [UInt8]) -> SendResult {
        let result = Self.admit(self)
        if result == .queued { onLoop { $0.enqueue(binary: ByteBuffer(bytes: bytes)) } }
        return result
    }

    /// Sends one message to many connections: each event loop is reached once, however many
    /// of the recipients it serves (recipients on the calling loop are written at once).
    /// Returns how many took it, and those that overflowed (now closing with 4003).
    @discardableResult
    public static func send(_ message: OutboundText, to connections: some Sequence<Connection>) -> (queued: Int, overflowed: [Connection]) {
        var queued = 0
        var overflowed: [Connection] = []
        var hops: [ObjectIdentifier: (any EventLoop, [NIOLoopBound<WebSocketConnectionHandler>])] = [:]
        for connection in connections {
            switch admit(connection) {
            case .queued:
                queued += 1
                if connection.eventLoop.inEventLoop {
                    connection.handler.value.enqueue(message, flush: true)
                } else {
                    hops[ObjectIdentifier(connection.eventLoop), default: (connection.eventLoop, [])].1.append(connection.handler)
                }
            case .overflow:
                overflowed.append(connection)
            case .closed:
                break
            }
        }
        for (loop, handlers) in hops.values {
            loop.execute {
                for handler in handlers { handler.value.enqueue(message, flush: false) }
                for handler in handlers { handler.value.flushIfNeeded() }
            }
        }
        return (queued, overflowed)
    }

    /// Closes the connection with `code` after the messages already sent; later sends are
    /// dropped. The first close wins.
    public func close(code: UInt16, reason: String) {
        guard budget.stopAccepting() else { return }
        onLoop { $0.closeRequested(code: code, reason: reason) }
    }

    /// Runs `body` on the connection's event loop, where its session is called (at once when
    /// already there): work finished elsewhere comes back here to keep the session's order.
    public func onEventLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    /// The deepest this connection's backlog has been since the previous call.
    public func takeQueuePeak() -> Int { budget.takePeak() }

    private static func admit(_ connection: Connection) -> SendResult {
        switch connection.budget.admit() {
        case .queued: return .queued
        case .closed: return .closed
        case .overflow:
            connection.onLoop { $0.overflowed() }
            return .overflow
        }
    }

    private func onLoop(_ body: @escaping @Sendable (WebSocketConnectionHandler) -> Void) {
        if eventLoop.inEventLoop {
            body(handler.value)
        } else {
            let handler = self.handler
            eventLoop.execute { body(handler.value) }
        }
    }
}

/// What happened to a message handed to a connection.
public enum SendResult: Sendable, Equatable {
    /// It will be written after the messages sent before it.
    case queued
    /// Too many were waiting: the client is being disconnected (4003, ``TransportCloseCause/slowClient``).
    case overflow
    /// The connection is closing; the message was dropped.
    case closed
}

/// Receives the application-level events of one connection. Implemented by the application.
///
/// Every call is made on the connection's event loop, one at a time, in the order the frames
/// arrived: an implementation must not block (it hands slow work elsewhere). Nothing here
/// has a default: a conformer that forgets an event fails to compile rather than silently
/// dropping what an operator would count.
public protocol ConnectionSession: Sendable {
    /// A complete text message (reassembled, decompressed, valid UTF-8, within the size
    /// limit). `readAt` is when its last byte was read off the socket (uptime nanoseconds, see
    /// ``TransportClock``).
    func received(text: String, readAt: UInt64)
    /// A binary message (the protocol has none; the application answers with an error).
    func received(binary: [UInt8], readAt: UInt64)
    /// A round trip measured by the server's ping.
    func measured(roundTrip: Duration)
    /// The connection is gone, for whatever reason. Called exactly once, last. `code` is the
    /// close code the server sent, or `nil` when the client closed or vanished first.
    func closed(code: UInt16?)
}

/// Accepts new connections. Implemented by the application; the transport knows nothing of rooms.
public protocol ConnectionAcceptor: Sendable {
    /// Called once per upgraded connection, on its event loop, before any of its messages are read.
    func accept(_ connection: Connection) -> any ConnectionSession
    /// An upgrade was refused before it happened (answered with `reason.status`).
    /// `client` is the address it counts against; `origin` the request's `Origin`, if any.
    func refused(reason: RefusalReason, client: String, origin: String?)
}

/// The monotonic clock the transport stamps reads with.
public enum TransportClock {
    /// Nanoseconds since an arbitrary fixed point (NIO's uptime clock).
    public static func uptimeNanoseconds() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
