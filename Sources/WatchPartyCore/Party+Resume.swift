/// Sessions that outlive their connections: away, grace, resume by token or identity, and the
/// takeover of a half-open connection (PROTOCOL.md §13).
extension Party {
    // MARK: Away

    /// `client`'s connection ended without a departure: it stays a member of `roomID`, away.
    /// The others get only `participant_statuses`, its status `null`; it no longer holds the
    /// ready barrier.
    /// Away sessions are bounded (``PartyRules/maxAwaySessions``): at the bound, the one away
    /// longest departs now, as if its grace had ended.
    mutating func goAway(_ client: ClientID, from roomID: RoomID, now: ServerTime, out: inout Outcome) {
        if awayCount >= rules.maxAwaySessions {
            evictOldestAway(now: now, out: &out)
            // The evicted one may have been the host of this very room, and closed it.
            guard sessions[client]?.roomID == roomID, rooms[roomID] != nil else {
                forget(client, out: &out)
                return
            }
        }
        sessions[client]?.awaySince = now
        sessions[client]?.carrierEpoch += 1
        awayCount += 1
        awayQueue.append((client, now))
        if awayQueue.count - awayHead > 2 * awayCount + 1024 {
            // Mostly resumed or departed entries: keep only the sessions still away as queued.
            awayQueue = awayQueue[awayHead...].filter { sessions[$0.client]?.awaySince == $0.since }
            awayHead = 0
        }
        sessions[client]?.closing = false
        rooms[roomID]?.away.insert(client)
        refreshLobby(client)
        out.events.append(.sessionAway(client: client, room: roomID))
        out.timers.append(TimerRequest(key: .resumeGrace(session: client, awaySince: now), due: now + rules.resumeGraceMs))
        // Its status is null now; the others are told so, whatever it was (§13: they learn of
        // an absence through participant_statuses and nothing else).
        rooms[roomID]?.statuses[client] = nil
        announceStatuses(in: roomID, now: now, out: &out)
        if let room = rooms[roomID], room.pendingPlay != nil, room.allReady {
            releasePendingPlay(in: roomID, cause: .allReady, now: now, due: now, out: &out)
        }
    }

    /// The away session that went away first (and is still away) departs now.
    mutating func evictOldestAway(now: ServerTime, out: inout Outcome) {
        while awayHead < awayQueue.count {
            let (client, since) = awayQueue[awayHead]
            awayHead += 1
            guard sessions[client]?.awaySince == since, let roomID = sessions[client]?.roomID else { continue }
            out.events.append(.graceExpired(client: client, room: roomID, early: true))
            departAway(client, now: now, out: &out)
            break
        }
        if awayHead > 1024 && awayHead * 2 > awayQueue.count {
            awayQueue.removeFirst(awayHead)
            awayHead = 0
        }
    }

    /// A seat leaves its room by §5's departure rules and is gone (its grace ended, it was
    /// evicted, or an operator removed it).
    mutating func departAway(_ client: ClientID, now: ServerTime, out: inout Outcome) {
        var lobby = LobbyChange()
        departFromRoom(client, now: now, out: &out, lobby: &lobby)
        forget(client, out: &out)
        lobby.leftRoom.removeAll { $0 == client }
        flushLobby(lobby, now: now, out: &out)
    }

    /// Takes `client` out of `identity`'s entry in ``sessionsByUser`` (and drops an emptied entry).
    mutating func unindex(_ client: ClientID, from identity: String) {
        sessionsByUser[identity]?.remove(client)
        if sessionsByUser[identity]?.isEmpty == true { sessionsByUser[identity] = nil }
    }

    /// Removes a session that is over, and its token with it; the shell is told
    /// (``DomainEvent/sessionEnded(client:)``), so that its timers go too.
    mutating func forget(_ client: ClientID, out: inout Outcome) {
        guard sessions[client] != nil else { return }
        out.events.append(.sessionEnded(client: client))
        if sessions[client]?.awaySince != nil { awayCount -= 1 }
        if let identity = sessions[client]?.identity { unindex(client, from: identity) }
        if let session = sessions[client] { unindexTokens(of: session) }
        sessions[client] = nil
        refreshLobby(client)
    }

    /// Gives `session` a new resume token and returns it, for the client's `client_hello`.
    /// The one it replaces keeps resuming the seat for ``PartyRules/resumeGraceMs`` as its
    /// ``RetiringToken`` (the hello may be lost), and the one that was retiring stops working;
    /// when the resume came `byRetiringToken`, the client never got the current one: that is
    /// dropped, and the retiring token stays as it was.
    mutating func issueToken(to session: inout ClientSession, byRetiringToken: Bool = false, now: ServerTime) -> String {
        unindexTokens(of: session)
        if !byRetiringToken {
            session.retiringToken = session.resumeDigest.flatMap { replaced in
                rules.resumeGraceMs > 0 ? RetiringToken(digest: replaced, until: now + rules.resumeGraceMs) : nil
            }
        }
        let minted = tokens.mint()
        session.resumeDigest = minted.digest
        index(tokensOf: session)
        return minted.token
    }

    /// Puts `session`'s current and retiring tokens in ``resumeIndex``.
    mutating func index(tokensOf session: ClientSession) {
        if let digest = session.resumeDigest { resumeIndex[digest] = session.id }
        if let retiring = session.retiringToken { resumeIndex[retiring.digest] = session.id }
    }

    /// Takes `session`'s current and retiring tokens out of ``resumeIndex``.
    mutating func unindexTokens(of session: ClientSession) {
        for digest in [session.resumeDigest, session.retiringToken?.digest].compactMap(\.self) where resumeIndex[digest] == session.id {
            resumeIndex[digest] = nil
        }
    }

    // MARK: Resume by token

    /// Longest token looked at; anything longer cannot be one of ours.
    public static let resumeTokenLimit = 256

    /// `resume {token}`: the token's session, away or still attached, moves to this connection.
    /// In JWT mode only a connection authenticated as the session's user may take it (the
    /// `auth` check itself is the general rule that only `auth`, `ping` and `client_log` are
    /// served before one).
    mutating func resume(byTokenFrom claimant: ClientID, payload: JSONValue?, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) throws(ProtocolError) {
        guard let token = payload?["token"]?.string, !token.isEmpty, token.utf8.count <= Self.resumeTokenLimit else {
            throw refuseResume(claimant, way: .token, out: &out)
        }
        let digest = tokens.digest(of: token)
        guard let target = resumeIndex[digest], target != claimant, let seat = sessions[target],
            let carrier = sessions[claimant], !authRequired || carrier.userID == seat.userID
        else {
            throw refuseResume(claimant, way: .token, out: &out)
        }
        let way: ResumeWay
        if seat.resumeDigest?.matches(digest) == true {
            way = .token
        } else if seat.retiringToken?.resumes(digest, at: now) == true {
            way = .retiringToken
        } else {
            throw refuseResume(claimant, way: .token, out: &out)
        }
        guard hand(target, to: claimant, way: way, now: now, out: &out, lobby: &lobby) else {
            throw refuseResume(claimant, way: way, out: &out)
        }
    }

    private func refuseResume(_ claimant: ClientID, way: ResumeWay, out: inout Outcome) -> ProtocolError {
        out.events.append(.resume(way: way, result: .refused, client: claimant, carrier: claimant, room: nil))
        return ProtocolError(.resumeFailed)
    }

    // MARK: Resume by identity

    /// After a successful `auth` of a connection in no room: the same user's one away session
    /// is resumed; with none away but exactly one attached in a room, that connection is
    /// probed (it may be half-open). Returns whether a session was resumed.
    mutating func resumeByIdentity(_ claimant: ClientID, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) -> Bool {
        guard rules.resumeGraceMs > 0, let carrier = sessions[claimant], carrier.roomID == nil, carrier.probing == nil,
            authRequired || (rules.resumeByUserID && carrier.claimedUserID)
        else { return false }
        guard let identity = carrier.identity else { return false }
        let same = (sessionsByUser[identity] ?? []).sorted().compactMap { sessions[$0] }.filter { $0.id != claimant && $0.roomID != nil && (authRequired || $0.claimedUserID) }
        let away = same.filter { !$0.isAttached }
        if away.count == 1 {
            return hand(away[0].id, to: claimant, way: .identity, now: now, out: &out, lobby: &lobby)
        }
        if away.isEmpty, same.count == 1 {
            let suspect = same[0].id
            sessions[claimant]?.probing = PendingProbe(session: suspect, epoch: same[0].carrierEpoch)
            out.probes.append(ProbeRequest(session: suspect, claimant: claimant, withinMs: rules.resumeProbeMs))
        }
        return false
    }

    /// The probe of `session`'s connection for `claimant` ended: `answered` says whether
    /// anything arrived from that connection since the probe was sent. Silent → the
    /// connection is taken to be dead (4001) and `claimant` resumes the session; answered →
    /// it is a live second connection of the same user and nothing is taken over.
    public mutating func settleProbe(of session: ClientID, for claimant: ClientID, answered: Bool, now: ServerTime) -> Outcome {
        var out = Outcome()
        guard var carrier = sessions[claimant], let probe = carrier.probing, probe.session == session else { return finish(out) }
        carrier.probing = nil
        sessions[claimant] = carrier
        // Taken over only from the very connection probed, and only if it kept silent; an away
        // seat (that connection ended meanwhile) is resumed.
        guard !carrier.closing, carrier.roomID == nil, let seat = sessions[session], seat.userID == carrier.userID, seat.roomID != nil,
            !seat.isAttached || (seat.carrierEpoch == probe.epoch && !answered)
        else {
            out.events.append(.resume(way: .identity, result: .refused, client: claimant, carrier: claimant, room: nil))
            return finish(out)
        }
        var lobby = LobbyChange()
        hand(session, to: claimant, way: .identity, now: now, out: &out, lobby: &lobby)
        flushLobby(lobby, now: now, out: &out)
        return finish(out)
    }

    // MARK: The handover

    /// `target`'s seat moves to the connection greeted as `claimant`, which is gone as a
    /// session of its own. The seat keeps its id, room, role and readiness (its status went
    /// `null` when it went away); what is about the connection (authentication, token expiry,
    /// declared features, its ``ConnectionMeters``) comes from the new one. Its token is rotated, and the client is sent, in
    /// order: `client_hello {resumed: true}`, `room_state`, `participant_list`,
    /// `participant_statuses` (and, in a playing room, the due play a late joiner gets). The
    /// others get only `participant_statuses` (coalesced like any status change).
    /// Returns false, with nothing handed over, when the seat is gone by then (the claimant's
    /// own departure closed the room it was in); the claimant is in the lobby.
    @discardableResult
    mutating func hand(_ target: ClientID, to claimant: ClientID, way: ResumeWay, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) -> Bool {
        if sessions[claimant]?.roomID != nil {
            // Taking up the seat is moving elsewhere: a departure from the room it is in.
            departFromRoom(claimant, now: now, out: &out, lobby: &lobby)
            guard sessions[target] != nil else { return false }  // that room was the seat's, and it closed
            lobby.leftRoom.removeAll { $0 == claimant }
        }
        guard var seat = sessions[target], let carrier = sessions[claimant] else { return false }
        let tookOver = seat.isAttached
        seat.authenticated = carrier.authenticated
        seat.expiresAt = carrier.expiresAt
        if authRequired { seat.name = carrier.name }  // the fresh token's name
        if !carrier.features.isEmpty { seat.features = carrier.features }
        seat.closing = false
        if seat.awaySince != nil { awayCount -= 1 }
        seat.awaySince = nil
        seat.carrierEpoch += 1
        seat.probing = nil
        seat.meters = carrier.meters
        forget(claimant, out: &out)
        let token = issueToken(to: &seat, byRetiringToken: way == .retiringToken, now: now)
        sessions[target] = seat
        refreshLobby(target)

        out.handovers.append(Handover(session: target, carrier: claimant, tookOver: tookOver, afterDeliveries: out.deliveries.count))
        out.events.append(.resume(way: way, result: tookOver ? .takenOver : .resumed, client: target, carrier: claimant, room: seat.roomID))
        if let expiresAt = seat.expiresAt {
            out.timers.append(TimerRequest(key: .sessionExpiry(client: target, expiresAt: expiresAt), due: expiresAt))
        }
        out.send(.clientHello(clientID: target, resumeToken: token, resumed: true), to: [target], client: target, now: now)
        guard let roomID = seat.roomID, var room = rooms[roomID] else {
            lobby.leftRoom.append(target)  // a seat in no room: the lobby's list
            return true
        }
        room.away.remove(target)
        rooms[roomID] = room
        out.send(.roomState(roomState(room, now: now)), to: [target], room: roomID, now: now)
        out.send(participantList(room), to: [target], room: roomID, now: now)
        out.send(.participantStatuses(room.orderedStatuses), to: [target], room: roomID, now: now)
        sendDuePlay(room, to: target, now: now, out: &out)
        announceStatuses(in: roomID, excluding: target, now: now, out: &out)  // the others: it is back
        return true
    }
}
