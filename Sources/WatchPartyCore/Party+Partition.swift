/// What `room_list` shows of a room, with what orders it there.
struct RoomListing: Sendable, Equatable {
    var sequence: UInt64
    var createdAt: ServerTime
    var summary: RoomSummary
}

extension Room {
    var listing: RoomListing {
        RoomListing(sequence: sequence, createdAt: createdAt, summary: RoomSummary(id: id, name: name, count: members.count, mediaID: mediaID))
    }
}

/// The party cut along its rooms, so that each room can be worked on alone: the shell's unit of
/// isolation (one lock per room, PROTOCOL.md is unchanged by it).
///
/// A *part* is a ``Party`` that holds one room and its members' sessions, cut from the whole by
/// ``detachRoom(_:)``. The whole keeps everything else: the lobby, every index, the room's
/// `room_list` entry, and a copy of each member's session (its *shadow*). An input that only the
/// sender's room answers (``servesInRoom(_:naming:from:)``, ``roomOfTimer(_:)``) is applied to that
/// part alone; any other input is applied to the whole, after the parts it may touch
/// (``roomsInvolved(receiving:from:verdict:)`` and its siblings) are put back with ``attachRoom(_:)``.
///
/// Why the cut party answers every input exactly as the uncut one would (the partition tests
/// run the fuzzer's inputs through both and compare every message, recipient and close):
/// - an input served by a part changes, outside its room, only its members' ``ConnectionMeters``
///   and `closing`, which the whole never reads of a session in a detached room, and which come
///   back with the part;
/// - what a `room_list` shows of a room (name, member count, media) changes only while the room
///   is attached, so the listing kept at the cut stays exact;
/// - an input applied to the whole reads rooms and member sessions only of the rooms named by
///   `roomsInvolved`, every one of them attached for it; the shadows answer the rest (who is in
///   which room, away, with which identity and token), and those change only while attached.
extension Party {
    /// Rooms held by parts of their own, not here (their listings are).
    public var detachedRooms: Set<RoomID> { Set(detached.keys) }

    /// Whether `room` is held by a part of its own (cut out by ``detachRoom(_:)``).
    public func isDetached(_ room: RoomID) -> Bool { detached[room] != nil }

    /// Every room this server holds, attached or cut out.
    public var roomCount: Int { rooms.count + detached.count }

    /// Cuts `room` out, with its members' sessions, into a part of its own; this party keeps the
    /// room's listing and shadows of the sessions. `nil` if the room is not here (or this is a part).
    public mutating func detachRoom(_ id: RoomID) -> Party? {
        guard partRoom == nil, let room = rooms[id] else { return nil }
        var part = Party(rules: rules, roomIDs: roomIDs, tokens: tokens, authRequired: authRequired)
        part.partRoom = id
        part.draining = draining
        part.pendingGeneration = pendingGeneration
        part.rooms.setUnrecorded(id, room)
        for member in room.members {
            part.sessions.setUnrecorded(member, sessions[member])
        }
        rooms.setUnrecorded(id, nil)
        detached[id] = room.listing
        return part
    }

    /// Puts a part cut out by ``detachRoom(_:)`` back: its room, and its sessions over their shadows.
    public mutating func attachRoom(_ part: Party) {
        guard let id = part.partRoom, detached[id] != nil, let room = part.rooms[id] else {
            preconditionFailure("attachRoom: not a part cut from this party")
        }
        rooms.setUnrecorded(id, room)
        for (member, session) in part.sessions {
            sessions.setUnrecorded(member, session)
        }
        pendingGeneration = max(pendingGeneration, part.pendingGeneration)
        detached[id] = nil
    }

    // MARK: Routing

    /// The messages a member's part answers alone: they read and change the sender's room and,
    /// of sessions, only its members' connection meters (``ConnectionMeters``) and `closing`.
    public static let servedInRoom: Set<ClientMessageType> = [.ping, .ready, .playerEvent, .stateUpdate, .chatMessage, .participantStatus, .clientLog]

    /// Whether this part alone answers a message of `type` (`nil`: a frame that did not decode,
    /// or a binary one) naming `room`, from `client`: it must be one of the part's members, and the
    /// message of a type in ``servedInRoom`` naming no room or the member's own.
    public func servesInRoom(_ type: ClientMessageType?, naming room: RoomID?, from client: ClientID) -> Bool {
        guard let own = partRoom, sessions[client]?.roomID == own else { return false }
        if let type, !Self.servedInRoom.contains(type) { return false }
        return room == nil || room == own
    }

    /// The room whose part alone answers the timer `key`, if one does.
    public static func roomOfTimer(_ key: TimerKey) -> RoomID? {
        switch key {
        case .readyWait(let room, _), .statusFlush(let room): room
        case .lobbyFlush, .authTimeout, .sessionExpiry, .resumeGrace: nil
        }
    }

    /// The detached rooms of these sessions and these rooms.
    public func roomsInvolved(clients: [ClientID] = [], rooms named: [RoomID] = []) -> Set<RoomID> {
        Set(clients.compactMap { sessions[$0]?.roomID } + named).filter { detached[$0] != nil }
    }

    /// The detached rooms ``receive(_:from:now:arrival:verdict:)`` (or ``reject(_:_:room:now:arrival:)``
    /// with `message` `nil`) may read or change: the sender's and the one named; for an `auth`, those
    /// of the identity's seats (it may resume or probe one); for a `resume`, the token's seat's.
    public func roomsInvolved(receiving message: ClientMessage?, from client: ClientID, verdict: TokenVerdict?) -> Set<RoomID> {
        var clients = [client]
        switch message?.type {
        case .auth?:
            var identities = [sessions[client]?.identity]
            if authRequired {
                if case .valid(let userID, _, _)? = verdict { identities.append(userID) }
            } else {
                identities.append(Sanitizer.name(message?.payload?["user_id"]?.string))
            }
            for identity in identities.compactMap({ $0 }) {
                clients += (sessionsByUser[identity] ?? []).sorted()
            }
        case .resume?:
            if let token = message?.payload?["token"]?.string, !token.isEmpty, token.utf8.count <= Self.resumeTokenLimit,
                let target = resumeIndex[tokens.digest(of: token)]
            {
                clients.append(target)
            }
        default:
            break
        }
        return roomsInvolved(clients: clients, rooms: message?.room.map { [$0] } ?? [])
    }

    /// The detached rooms ``disconnect(_:now:)`` may read or change: the session's own and, when
    /// the away bound is reached, the room of the away seat it would evict.
    public func roomsInvolved(disconnecting client: ClientID) -> Set<RoomID> {
        var clients = [client]
        if awayCount >= rules.maxAwaySessions, let oldest = awayQueue[awayHead...].first(where: { sessions[$0.client]?.awaySince == $0.since && sessions[$0.client]?.roomID != nil }) {
            clients.append(oldest.client)
        }
        return roomsInvolved(clients: clients)
    }

    /// The detached rooms ``fire(_:now:)`` may read or change for `key`.
    public func roomsInvolved(firing key: TimerKey) -> Set<RoomID> {
        switch key {
        case .readyWait(let room, _), .statusFlush(let room): roomsInvolved(rooms: [room])
        case .authTimeout(let client), .sessionExpiry(let client, _), .resumeGrace(let client, _): roomsInvolved(clients: [client])
        case .lobbyFlush: []
        }
    }
}
