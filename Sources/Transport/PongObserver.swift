import NIOCore
import NIOWebSocket

/// Measures round trips from the server's own pings: each ping carries the uptime (ns) at which
/// it was sent, and the client's pong echoes it. Sits right after the frame decoder (the
/// WebSocket library consumes pongs itself) and passes every frame on untouched.
final class PongObserver: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    let onRoundTrip: @Sendable (Duration) -> Void

    init(onRoundTrip: @escaping @Sendable (Duration) -> Void) {
        self.onRoundTrip = onRoundTrip
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.opcode == .pong, frame.fin {
            var payload = frame.unmaskedData
            if payload.readableBytes == 8, let sent = payload.readInteger(as: UInt64.self) {
                let now = ActivityClock.uptimeNanoseconds()
                if now >= sent { onRoundTrip(.nanoseconds(Int64(now - sent))) }
            }
        }
        context.fireChannelRead(data)
    }

    /// Installs the observer after the frame decoder of an upgraded channel.
    static func install(on channel: any Channel, onRoundTrip: @escaping @Sendable (Duration) -> Void) async throws {
        try await channel.eventLoop.submit {
            let decoder = try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(PongObserver(onRoundTrip: onRoundTrip), position: .after(decoder.handler))
        }.get()
    }
}
