import DequeModule
import NIOCore
import NIOWebSocket
import Synchronization

/// The uptime (ns) at which each complete data message's last frame was read off the socket,
/// oldest first: the start of its handling latency, before any wait for the reader task.
final class ReadStamps: Sendable {
    private let stamps = Mutex(Deque<UInt64>())

    func push(_ stamp: UInt64) {
        stamps.withLock { $0.append(stamp) }
    }

    /// The stamp of the next message handed to the application; now, if none was taken (a
    /// frame read before the observer was installed).
    func pop() -> UInt64 {
        stamps.withLock { $0.popFirst() } ?? ActivityClock.uptimeNanoseconds()
    }
}

/// Sits right after the frame decoder (the WebSocket library consumes control frames itself)
/// and passes every frame on untouched. It measures round trips from the server's own pings
/// (each ping carries the uptime, in ns, at which it was sent; the pong echoes it) and stamps
/// the read time of every final data frame.
final class FrameObserver: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    let stamps: ReadStamps
    let onRoundTrip: @Sendable (Duration) -> Void

    init(stamps: ReadStamps, onRoundTrip: @escaping @Sendable (Duration) -> Void) {
        self.stamps = stamps
        self.onRoundTrip = onRoundTrip
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .pong where frame.fin:
            var payload = frame.unmaskedData
            if payload.readableBytes == 8, let sent = payload.readInteger(as: UInt64.self) {
                let now = ActivityClock.uptimeNanoseconds()
                if now >= sent { onRoundTrip(.nanoseconds(Int64(now - sent))) }
            }
        case .text where frame.fin, .binary where frame.fin, .continuation where frame.fin:
            stamps.push(ActivityClock.uptimeNanoseconds())
        default:
            break
        }
        context.fireChannelRead(data)
    }

    /// Installs the observer after the frame decoder of an upgraded channel.
    static func install(on channel: any Channel, stamps: ReadStamps, onRoundTrip: @escaping @Sendable (Duration) -> Void) async throws {
        try await channel.eventLoop.submit {
            let decoder = try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
            let observer = FrameObserver(stamps: stamps, onRoundTrip: onRoundTrip)
            try channel.pipeline.syncOperations.addHandler(observer, position: .after(decoder.handler))
        }.get()
    }
}
