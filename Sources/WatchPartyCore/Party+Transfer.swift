/// A session in no room, as one value, moving to the server that owns the room it asks for
/// (PROTOCOL.md §14: members connected to one replica are served by the room's owner).
///
/// It carries what the seat is (identity, name, features, its resume token's digest) and what
/// its connection has proven (authentication, a token's expiry); never the token itself.
public struct SessionTransfer: Codable, Sendable, Equatable {
    /// Who it is and how it is resumed, as a room's record keeps a seat (never away: it is attached).
    public var seat: SeatRecord
    /// JWT mode: when the session's token (plus leeway) runs out.
    public var expiresAt: ServerTime?
}

extension Party {
    /// Hands `client`'s session away to be served by another server: removed here without a
    /// departure (nobody is told; it was in no room) and its token no longer resumes it here.
    /// Only an attached, authenticated session in no room that is not closing or probing can
    /// move; `nil` otherwise (the shell then serves its message here).
    public mutating func transferOut(_ client: ClientID) -> (transfer: SessionTransfer, outcome: Outcome)? {
        guard let session = sessions[client], session.isAttached, session.authenticated, session.roomID == nil, !session.closing,
            session.probing == nil
        else { return nil }
        let transfer = SessionTransfer(seat: Self.seatRecord(of: session), expiresAt: session.expiresAt)
        var out = Outcome()
        forget(client, out: &out)
        return (transfer, finish(out))
    }

    /// Serves a session handed over by another server (``transferOut(_:)`` there): attached,
    /// authenticated, in no room, resumable by the token it was greeted with. It is not greeted
    /// again (its connection was, by the server it is connected to); a token expiry is armed.
    /// `resumingIdentity`: it came for its user's seat here, and takes it as an `auth` as that
    /// user would have (PROTOCOL.md §13: exactly one away seat is resumed; one still attached
    /// is probed). `.conflict` if a session with its id or its token is here already.
    public mutating func transferIn(_ transfer: SessionTransfer, now: ServerTime, resumingIdentity: Bool = false) -> Result<Outcome, AdoptionRefusal> {
        let seat = transfer.seat
        guard seat.awaySince == nil, let digests = seat.digests else { return .failure(.malformed) }
        guard sessions[seat.id] == nil, digests.allSatisfy({ resumeIndex[$0] == nil }) else { return .failure(.conflict) }
        var out = Outcome()
        var session = seatSession(seat, now: now)
        session.authenticated = true
        session.expiresAt = transfer.expiresAt
        sessions[seat.id] = session
        refreshLobby(seat.id)
        if let expiresAt = transfer.expiresAt {
            out.timers.append(TimerRequest(key: .sessionExpiry(client: seat.id, expiresAt: expiresAt), due: expiresAt))
        }
        if resumingIdentity {
            var lobby = LobbyChange()
            _ = resumeByIdentity(seat.id, now: now, out: &out, lobby: &lobby)
            flushLobby(lobby, now: now, out: &out)
        }
        return .success(finish(out))
    }
}

extension Party {
    /// A session's seat as a record keeps it.
    static func seatRecord(of session: ClientSession) -> SeatRecord {
        SeatRecord(
            id: session.id, userID: session.userID, name: session.name, features: session.features.map(\.rawValue).sorted(),
            verifiedUserID: session.verifiedUserID, claimedUserID: session.claimedUserID, resumeDigest: session.resumeDigest?.hex,
            retiringDigest: session.retiringToken?.digest.hex, retiringUntil: session.retiringToken?.until, awaySince: session.awaySince)
    }

    /// A session for `seat` as it arrives from another server, not yet authenticated or in a
    /// room: its identity indexed, its token's digest resuming it here.
    mutating func seatSession(_ seat: SeatRecord, now: ServerTime) -> ClientSession {
        var session = ClientSession(id: seat.id, userID: seat.userID, name: seat.name, authenticated: false, connectedAt: now)
        session.features = Set(seat.features.compactMap(ClientFeature.init(rawValue:)))
        session.verifiedUserID = seat.verifiedUserID
        session.claimedUserID = seat.claimedUserID
        session.meters.logAllowance = rules.clientLogBurst
        session.resumeDigest = seat.resumeDigest.flatMap(ResumeDigest.init(hex:))
        if let hex = seat.retiringDigest, let digest = ResumeDigest(hex: hex), let until = seat.retiringUntil {
            session.retiringToken = RetiringToken(digest: digest, until: until)
        }
        index(tokensOf: session)
        if let identity = session.identity { sessionsByUser[identity, default: []].insert(seat.id) }
        return session
    }
}

extension SeatRecord {
    /// The digests that resume the seat (current, then retiring), or `nil` if one of them is
    /// not a digest's hex.
    var digests: [ResumeDigest]? {
        var digests: [ResumeDigest] = []
        for hex in [resumeDigest, retiringDigest].compactMap(\.self) {
            guard let digest = ResumeDigest(hex: hex) else { return nil }
            digests.append(digest)
        }
        return digests
    }
}
