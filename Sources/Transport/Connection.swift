import Atomics
import DequeModule
import NIOCore
import Synchronization

/// A text message encoded once and shared, without copying, by every connection it is sent
/// to: its frame is built once, and its compressed frame at most once (no context takeover
/// makes it the same bytes for every peer with the usual window).
///
/// It can be made before it is encoded (`init(encoding:)`): handing it to connections is then
/// cheap enough for a critical section, and the first connection to write it encodes it, after
/// that section, on its own event loop.
public final class OutboundText: Sendable {
    /// The encoded message: set once, then read without a lock by every connection.
    private final class Encoded: Sendable {
        let payload: ByteBuffer
        let frame: ByteBuffer
        /// The compressed frame for the usual window (15 bits), made by the first peer that needs it.
        let deflated = ManagedAtomicLazyReference<Frame>()

        init(_ text: String) {
            payload = ByteBuffer(string: text)
            frame = FrameWriter.frame(opcode: FrameWriter.text, payload: payload)
        }
    }

    private final class Frame: Sendable {
        let bytes: ByteBuffer
        init(_ bytes: ByteBuffer) { self.bytes = bytes }
    }

    private let encoded = ManagedAtomicLazyReference<Encoded>()
    private let encode: @Sendable () -> String

    public init(_ text: String) {
        self.encode = { text }
        _ = encoded.storeIfNilThenLoad(Encoded(text))
    }

    /// A message encoded by `encode` when first needed (once: should two threads race, one
    /// encoding is kept and used by all).
    public init(encoding encode: @escaping @Sendable () -> String) {
        self.encode = encode
    }

    private var value: Encoded {
        encoded.load() ?? encoded.storeIfNilThenLoad(Encoded(encode()))
    }

    /// Its size as text (encodes it if it was not yet).
    public var byteCount: Int { value.payload.readableBytes }

    /// The message as text (encodes it if it was not yet): what is relayed to a connection on
    /// another server.
    public var text: String { String(buffer: value.payload) }

    /// The frame for a peer with `deflate` negotiated: compressed when the message is at least
    /// `threshold` bytes, else the plain frame.
    func frame(for deflate: DeflateParameters?, threshold: Int) -> ByteBuffer {
        let encoded = value
        guard let deflate, encoded.payload.readableBytes >= threshold else { return encoded.frame }
        if deflate.serverMaxWindowBits != 15 { return Self.compressed(encoded.payload, windowBits: deflate.serverMaxWindowBits) ?? encoded.frame }
        if let cached = encoded.deflated.load() { return cached.bytes }
        return encoded.deflated.storeIfNilThenLoad(Frame(Self.compressed(encoded.payload, windowBits: 15) ?? encoded.frame)).bytes
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
    /// Posted and not yet taken by the handler, oldest first (admitted, so counted in `queued`).
    private let posted = Mutex<Deque<OutboundText>>([])

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    func post(_ message: OutboundText) {
        posted.withLock { $0.append(message) }
    }

    /// Everything posted so far, oldest first (the handler's side).
    func takePosted() -> Deque<OutboundText> {
        posted.withLock { posted in
            defer { posted.removeAll() }
            return posted
        }
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
/// Sending never blocks and never waits for the client. A message is first *posted*: put,
/// in order, on the connection's list of messages to write (no I/O, cheap enough under the
/// application's lock, which is what keeps every recipient's order the order of the
/// application's decisions); then *delivered*: the connection's event loop writes what was
/// posted, at once when already there, else after one hop (one per loop for a whole batch of
/// connections). What the socket cannot take yet waits in a bounded backlog: at most
/// `outboundQueueCapacity` messages wait in all; one more and the client is judged too slow
/// (4003). Thread-safe.
public final class Connection: Sendable {
    /// The peer's IP address, when known.
    public let remoteAddress: String?
    /// The extensions negotiated at upgrade (e.g. `permessage-deflate`).
    public let negotiatedExtensions: [String]
    let eventLoop: any EventLoop
    private let channel: any Channel
    private let handler: NIOLoopBound<WebSocketConnectionHandler>
    let budget: OutboundBudget
    /// A hop to the event loop is on its way to take what was posted.
    private let hopScheduled = Atomic<Bool>(false)

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

    /// Sends a text message: posts it and delivers it. On `.overflow` the connection is being
    /// closed (4003, too slow).
    @discardableResult
    public func send(_ message: OutboundText) -> SendResult {
        let result = post(message)
        deliver()
        return result
    }

    /// Puts a message on the list of what this connection will write, after what was posted
    /// before it; nothing is written until ``deliver()`` (or ``deliver(_:)``).
    @discardableResult
    public func post(_ message: OutboundText) -> SendResult {
        switch budget.admit() {
        case .closed:
            return .closed
        case .overflow:
            later { $0.overflowed() }
            return .overflow
        case .queued:
            budget.post(message)
            return .queued
        }
    }

    /// Writes what was posted: now if on the connection's event loop, else after a hop.
    public func deliver() {
        if eventLoop.inEventLoop {
            handler.value.takePosted(flush: true)
        } else if !hopScheduled.exchange(true, ordering: .acquiringAndReleasing) {
            let handler = self.handler
            eventLoop.execute {
                self.hopScheduled.store(false, ordering: .releasing)
                handler.value.takePosted(flush: true)
            }
        }
    }

    /// Delivers for many connections: each event loop is reached once, however many of them it
    /// serves (those on the calling loop are written at once).
    public static func deliver(_ connections: some Sequence<Connection>) {
        var hops: [ObjectIdentifier: (any EventLoop, [Connection])] = [:]
        for connection in connections {
            if connection.eventLoop.inEventLoop {
                connection.handler.value.takePosted(flush: true)
            } else if !connection.hopScheduled.exchange(true, ordering: .acquiringAndReleasing) {
                hops[ObjectIdentifier(connection.eventLoop), default: (connection.eventLoop, [])].1.append(connection)
            }
        }
        for (loop, batch) in hops.values {
            loop.execute {
                for connection in batch {
                    connection.hopScheduled.store(false, ordering: .releasing)
                    connection.handler.value.takePosted(flush: true)  // flushed at the end of that loop's tick
                }
            }
        }
    }

    /// Sends one message to many connections (posts to each, then delivers them together).
    /// Returns how many took it, and those that overflowed (now closing with 4003).
    @discardableResult
    public static func send(_ message: OutboundText, to connections: some Sequence<Connection>) -> (queued: Int, overflowed: [Connection]) {
        var queued = 0
        var overflowed: [Connection] = []
        var taken: [Connection] = []
        for connection in connections {
            switch connection.post(message) {
            case .queued:
                queued += 1
                taken.append(connection)
            case .overflow: overflowed.append(connection)
            case .closed: break
            }
        }
        deliver(taken)
        return (queued, overflowed)
    }

    /// Sends a binary message (the watch-party protocol has none; the conformance echo does).
    @discardableResult
    public func send(binary bytes: [UInt8]) -> SendResult {
        deliver()  // after any text posted before it
        switch budget.admit() {
        case .closed: return .closed
        case .overflow:
            later { $0.overflowed() }
            return .overflow
        case .queued:
            onLoop { $0.enqueue(binary: ByteBuffer(bytes: bytes)) }
            return .queued
        }
    }

    /// Closes the connection with `code` after the messages already sent or posted; later
    /// sends are dropped. The first close wins.
    public func close(code: UInt16, reason: String) {
        guard budget.stopAccepting() else { return }
        later { $0.closeRequested(code: code, reason: reason) }
    }

    /// Probes a connection suspected of being half-open: a WebSocket ping now, and `answered`
    /// called `within` later (on the connection's event loop) with whether anything arrived
    /// from the peer since; `false` at once if the connection is no longer open.
    public func probe(within: TimeAmount, answered: @escaping @Sendable (Bool) -> Void) {
        onLoop { $0.probe(within: within, answered: answered) }
    }

    /// Runs `body` on the connection's event loop, where its session is called (at once when
    /// already there): work finished elsewhere comes back here to keep the session's order.
    public func onEventLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    /// The deepest this connection's backlog has been since the previous call.
    public func takeQueuePeak() -> Int { budget.takePeak() }

    /// Runs `body` on the loop after the current work, never inline: a close decided under the
    /// application's lock is written after that lock (and after what was posted before it).
    private func later(_ body: @escaping @Sendable (WebSocketConnectionHandler) -> Void) {
        let handler = self.handler
        eventLoop.execute { body(handler.value) }
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
    /// limit). `readAt` is when its last byte was read off the socket, and how long it may have
    /// waited there unread before (``ReadStamp``).
    func received(text: String, readAt: ReadStamp)
    /// A binary message (the protocol has none; the application answers with an error).
    func received(binary: [UInt8], readAt: ReadStamp)
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

/// When a message was read off its socket (``TransportClock`` nanoseconds), and the longest it
/// may have waited in the kernel's receive buffer before that read: the time the event loop
/// that reads the socket was recently unable to run (busy or descheduled, ``LoopLateness``).
/// A connection on a loop that keeps up reads what arrives within the loop's tick period.
public struct ReadStamp: Sendable, Equatable {
    public var uptimeNanoseconds: UInt64
    public var mayHaveWaitedNanoseconds: UInt64

    public init(uptimeNanoseconds: UInt64, mayHaveWaitedNanoseconds: UInt64 = 0) {
        self.uptimeNanoseconds = uptimeNanoseconds
        self.mayHaveWaitedNanoseconds = mayHaveWaitedNanoseconds
    }

    /// Read now, by something that does not know of any wait (a relay's bus frame, a test).
    public static func now() -> ReadStamp { ReadStamp(uptimeNanoseconds: TransportClock.uptimeNanoseconds()) }
}

/// The monotonic clock the transport stamps reads with.
public enum TransportClock {
    /// Nanoseconds since an arbitrary fixed point (NIO's uptime clock).
    public static func uptimeNanoseconds() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
