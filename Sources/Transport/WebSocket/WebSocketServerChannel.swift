import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Every accepted TCP connection: HTTP/1.1 for Hummingbird's router, and the WebSocket
/// upgrade at the transport's path owned here, at the NIO level.
///
/// Guarantees: the request head must be complete within the head timeout
/// (``RequestHeadDeadline``, first in the pipeline); an upgrade request is judged by the
/// transport before anything is reserved for it, and a refused one is answered with its own
/// status by a channel handler (no task); an upgraded connection is one channel handler
/// (``WebSocketConnectionHandler``) and this connection's task ends as soon as the upgrade
/// is done. Only plain HTTP requests are served by a task (Hummingbird's).
struct WebSocketServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum Upgrade: Sendable {
        case websocket
        case refused
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgrade: EventLoopFuture<Upgrade>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let transport: WebSocketTransport
    /// Hummingbird's decoder limits, and the keep-alive idle time of plain HTTP connections.
    let http1: HTTP1Channel.Configuration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let transport = self.transport
            let http1 = self.http1
            try channel.pipeline.syncOperations.addHandler(
                RequestHeadDeadline(timeout: TimeAmount(transport.configuration.requestHeadTimeout), budget: transport.budget), position: .first)
            let decision = NIOLoopBoundBox<HandshakeDecision?>(nil, eventLoop: channel.eventLoop)
            let upgrader = WebSocketUpgrader(
                decision: decision,
                decide: { head, channel in transport.decide(head, channel: channel) },
                install: { channel, deflate, client in try transport.install(on: channel, deflate: deflate, client: client) }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration<Upgrade>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if case .refuse(let status, let headers) = decision.value {
                            try channel.pipeline.syncOperations.addHandler(RefusalResponder(status: status, headers: headers))
                            return .refused
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            RequestBodyLimit(limit: transport.configuration.maxRequestBodySize, budget: transport.budget))
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return .http(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgradeConfiguration)
            configuration.enablePipelining = false  // Hummingbird's async channel reads requests in order
            configuration.enableErrorHandling = true  // a request that does not parse gets 400 and a close
            configuration.enableResponseHeaderValidation = false  // Swift HTTP Types validate already
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let upgrade = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(upgrade: upgrade, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgrade.get() {
            case .websocket, .refused:
                return  // the channel's handlers own it from here
            case .http(let asyncChannel):
                await handleHTTP(asyncChannel: asyncChannel, logger: logger)
            }
        } catch {
            // The request never completed (the peer went, or sent what is not HTTP).
            logger.trace("Connection ended before a request was served", metadata: ["error": .string("\(error)")])
            value.channel.close(promise: nil)
        }
    }
}
