import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWSCompression
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization

/// The HTTP/1.1 server with the WebSocket upgrade at ``TransportConfiguration/path``.
///
/// Each upgraded connection gets a bounded outbound queue and its own writer task; inbound
/// messages are bounded in size (compressed or not) and handed, in order, to the
/// application's ``ConnectionSession``. Any other request goes to the HTTP router.
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
        var extensions: [WebSocketExtensionFactory] = []
        if configuration.compression {
            let configuration = self.configuration
            extensions.append(
                WebSocketExtensionFactory {
                    BoundedDeflateBuilder(maxMessageSize: configuration.maxMessageSize, compressionThreshold: configuration.compressionThreshold)
                }
            )
        }
        let ws = WebSocketServerConfiguration(
            maxFrameSize: configuration.maxMessageSize,
            extensions: extensions,
            autoPing: .disabled,  // our heartbeat pings, and judges idleness by any inbound frame
            closeTimeout: configuration.closeTimeout,
            validateUTF8: true
        )
        let transport = self
        let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) async throws -> ShouldUpgradeResult<
            WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
        > = { head, channel, _ in
            let path = head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 }
            let policy = transport.gate.policy
            let client = policy.clientAddress(
                peer: channel.remoteAddress?.ipAddress,
                forwardedFor: head.headerFields[values: .xForwardedFor]
            ) ?? "unknown"
            let origin = head.headerFields[.origin]
            if let refusal = transport.gate.admit(pathMatches: path == transport.configuration.path, origin: origin, client: client) {
                if case .refused(let reason) = refusal { transport.acceptor.refused(reason: reason, client: client, origin: origin) }
                await Self.refuse(channel, status: refusal.status)
                return .dontUpgrade
            }
            // The slot is given back when the socket closes, however the connection ends.
            channel.closeFuture.whenComplete { _ in transport.gate.release(client: client) }
            let activity = ActivityClock()
            try await channel.pipeline.addHandler(ActivityTracker(clock: activity, traffic: transport.traffic), position: .first).get()
            let offered = head.headerFields[values: .secWebSocketExtensions]
            return .upgrade([:]) { inbound, outbound, context in
                let negotiated = offered.contains { $0.contains("permessage-deflate") } && transport.configuration.compression ? ["permessage-deflate"] : []
                let connection = Connection(
                    remoteAddress: client, negotiatedExtensions: negotiated, queueCapacity: transport.configuration.outboundQueueCapacity, channel: channel)
                try await transport.run(connection, inbound: inbound, outbound: outbound, channel: channel, activity: activity, logger: context.logger)
            }
        }
        let headerTimeout = TimeAmount(configuration.requestHeadTimeout)
        let budget = self.budget
        // A plain HTTP connection that stays open between requests gets the same time for its
        // next head (Hummingbird's idle timeout, which applies only to connections not upgraded).
        let channelConfiguration = HTTP1WebSocketUpgradeChannel.Configuration(http1: .init(idleTimeout: headerTimeout), ws: ws)
        return HTTPServerBuilder { responder in
            GuardedChildChannel(
                inner: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: channelConfiguration, shouldUpgrade: shouldUpgrade),
                headerTimeout: headerTimeout, budget: budget)
        }
    }

    /// Answers the upgrade request with a plain HTTP status and `Connection: close`. (The
    /// library's own refusal is always 400; the protocol wants 403, 404, 429 or 503. The library
    /// then ends the exchange; its own 400 after ours is never read by a client.)
    static func refuse(_ channel: any Channel, status: Int) async {
        let status = HTTPResponseStatus(statusCode: status)
        let body = #"{"error":"\#(status.reasonPhrase)"}"#
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        try? await channel.writeAndFlush(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        try? await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body))))
        try? await channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        // Not closed here: closing under the library makes it log an error per refusal.
    }

    enum Exit: Sendable {
        case peerClosed
        case readerFailed(any Error)
        case tooBig
        /// The writer stopped: after sending a close with `code`, or (`nil`) because the peer went away.
        case writerDone(code: UInt16?)
        /// The client did not answer our close in time.
        case closeTimedOut
        case aborted
    }

    /// Runs one connection until the peer goes, the application closes it, or it is too slow.
    func run(
        _ connection: Connection, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel,
        activity: ActivityClock, logger: Logger
    ) async throws {
        // Installed before the session exists, so the first message's read is stamped too.
        let stamps = ReadStamps()
        let sessionSlot = SessionSlot()
        try? await FrameObserver.install(on: channel, stamps: stamps) { sessionSlot.session?.measured(roundTrip: $0) }
        let session = await acceptor.accept(connection)
        sessionSlot.session = session
        let queue = connection.queue
        let maxSize = configuration.maxMessageSize
        let exit = await withTaskGroup(of: Exit.self) { group -> Exit in
            group.addTask {
                // The writer: the only task that writes this connection's frames.
                while let item = await queue.next() {
                    switch item {
                    case .text(let buffer), .binary(let buffer):
                        let opcode: WebSocketOpcode = if case .text = item { .text } else { .binary }
                        do {
                            try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: opcode, data: buffer)))
                        } catch {
                            return .writerDone(code: nil)
                        }
                    case .close(let code, let reason):
                        try? await outbound.close(WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
                        return .writerDone(code: code)
                    }
                }
                return .writerDone(code: nil)
            }
            group.addTask {
                // The reader: messages are handled one at a time, in arrival order.
                do {
                    for try await message in inbound.messages(maxSize: maxSize) {
                        // Read before the peer went but not yet handled: dropped, not decoded
                        // (a client that floods and resets must not keep the server busy).
                        guard connection.isOpen else { return .peerClosed }
                        switch message {
                        case .text(let text):
                            guard text.utf8.count <= maxSize else { return .tooBig }
                            await session.received(text: text, readAt: stamps.pop())
                        case .binary(let buffer):
                            guard buffer.readableBytes <= maxSize else { return .tooBig }
                            await session.received(binary: Array(buffer.readableBytesView), readAt: stamps.pop())
                        }
                    }
                    return .peerClosed
                } catch {
                    return .readerFailed(error)
                }
            }
            group.addTask {
                await queue.waitForAbort()
                return .aborted
            }
            group.addTask {
                await self.heartbeat(connection, outbound: outbound, activity: activity)
                return .writerDone(code: nil)  // it only ends when cancelled, or after asking the writer to close
            }
            let first = await group.next() ?? .peerClosed
            if case .writerDone(let code?) = first {
                // We sent a close: keep reading until the client's close arrives (the closing
                // handshake, so its kernel never sees a reset while our close is still in flight),
                // but never longer than closeTimeout.
                let closeTimeout = configuration.closeTimeout
                group.addTask {
                    try? await Task.sleep(for: closeTimeout)
                    return .closeTimedOut
                }
                while let next = await group.next() {
                    if case .peerClosed = next { break }
                    if case .readerFailed = next { break }
                    if case .closeTimedOut = next { break }
                }
                group.cancelAll()
                return .writerDone(code: code)
            }
            group.cancelAll()
            return first
        }
        // Whatever ended the connection, the application hears of it exactly once.
        connection.close(code: 1000, reason: "")
        await session.closed(code: exit.closeCode)

        switch exit {
        case .readerFailed(let error):
            throw error  // the library closes with the matching code (1009 for an over-long message)
        case .tooBig:
            try? await outbound.close(.messageTooLarge, reason: TransportCloseCause.messageTooBig.text)
        case .aborted:
            // A slow client: try to tell it why, but never wait on it for long.
            logger.debug("Closing slow client")
            let slow = TransportCloseCause.slowClient
            let sent = await withDeadline(configuration.closeTimeout) {
                try? await outbound.close(WebSocketErrorCode(codeNumber: Int(slow.code)), reason: slow.text)
            }
            if !sent {
                try? await channel.close()
            }
        case .peerClosed, .writerDone, .closeTimedOut:
            break
        }
    }
}

extension WebSocketTransport {
    /// Pings soon after connect and then every `pingInterval` (each ping carries its send time, so the pong
    /// gives a round trip); once nothing has arrived for `idleTimeout`, closes with 4000
    /// (the close goes out after what is queued, then the connection ends like any other).
    func heartbeat(_ connection: Connection, outbound: WebSocketOutboundWriter, activity: ActivityClock) async {
        // The first ping goes `firstPingDelay` after connect: a round trip to schedule with.
        var sincePing = max(.zero, configuration.pingInterval - configuration.firstPingDelay)
        while !Task.isCancelled {
            let idle = activity.idle
            if idle >= configuration.idleTimeout {
                connection.close(code: TransportCloseCause.idle.code, reason: TransportCloseCause.idle.text)
                // Keep running (cancelled with the others) so this child does not end the connection early.
                try? await Task.sleep(for: .seconds(3600))
                return
            }
            let step = min(configuration.pingInterval - sincePing, configuration.idleTimeout - idle)
            try? await Task.sleep(for: step)
            sincePing += step
            if sincePing >= configuration.pingInterval {
                sincePing = .zero
                try? await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(integer: ActivityClock.uptimeNanoseconds()))))
            }
        }
    }
}

extension WebSocketTransport.Exit {
    /// The close code the server sends for this exit; `nil` when the client ended it.
    var closeCode: UInt16? {
        switch self {
        case .peerClosed: nil
        case .closeTimedOut: nil
        case .tooBig: TransportCloseCause.messageTooBig.code
        case .aborted: TransportCloseCause.slowClient.code
        case .writerDone(let code): code
        case .readerFailed(let error) where error is IOError || error is ChannelError:
            nil  // the socket failed or was reset under us: the client vanished, nothing was sent
        case .readerFailed(let error):
            // The library's error carries a WebSocketErrorCode it will send; read it by name.
            switch String(describing: error) {
            case let text where text.contains("messageTooLarge"): TransportCloseCause.messageTooBig.code
            case let text where text.contains("protocolError"): TransportCloseCause.protocolError.code
            case let text where text.contains("dataInconsistentWithMessage"): TransportCloseCause.invalidPayload.code
            default: TransportCloseCause.internalError.code
            }
        }
    }
}

/// Runs `body`; returns false if it had not finished after `timeout` (it is then cancelled).
func withDeadline(_ timeout: Duration, _ body: @escaping @Sendable () async -> Void) async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
        group.addTask {
            await body()
            return true
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return false
        }
        let first = await group.next() ?? false
        group.cancelAll()
        return first
    }
}

/// The session of a connection, once the application has accepted it (the frame observer is
/// installed before that, and reports round trips only from then on).
final class SessionSlot: Sendable {
    private let slot = Mutex<(any ConnectionSession)?>(nil)

    var session: (any ConnectionSession)? {
        get { slot.withLock { $0 } }
        set { slot.withLock { $0 = newValue } }
    }
}
