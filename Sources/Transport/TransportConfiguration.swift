/// How the WebSocket transport listens and what it tolerates (PROTOCOL.md §1).
public struct TransportConfiguration: Sendable, Equatable {
    /// The only path that upgrades to a WebSocket.
    public var path: String = "/ws"
    /// Largest inbound message after reassembly and decompression; larger closes with 1009.
    public var maxMessageSize: Int = 65_536
    /// Messages waiting for one slow client before it is disconnected (4003).
    public var outboundQueueCapacity: Int = 100
    /// Outbound messages smaller than this are sent uncompressed even when deflate is negotiated.
    public var compressionThreshold: Int = 256
    /// Whether permessage-deflate is offered back to clients that ask for it.
    public var compression: Bool = true
    /// Interval of server WebSocket pings.
    public var pingInterval: Duration = .seconds(20)
    /// Delay of a connection's first ping (a round trip to schedule with, soon after connect).
    public var firstPingDelay: Duration = .seconds(1)
    /// A connection from which nothing (any frame, pongs included) arrived for this long is closed (4000).
    public var idleTimeout: Duration = .seconds(60)
    /// How long to wait for the peer's close frame (or for a stuck close to get out) before dropping the socket.
    public var closeTimeout: Duration = .seconds(5)

    /// A request head (HTTP request line and headers, the WebSocket upgrade's included) must
    /// be complete this long after the connection opens, or the connection is closed; a plain
    /// HTTP connection kept alive is closed after this long without a next request.
    public var requestHeadTimeout: Duration = .seconds(10)
    /// Bytes of body an HTTP request on this port may carry (none of its routes reads one);
    /// past it the connection is closed.
    public var maxRequestBodySize: Int = 65_536
    /// Connections the kernel may hold waiting to be accepted (capped by `net.core.somaxconn`).
    /// A reconnect storm (every client of a restarted server at once) overflows a small queue,
    /// and each dropped SYN costs its client a second or more before it retries.
    public var listenBacklog: Int = 4096
    /// Open TCP connections in all, HTTP included; `nil`: derived from the descriptor limit
    /// (``TCPConnectionBudget/limit(forDescriptorLimit:)``).
    public var maxTCPConnections: Int?

    public init() {}
}
