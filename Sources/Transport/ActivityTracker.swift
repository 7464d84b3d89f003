import NIOCore
import Synchronization

/// When a connection last received anything (data, ping, pong or close), in uptime nanoseconds.
///
/// The WebSocket library consumes control frames itself, so liveness is observed below it:
/// ``ActivityTracker`` sits first in the channel pipeline and stamps every read.
final class ActivityClock: Sendable {
    private let lastRead: Atomic<UInt64>

    init() {
        lastRead = Atomic(ActivityClock.uptimeNanoseconds())
    }

    func touch() {
        lastRead.store(ActivityClock.uptimeNanoseconds(), ordering: .relaxed)
    }

    /// How long since the last read.
    var idle: Duration {
        let now = ActivityClock.uptimeNanoseconds()
        let last = lastRead.load(ordering: .relaxed)
        return .nanoseconds(Int64(now > last ? now - last : 0))
    }

    static func uptimeNanoseconds() -> UInt64 {
        NIODeadline.now().uptimeNanoseconds
    }
}

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

/// First in an upgraded connection's pipeline: stamps the ``ActivityClock`` on every read and
/// counts the bytes read and written into ``TrafficCounters``; passes everything on untouched.
final class ActivityTracker: ChannelDuplexHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let clock: ActivityClock
    let traffic: TrafficCounters

    init(clock: ActivityClock, traffic: TrafficCounters) {
        self.clock = clock
        self.traffic = traffic
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clock.touch()
        traffic.add(received: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        traffic.add(sent: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}
