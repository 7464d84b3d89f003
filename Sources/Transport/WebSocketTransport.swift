import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// The HTTP/1.1 server with the WebSocket upgrade at ``TransportConfiguration/path``.
///
/// Each upgraded connection is one channel handler on its event loop
/// (``WebSocketConnectionHandler``): no task, bounded backlog, inbound messages bounded in
/// size (compressed or not) and handed, in order and synchronously, to the application's
/// ``ConnectionSession``. Any other request goes to Hummingbird's router.
public struct WebSocketTransport: Sendable {
    public let configuration: TransportConfiguration
    let acceptor: any ConnectionAcceptor
    let gate: UpgradeGate
    /// Bytes on the WebSocket wire, for the whole process.
    public let traffic = TrafficCounters()
    /// Every TCP connection (HTTP included) against one bound; its delegate goes into the
    /// application's configuration (`availableConnectionsDelegate`).
    public let budget: TCPConnectionBudget

    public init(
        configuration: TransportConfiguration, admission: AdmissionPolicy = AdmissionPolicy(), acceptor: any ConnectionAcceptor,
        budget: TCPConnectionBudget? = nil
    ) {
        self.configuration = configuration
        self.acceptor = acceptor
        self.gate = UpgradeGate(policy: admission)
        self.budget = budget ?? TCPConnectionBudget(configured: configuration.maxTCPConnections) { _ in }
    }

    /// From now on every upgrade is refused with 503 (PROTOCOL.md §11); open connections stay.
    public func beginDrain() {
        gate.beginDrain()
    }

    /// WebSockets currently open (admitted and not yet closed).
    public var openConnections: Int { gate.openConnections }

    /// The server builder to hand to `Hummingbird.Application(router:server:)`.
    public func serverBuilder() -> HTTPServerBuilder {
        let transport = self
        // A plain HTTP connection that stays open between requests gets the head timeout for
        // its next request too.
        let http1 = HTTP1Channel.Configuration(idleTimeout: TimeAmount(configuration.requestHeadTimeout))
        return HTTPServerBuilder { responder in
            WebSocketServerChannel(responder: responder, transport: transport, http1: http1)
        }
    }

    /// Judges an upgrade request, in order: the path (404), the handshake itself (400/426),
    /// then admission (drain 503, origin 403, limits 429), which reserves the connection's slot.
    func decide(_ head: HTTPRequestHead, channel: any Channel) -> HandshakeDecision {
        let decision = judge(head, channel: channel)
        if case .refuse = decision {
            // A refused request is answered once it has been read; one that never finishes
            // (a body declared and not sent) is dropped after the head timeout, not held.
            channel.eventLoop.scheduleTask(in: TimeAmount(configuration.requestHeadTimeout)) { channel.close(promise: nil) }
        }
        return decision
    }

    private func judge(_ head: HTTPRequestHead, channel: any Channel) -> HandshakeDecision {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? head.uri
        let policy = gate.policy
        let client = policy.clientAddress(peer: channel.remoteAddress?.ipAddress, forwardedFor: head.headers["X-Forwarded-For"]) ?? "unknown"
        let origin = head.headers["Origin"].first
        guard path == configuration.path else { return .refuse(.notFound, headers: [:]) }
        let key: String
        switch UpgradeRequest.check(head) {
        case .success(let valid):
            key = valid
        case .failure(let defect):
            let reason: RefusalReason = defect == .version ? .websocketVersion : .badHandshake
            acceptor.refused(reason: reason, client: client, origin: origin)
            return .refuse(defect.status, headers: defect == .version ? ["Sec-WebSocket-Version": "13"] : [:])
        }
        if let refusal = gate.admit(pathMatches: true, origin: origin, client: client) {
            if case .refused(let reason) = refusal { acceptor.refused(reason: reason, client: client, origin: origin) }
            return .refuse(HTTPResponseStatus(statusCode: refusal.status), headers: [:])
        }
        // The slot is given back when the socket closes, however the connection ends.
        let gate = self.gate
        channel.closeFuture.whenComplete { _ in gate.release(client: client) }
        let deflate = configuration.compression ? DeflateParameters.negotiate(offers: head.headers["Sec-WebSocket-Extensions"]) : nil
        return .accept(key: key, deflate: deflate, client: client)
    }

    /// Puts an accepted connection's handler in the pipeline and hands it to the application.
    func install(on channel: any Channel, deflate: DeflateParameters?, client: String) throws {
        let budget = OutboundBudget(capacity: configuration.outboundQueueCapacity)
        let handler = WebSocketConnectionHandler(
            configuration: configuration, deflate: deflate, traffic: traffic, budget: budget, lateness: LoopLateness.on(channel.eventLoop))
        try channel.pipeline.syncOperations.addHandler(handler)
        let connection = Connection(
            remoteAddress: client, negotiatedExtensions: deflate == nil ? [] : ["permessage-deflate"], channel: channel, handler: handler,
            budget: budget)
        handler.session = acceptor.accept(connection)
    }
}
