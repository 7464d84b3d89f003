import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Every TCP connection the server holds, HTTP and WebSocket alike, counted against one bound
/// below the process's descriptor limit: an attacker who opens idle sockets can make new
/// connections wait, but can never exhaust the descriptors the process needs to live (before
/// the bound, a few thousand idle sockets ended in a crash when libdispatch could not open a
/// file).
///
/// Guarantees: at most ``limit`` connections are accepted at once — past it the listener
/// stops accepting (the kernel's backlog holds the rest) until one closes; every pause is
/// counted and reported. Thread-safe.
public final class TCPConnectionBudget: Sendable {
    /// The bound.
    public let limit: Int
    private let open = Atomic<Int>(0)
    private let paused = Atomic<Int>(0)
    private let headerTimeouts = Atomic<Int>(0)
    private let bodiesTooLarge = Atomic<Int>(0)
    private let onPause: @Sendable (_ open: Int) -> Void

    /// `onPause` is called (on an event loop) each time the bound stops the listener.
    public init(limit: Int, onPause: @escaping @Sendable (_ open: Int) -> Void) {
        self.limit = max(1, limit)
        self.onPause = onPause
    }

    /// `configured` when given, else the bound for this process's descriptor limit.
    public convenience init(configured: Int?, descriptorLimit: Int = TCPConnectionBudget.descriptorLimit(), onPause: @escaping @Sendable (_ open: Int) -> Void) {
        self.init(limit: configured ?? Self.limit(forDescriptorLimit: descriptorLimit), onPause: onPause)
    }

    /// The bound for a descriptor limit: 5 % of it, at least 64, is kept for everything that
    /// is not a client (listeners, files, /proc reads, event-loop descriptors, the database).
    public static func limit(forDescriptorLimit descriptors: Int) -> Int {
        max(1, descriptors - max(64, descriptors / 20))
    }

    /// The soft `RLIMIT_NOFILE` of this process.
    public static func descriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    public var openConnections: Int { open.load(ordering: .relaxed) }
    /// How many times the bound stopped the listener.
    public var pauses: Int { paused.load(ordering: .relaxed) }
    /// Connections closed because their request head did not arrive in time.
    public var headerTimeoutCount: Int { headerTimeouts.load(ordering: .relaxed) }
    /// HTTP connections closed because a request body passed ``RequestBodyLimit``'s bound.
    public var bodyTooLargeCount: Int { bodiesTooLarge.load(ordering: .relaxed) }

    /// The delegate Hummingbird's listener consults before every accept.
    public var delegate: some AvailableConnectionsDelegate { Delegate(budget: self) }

    func opened() { open.wrappingAdd(1, ordering: .relaxed) }
    func closed() { open.wrappingSubtract(1, ordering: .relaxed) }
    func headerTimedOut() { headerTimeouts.wrappingAdd(1, ordering: .relaxed) }
    func bodyTooLarge() { bodiesTooLarge.wrappingAdd(1, ordering: .relaxed) }

    struct Delegate: AvailableConnectionsDelegate {
        let budget: TCPConnectionBudget

        mutating func connectionOpened() { budget.opened() }
        mutating func connectionClosed() { budget.closed() }

        func isAcceptingNewConnections() -> Bool {
            let open = budget.openConnections
            guard open >= budget.limit else { return true }
            budget.paused.wrappingAdd(1, ordering: .relaxed)
            budget.onPause(open)
            return false
        }
    }
}

/// Closes a connection whose first request head (up to its blank line) has not arrived within
/// `timeout` of the connection opening: a client that trickles its headers (slowloris) or
/// sends nothing holds a descriptor for `timeout` at most. Works on the raw bytes, first in
/// the pipeline, and removes itself once the head is complete (what follows is an upgraded
/// WebSocket or a keep-alive connection, which have their own idle rules).
final class RequestHeadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let budget: TCPConnectionBudget
    private var deadline: Scheduled<Void>?
    /// The last bytes seen, to find a `\r\n\r\n` split across reads.
    private var tail: [UInt8] = []

    init(timeout: TimeAmount, budget: TCPConnectionBudget) {
        self.timeout = timeout
        self.budget = budget
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let budget = self.budget
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            budget.headerTimedOut()
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let complete = buffer.withUnsafeReadableBytes { bytes -> Bool in
            for byte in bytes {
                tail.append(byte)
                if tail.count > 4 { tail.removeFirst() }
                if tail == [13, 10, 13, 10] { return true }
            }
            return false
        }
        context.fireChannelRead(data)
        if complete {
            deadline?.cancel()
            deadline = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}

/// Bounds each HTTP request's body (the routes on this port read none): a client that streams
/// a body past `limit` bytes has its connection closed, instead of keeping it busy while the
/// server drains what it sends. Sits in front of Hummingbird's codec on connections that were
/// not upgraded.
final class RequestBodyLimit: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let limit: Int
    private let budget: TCPConnectionBudget
    private var received = 0
    private var closed = false

    init(limit: Int, budget: TCPConnectionBudget) {
        self.limit = limit
        self.budget = budget
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        switch unwrapInboundIn(data) {
        case .head:
            received = 0
        case .body(let buffer):
            received += buffer.readableBytes
            guard received <= limit else {
                closed = true
                budget.bodyTooLarge()
                context.close(promise: nil)
                return
            }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }
}
