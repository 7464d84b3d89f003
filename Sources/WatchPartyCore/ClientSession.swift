/// What the core knows about one connection.
public struct ClientSession: Sendable, Equatable {
    public let id: ClientID
    public var userID: String
    public var name: String
    public var authenticated: Bool
    public var features: Set<ClientFeature> = []
    public var roomID: RoomID?

    public init(id: ClientID, userID: String, name: String, authenticated: Bool) {
        self.id = id
        self.userID = userID
        self.name = name
        self.authenticated = authenticated
    }
}
