import CompressNIO
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A lean WebSocket client connection for load generation: one NIO channel, no task and no
/// async sequence per connection. Everything it does runs on its channel's event loop, so
/// 10 000 of them cost little more than their sockets.
///
/// RFC 6455 client duties are kept: every frame it sends is masked, the server's handshake
/// answer is validated (`Sec-WebSocket-Accept`), fragmented messages are reassembled, pings are
/// answered with pongs, and a close from the server is answered with a close.
///
/// Thread safety: an instance is confined to `eventLoop`. Every method and property must be used
/// on that loop (the `…FromAnywhere` helpers hop there), hence `@unchecked Sendable`.
final class BenchSocket: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let eventLoop: any EventLoop
    let counters: BenchCounters
    private var context: ChannelHandlerContext?
    /// Called for every text message once a scenario has taken the connection over.
    var onText: ((ByteBuffer) -> Void)?
    /// Called once when the connection ends: the server's close code, if it sent one.
    var onClose: ((_ serverCode: UInt16?) -> Void)?
    private(set) var isClosed = false
    /// Set when the server compresses with context takeover (else the thread's shared inflater is used).
    var ownInflater: Inflater?
    private(set) var serverCloseCode: UInt16?
    /// The first `client_hello` the server sent (its `client` and `resume_token`: PROTOCOL.md §13).
    private(set) var greeting: ByteBuffer?
    private var sentClose = false
    private let closedPromise: EventLoopPromise<Void>

    /// Set-up mode (no `onText` yet): messages wait here until a matching `expect(_:)`.
    private var inbox: [ByteBuffer] = []
    private var waiters: [(type: String, promise: EventLoopPromise<ByteBuffer>)] = []

    init(eventLoop: any EventLoop, counters: BenchCounters) {
        self.eventLoop = eventLoop
        self.counters = counters
        self.closedPromise = eventLoop.makePromise()
    }

    /// Completes when the socket is closed (never fails).
    var closed: EventLoopFuture<Void> { closedPromise.futureResult }

    // MARK: Sending (on the loop)

    func send(_ text: String) {
        guard let context, !isClosed, !sentClose else { return }
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    /// Starts the closing handshake (code 1000); the server answers and closes the TCP connection.
    func close() {
        guard let context, !isClosed else { return }
        if sentClose { return }
        sentClose = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .normalClosure)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    /// Drops the TCP connection at once.
    func abort() {
        context?.close(promise: nil)
    }

    // MARK: Set-up helpers

    /// The next message of `type` (skipping others that arrived before it); with `orError`, an
    /// `error` message too (what the caller then sees instead).
    func expect(_ type: String, orError: Bool = false) -> EventLoopFuture<ByteBuffer> {
        eventLoop.preconditionInEventLoop()
        while !inbox.isEmpty {
            let message = inbox.removeFirst()
            let kind = JSONScan.type(of: message)
            if kind == type || (orError && kind == "error") { return eventLoop.makeSucceededFuture(message) }
            noteUnexpected(message)
        }
        if isClosed { return eventLoop.makeFailedFuture(BenchError.closed(serverCloseCode)) }
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        waiters.append((type, promise))
        if orError { waiters.append(("error", promise)) }
        return promise.futureResult
    }

    /// Counts an `error` message that arrived during set-up (kept for the report).
    private func noteUnexpected(_ message: ByteBuffer) {
        if JSONScan.type(of: message) == "error" {
            counters.protocolError(code: JSONScan.string(.code, in: message) ?? "?")
        }
    }

    func expectFromAnywhere(_ type: String, orError: Bool = false) async throws -> ByteBuffer {
        try await eventLoop.flatSubmit { self.expect(type, orError: orError) }.get()
    }

    /// The client id and resume token the server greeted this connection with (PROTOCOL.md §13).
    func greetedSeat() async throws -> (client: String, token: String)? {
        guard let greeting = try await eventLoop.submit({ self.greeting }).get(),
            let client = JSONScan.string(.client, in: greeting), let token = JSONScan.string(.resumeToken, in: greeting)
        else { return nil }
        return (client, token)
    }

    func sendFromAnywhere(_ text: String) {
        eventLoop.execute { self.send(text) }
    }

    /// Hands the connection to a scenario: `onText` from now on; set-up leftovers are dropped.
    func takeOver(onText: @escaping (ByteBuffer) -> Void) {
        eventLoop.preconditionInEventLoop()
        for message in inbox { noteUnexpected(message) }
        inbox.removeAll()
        self.onText = onText
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        counters.openConnections.add(1, ordering: .relaxed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            // Compressed (RSV1) only when deflate was negotiated: each message on its own (no context takeover).
            guard let message = frame.rsv1 ? (ownInflater ?? Inflater.current).inflate(frame.unmaskedData) : frame.unmaskedData else {
                counters.socketError(BenchError.http("a compressed message that does not inflate"))
                context.close(promise: nil)
                return
            }
            if greeting == nil, JSONScan.type(of: message) == "client_hello" { greeting = message }
            if let onText {
                onText(message)
            } else {
                let type = JSONScan.type(of: message)
                if let index = waiters.firstIndex(where: { $0.type == type }) {
                    let promise = waiters.remove(at: index).promise
                    waiters.removeAll { $0.promise.futureResult === promise.futureResult }  // its `orError` twin
                    promise.succeed(message)
                } else if type == "error" || type == "room_state" || type == "client_hello" {
                    // Kept for a later `expect`. Lobby broadcasts (`room_list`, up to one per join
                    // server-wide, each listing every room) and room chatter are not kept.
                    inbox.append(message)
                    if inbox.count > 64 { noteUnexpected(inbox.removeFirst()) }
                }
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            var data = frame.unmaskedData
            serverCloseCode = data.readInteger(as: UInt16.self)
            if !sentClose {
                sentClose = true
                var echo = context.channel.allocator.buffer(capacity: 2)
                echo.writeInteger(serverCloseCode ?? 1000)
                let reply = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo)
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        case .binary:
            counters.unexpectedBinary()
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        counters.socketError(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        counters.openConnections.subtract(1, ordering: .relaxed)
        if !counters.stopping.load(ordering: .relaxed) { counters.unexpectedClose(code: serverCloseCode) }
        for waiter in waiters { waiter.promise.fail(BenchError.closed(serverCloseCode)) }
        waiters.removeAll()
        let onClose = self.onClose
        self.onClose = nil
        self.onText = nil
        onClose?(serverCloseCode)
        closedPromise.succeed(())
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }
}

enum BenchError: Error, CustomStringConvertible {
    case closed(UInt16?)
    case handshakeRefused
    case timeout(String)
    case badURL(String)
    case http(String)

    var description: String {
        switch self {
        case .closed(let code): "connection closed (server code \(code.map(String.init) ?? "none"))"
        case .handshakeRefused: "WebSocket upgrade refused by the server"
        case .timeout(let what): "timed out: \(what)"
        case .badURL(let url): "not a ws://host:port/path URL: \(url)"
        case .http(let what): "HTTP: \(what)"
        }
    }
}

/// Where to connect: `ws://127.0.0.1:3000/ws`, parsed once.
struct ServerURL: Sendable, CustomStringConvertible {
    let host: String
    let port: Int
    let path: String
    let address: SocketAddress

    init(_ url: String) throws {
        guard url.hasPrefix("ws://") else { throw BenchError.badURL(url) }
        let rest = url.dropFirst("ws://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let parts = authority.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw BenchError.badURL(url) }
        self.host = String(parts[0])
        self.port = port
        self.path = path.isEmpty ? "/" : String(path)
        let ip = host == "localhost" ? "127.0.0.1" : host
        do {
            self.address = try SocketAddress(ipAddress: ip, port: port)
        } catch {
            throw BenchError.badURL("\(url) (give an IP address, e.g. 127.0.0.1)")
        }
    }

    var description: String { "ws://\(host):\(port)\(path)" }
    /// The server's metrics endpoint on the same host and port.
    var metricsPath: String { "/metrics" }
}

extension BenchSocket {
    private enum Upgrade: Sendable {
        case upgraded(BenchSocket)
        case refused
    }

    /// Opens a connection on `eventLoop` and completes the WebSocket handshake.
    static func connect(
        to url: ServerURL, on eventLoop: any EventLoop, counters: BenchCounters, deflate: Bool = false, timeout: TimeAmount = .seconds(10)
    ) async throws -> BenchSocket {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let upgrade = try await bootstrap.connect(to: url.address) { channel in
            channel.eventLoop.makeCompletedFuture {
                let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(
                    maxFrameSize: 1 << 22,
                    upgradePipelineHandler: { channel, response in
                        channel.eventLoop.makeCompletedFuture {
                            let socket = BenchSocket(eventLoop: channel.eventLoop, counters: counters)
                            // A server that keeps its compression context between messages (no
                            // `server_no_context_takeover`) needs an inflater of this connection's own.
                            let answer = response.headers["Sec-WebSocket-Extensions"].joined(separator: ",").lowercased()
                            if answer.contains("permessage-deflate") && !answer.contains("server_no_context_takeover") {
                                socket.ownInflater = Inflater(keepsContext: true)
                            }
                            try channel.pipeline.syncOperations.addHandler(
                                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096, maxAccumulatedFrameSize: 1 << 22))
                            try channel.pipeline.syncOperations.addHandler(socket)
                            return Upgrade.upgraded(socket)
                        }
                    }
                )
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: "\(url.host):\(url.port)")
                if deflate { headers.add(name: "Sec-WebSocket-Extensions", value: "permessage-deflate; client_max_window_bits") }
                let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.path, headers: headers)
                let configuration = NIOTypedHTTPClientUpgradeConfiguration<Upgrade>(
                    upgradeRequestHead: head,
                    upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in
                        channel.close().map { Upgrade.refused }.recover { _ in Upgrade.refused }
                    }
                )
                var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                // The server writes its first frames (client_hello, room_list) right behind the 101:
                // bytes read together with the response must reach the frame decoder, not be dropped.
                pipeline.leftOverBytesStrategy = .forwardBytes
                let result = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
                // A server that never answers the upgrade: drop the socket, which fails `result`.
                let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
                result.whenComplete { _ in deadline.cancel() }
                return result
            }
        }
        switch try await upgrade.get() {
        case .upgraded(let socket): return socket
        case .refused: throw BenchError.handshakeRefused
        }
    }
}

/// Raw-deflate inflation of a server's messages. `current` is one generator thread's, shared
/// by its connections when the server negotiates no context takeover (every message inflates
/// on its own); a server that keeps its context gets one inflater per connection.
final class Inflater: @unchecked Sendable {
    private static let perThread = ThreadSpecificVariable<Inflater>()

    /// This thread's (never used by another: hence the unchecked `Sendable`, for the static).
    static var current: Inflater {
        if let inflater = perThread.currentValue { return inflater }
        let inflater = Inflater(keepsContext: false)
        perThread.currentValue = inflater
        return inflater
    }

    private let zlib = try? ZlibDecompressor(algorithm: .deflate, windowSize: 15)
    private let keepsContext: Bool

    init(keepsContext: Bool) {
        self.keepsContext = keepsContext
    }

    func inflate(_ compressed: ByteBuffer) -> ByteBuffer? {
        guard let zlib else { return nil }
        defer { if !keepsContext { try? zlib.reset() } }
        var input = compressed
        input.writeBytes([0, 0, 0xFF, 0xFF])
        var output = ByteBuffer()
        output.reserveCapacity(max(4096, compressed.readableBytes * 8))
        while true {
            do {
                try zlib.inflate(from: &input, to: &output)
                return output
            } catch let error as CompressNIOError where error == .bufferOverflow {
                output.reserveCapacity(output.capacity * 2)
            } catch {
                return nil
            }
        }
    }
}
