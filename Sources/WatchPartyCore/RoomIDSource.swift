import Foundation

/// Random UUID v4 room ids, lower-case, as the upstream server makes them.
public struct RandomRoomIDs: RoomIDSource {
    public init() {}
    public mutating func next() -> RoomID { UUID().uuidString.lowercased() }
}
