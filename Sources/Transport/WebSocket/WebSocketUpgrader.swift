import NIOCore
import NIOHTTP1

/// What the server decided about one upgrade request, kept on the connection's event loop
/// between the response and the pipeline change.
enum HandshakeDecision: Sendable {
    /// Answer with this status instead (and these headers), then close.
    case refuse(HTTPResponseStatus, headers: HTTPHeaders)
    /// Switch protocols; `client` is the address the connection counts against.
    case accept(key: String, deflate: DeflateParameters?, client: String)
}

/// The WebSocket side of the HTTP upgrade (RFC 6455 §4.2.2) for NIO's typed upgrade handler.
///
/// `decide` judges the request (strictly: ``UpgradeRequest``, then the application's
/// admission). A refusal fails the upgrade, which leaves the connection to HTTP with the
/// refusal recorded, so the connection's not-upgraded path answers it (``RefusalResponder``);
/// an acceptance answers 101 with the accept key and the negotiated extension, and `install`
/// then puts the connection's handler in the pipeline, synchronously.
struct WebSocketUpgrader: NIOTypedHTTPServerProtocolUpgrader {
    typealias UpgradeResult = WebSocketServerChannel.Upgrade

    struct Refused: Error {}

    let supportedProtocol = "websocket"
    /// None demanded here: a request missing one is refused by `decide` with a status, not passed over.
    let requiredUpgradeHeaders: [String] = []
    let decision: NIOLoopBoundBox<HandshakeDecision?>
    let decide: @Sendable (HTTPRequestHead, any Channel) -> HandshakeDecision
    let install: @Sendable (any Channel, _ deflate: DeflateParameters?, _ client: String) throws -> Void

    func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let decided = decide(upgradeRequest, channel)
        decision.value = decided
        guard case .accept(let key, let deflate, _) = decided else { return channel.eventLoop.makeFailedFuture(Refused()) }
        var headers = initialResponseHeaders
        headers.replaceOrAdd(name: "Upgrade", value: "websocket")
        headers.replaceOrAdd(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Accept", value: UpgradeRequest.acceptValue(for: key))
        if let deflate { headers.add(name: "Sec-WebSocket-Extensions", value: deflate.responseHeader) }
        return channel.eventLoop.makeSucceededFuture(headers)
    }

    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<UpgradeResult> {
        channel.eventLoop.makeCompletedFuture {
            guard case .accept(_, let deflate, let client) = decision.value else { throw Refused() }
            try install(channel, deflate, client)
            return .websocket
        }
    }
}

/// Answers a refused upgrade with its status as soon as its head is replayed here, then
/// closes: it never waits for a body (a request that declares one and sends nothing must not
/// hold the connection).
final class RefusalResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let status: HTTPResponseStatus
    private let headers: HTTPHeaders
    private var answered = false

    init(status: HTTPResponseStatus, headers: HTTPHeaders) {
        self.status = status
        self.headers = headers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        let body = #"{"error":"\#(status.reasonPhrase)"}"#
        var headers = self.headers
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
