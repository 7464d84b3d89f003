/// Rooms that move between servers as whole values (PROTOCOL.md §14): the record a store
/// writes, a room taken over from its record, a room handed away.
extension Party {
    /// The digest a presented resume token goes by (the minter's own function).
    public func resumeDigest(of token: String) -> ResumeDigest {
        tokens.digest(of: token)
    }

    /// Whether a session here is resumed by the token whose digest this is.
    public func resumes(_ digest: ResumeDigest) -> Bool {
        resumeIndex[digest] != nil
    }

    /// `roomID` as a store keeps it, or `nil` if there is no such room here.
    public func record(of roomID: RoomID) -> RoomRecord? {
        guard let room = rooms[roomID] else { return nil }
        let seats = room.members.map { member in
            Self.seatRecord(of: sessions[member] ?? ClientSession(id: member, userID: "anonymous", name: "Anonymous", authenticated: false))
        }
        return RoomRecord(
            version: RoomRecord.currentVersion, id: room.id, name: room.name, hostID: room.hostID, mediaID: room.mediaID, members: room.members,
            ready: room.ready.sorted(), playback: room.playback, pendingPlay: room.pendingPlay, lastCommandTarget: room.lastCommandTarget,
            lastAcceptedAt: room.lastAcceptedAt, createdAt: room.createdAt, seats: seats)
    }

    /// Why a record cannot be taken over here.
    public enum AdoptionRefusal: Error, Equatable {
        /// A later record format, or members and seats that do not match (host not a member,
        /// ready not a subset, a member without its seat).
        case malformed
        /// The room, or one of its seats, is already here.
        case conflict
    }

    /// Takes over a room from its stored record: this server owns it from now on.
    ///
    /// Every seat is away (its member was connected to the server that owned the room), since
    /// the record says when or, if it was attached, since `ownerGoneAt` — when the previous
    /// owner was last heard of (its last write or renewal; `now` if unknown); each grace runs
    /// from then, so one that has run out already departs at once (the shell fires its timer
    /// straight away), and a room nobody came back to closes. A pending play is released at
    /// once — no member is present to hold the barrier — and so goes out exactly once, here.
    /// A member already connected here in no room, as the same identity — exactly one such
    /// connection — resumes its seat as an `auth` would have (PROTOCOL.md §13). The lobby is
    /// told of the room.
    public mutating func adopt(_ record: RoomRecord, now: ServerTime, ownerGoneAt: ServerTime? = nil) -> Result<Outcome, AdoptionRefusal> {
        guard record.version <= RoomRecord.currentVersion, !record.members.isEmpty, record.members.contains(record.hostID),
            record.seats.map(\.id) == record.members, Set(record.members).count == record.members.count,
            Set(record.ready).isSubset(of: record.members)
        else { return .failure(.malformed) }
        guard rooms[record.id] == nil, record.members.allSatisfy({ sessions[$0] == nil }) else { return .failure(.conflict) }
        var out = Outcome()
        roomSequence += 1
        var room = Room(
            id: record.id, name: record.name, hostID: record.hostID, mediaID: record.mediaID, members: record.members, ready: Set(record.ready),
            playback: record.playback, sequence: roomSequence, createdAt: record.createdAt)
        room.away = Set(record.members)
        room.lastCommandTarget = record.lastCommandTarget
        room.lastAcceptedAt = record.lastAcceptedAt
        room.pendingPlay = record.pendingPlay
        if let pending = record.pendingPlay { pendingGeneration = max(pendingGeneration, pending.generation) }
        rooms[room.id] = room
        let gone = min(ownerGoneAt ?? now, now)
        let arrivals = record.seats.map { ($0, min($0.awaySince ?? gone, now)) }.sorted { ($0.1, $0.0.id) < ($1.1, $1.0.id) }
        for (seat, since) in arrivals {
            var session = seatSession(seat, now: now)
            session.roomID = room.id
            session.awaySince = since
            sessions[seat.id] = session
            awayCount += 1
            awayQueue.append((seat.id, since))
            out.timers.append(TimerRequest(key: .resumeGrace(session: seat.id, awaySince: since), due: since + rules.resumeGraceMs))
        }
        out.events.append(.roomTakenOver(room: room.id, seats: record.seats.count))
        if room.pendingPlay != nil {
            releasePendingPlay(in: room.id, cause: .allReady, now: now, due: now, out: &out)
        }
        while awayCount > rules.maxAwaySessions, awayHead < awayQueue.count {
            evictOldestAway(now: now, out: &out)
        }
        var lobby = LobbyChange()
        noteRoomsChanged(&lobby)
        // Members who authenticated here before their room arrived (their auth found nothing to resume).
        // Only seats still within their grace (the others depart when their timer fires, at once).
        let identities = Set(arrivals.filter { $0.1 + rules.resumeGraceMs > now }.compactMap(\.0.identity))
        for identity in identities.sorted() {
            let waiting = (sessionsByUser[identity] ?? []).sorted().filter { id in
                sessions[id].map { $0.isAttached && $0.authenticated && $0.roomID == nil && !$0.closing } ?? false
            }
            // Only an unambiguous one: with two such connections (two tabs), neither is guessed.
            if waiting.count == 1 {
                _ = resumeByIdentity(waiting[0], now: now, out: &out, lobby: &lobby)
            }
        }
        flushLobby(lobby, now: now, out: &out)
        return .success(finish(out))
    }

    /// Hands `roomID` away as it is (a drain with a shared store, or a claim this server lost):
    /// its record, and an outcome that removes the room and its seats from here without a
    /// departure — nobody is sent anything, and the members' connections are closed with
    /// `cause` so that they reconnect and resume on the room's next owner. `nil` if there is no
    /// such room.
    public mutating func release(_ roomID: RoomID, closing cause: CloseCause, now: ServerTime) -> (record: RoomRecord, outcome: Outcome)? {
        guard let record = record(of: roomID), let room = rooms[roomID] else { return nil }
        var out = Outcome()
        for member in room.members {
            if sessions[member]?.isAttached == true {
                out.closes.append(CloseRequest(client: member, cause: cause))
            }
            forget(member, out: &out)
        }
        rooms[roomID] = nil
        out.events.append(.roomReleased(room: roomID))
        var lobby = LobbyChange()
        noteRoomsChanged(&lobby)
        flushLobby(lobby, now: now, out: &out)
        return (record, finish(out))
    }
}
