/// A watch-party room: a plain value, changed only by ``Party``.
///
/// Invariants (checked by the fuzz tests): `hostID` is a member, `ready` ⊆ `members`,
/// `away` ⊆ `members`, and `members` is never empty while the room exists.
public struct Room: Sendable, Equatable {
    public let id: RoomID
    public var name: String
    public var hostID: ClientID
    public var mediaID: String?
    /// Members in join order.
    public var members: [ClientID]
    public var ready: Set<ClientID>
    /// Members whose connection ended and who may still resume (PROTOCOL.md §13): listed and
    /// counted, but not holding the ready barrier and sent nothing. `away` ⊆ `members`.
    public var away: Set<ClientID> = []
    public var playback: Playback
    public var pendingPlay: PendingPlay?
    /// Execution time of the last scheduled command (for `room_state.target_server_ts` and the cooldown).
    public var lastCommandTarget: ServerTime?
    /// When the last command was handled or the last state update accepted (the rate rule).
    public var lastAcceptedAt: ServerTime?
    /// The host's persistent offset from the room's timeline (the state filter's memory).
    public var drift = DriftTracker()
    /// Self-reported statuses of members.
    public var statuses: [ClientID: ParticipantStatus] = [:]
    /// End of the current `participant_statuses` coalescing window.
    public var statusWindowEnd: ServerTime?
    /// A status change is waiting for the window to end.
    public var statusFlushPending = false
    /// Creation order, for a stable `room_list`.
    public let sequence: UInt64
    /// When the room was created (its age, in the admin API).
    public let createdAt: ServerTime

    /// Every present member is ready: an away member does not hold the barrier (PROTOCOL.md §13).
    public var allReady: Bool { members.allSatisfy { ready.contains($0) || away.contains($0) } }

    /// Members with a connection, in join order.
    public var presentMembers: [ClientID] { away.isEmpty ? members : members.filter { !away.contains($0) } }

    public func isMember(_ client: ClientID) -> Bool { members.contains(client) }

    public var orderedStatuses: [ParticipantStatus?] { members.map { statuses[$0] } }
}
