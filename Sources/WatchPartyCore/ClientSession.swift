/// What the core knows about one connection.
public struct ClientSession: Sendable, Equatable {
    public let id: ClientID
    public var userID: String
    public var name: String
    public var authenticated: Bool
    public var features: Set<ClientFeature> = []
    public var roomID: RoomID?
    /// JWT mode: when the session's token (plus leeway) runs out.
    public var expiresAt: ServerTime?
    /// The server asked for this connection to be closed; its further input is ignored.
    public var closing = false
    /// Round trips measured by the server's WebSocket pings, newest last (at most 8).
    public internal(set) var recentRTTs: [UInt64] = []
    /// Exponentially smoothed round trip (α = 1/8), in milliseconds.
    public internal(set) var smoothedRTT: Double?
    /// The worst of the recent round trips.
    public var recentMaxRTT: UInt64? { recentRTTs.max() }
    /// Start and count of the current one-second rate window.
    var rateWindowStart: ServerTime
    var rateCount = 0
    /// `client_log` budget: lines left, and when it was last topped up.
    var logAllowance: Double
    var logAllowanceAt: ServerTime

    public init(id: ClientID, userID: String, name: String, authenticated: Bool, connectedAt: ServerTime = 0) {
        self.id = id
        self.userID = userID
        self.name = name
        self.authenticated = authenticated
        self.rateWindowStart = connectedAt
        self.logAllowance = .infinity  // set from the rules by Party.connect
        self.logAllowanceAt = connectedAt
    }
}
