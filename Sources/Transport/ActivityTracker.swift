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

/// Stamps the connection's ``ActivityClock`` on every read and passes the bytes on untouched.
final class ActivityTracker: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let clock: ActivityClock

    init(clock: ActivityClock) {
        self.clock = clock
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clock.touch()
        context.fireChannelRead(data)
    }
}
