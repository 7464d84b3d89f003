/// `auth` and `client_log` (PROTOCOL.md §4, §9).
extension Party {
    mutating func authenticate(_ client: ClientID, payload: JSONValue?, verdict: TokenVerdict?, now: ServerTime, out: inout Outcome) throws(ProtocolError) {
        guard var session = sessions[client] else { return }
        var version: Int?
        if let requested = payload?["protocol_version"], requested != .null {
            guard requested == .int(Int64(supportedProtocolVersion)) else {
                endSession(client, .protocolVersionUnsupported, now: now, out: &out)
                return
            }
            version = supportedProtocolVersion
        }
        let wasAuthenticated = session.authenticated
        if authRequired {
            guard let token = payload?["token"]?.string, !token.isEmpty else { throw ProtocolError(.authenticationRequired) }
            guard case .valid(let userID, let name, let expiresAt)? = verdict else { throw ProtocolError(.authenticationFailed) }
            session.userID = userID
            session.verifiedUserID = true
            session.name = Sanitizer.name(name) ?? session.name
            // A fresh token moves the session's end; the timer of the old one becomes stale.
            session.expiresAt = expiresAt
            if let expiresAt {
                out.timers.append(TimerRequest(key: .sessionExpiry(client: client, expiresAt: expiresAt), due: expiresAt))
            }
        } else {
            // Open mode: the client names itself; a token is ignored.
            if let claimed = Sanitizer.name(payload?["user_id"]?.string) {
                session.userID = claimed
                session.claimedUserID = true
            }
            session.name = Sanitizer.name(payload?["user_name"]?.string) ?? session.name
        }
        session.authenticated = true
        out.events.append(.authenticated(client: client, userID: session.userID))
        var features: [String]?
        if let declared = payload?["features"]?.array {
            let supported = declared.compactMap { $0.string.flatMap(ClientFeature.init(rawValue:)) }
            session.features = Set(supported)
            features = ClientFeature.allCases.filter(session.features.contains).map(\.rawValue)
        }
        if session.identity != sessions[client]?.identity {
            if let old = sessions[client]?.identity { unindex(client, from: old) }
            if let new = session.identity { sessionsByUser[new, default: []].insert(client) }
        }
        sessions[client] = session
        refreshLobby(client)
        out.send(.authSuccess(userName: session.name, protocolVersion: version, features: features), to: [client], client: client, now: now)
        // The same user's away seat, if there is exactly one, is this connection's now (§13).
        var lobby = LobbyChange()
        let resumed = session.roomID == nil && resumeByIdentity(client, now: now, out: &out, lobby: &lobby)
        flushLobby(lobby, now: now, out: &out)
        if !resumed && !wasAuthenticated && session.roomID == nil {
            out.send(.roomList(roomList()), to: [client], now: now)
        }
    }

    /// Counts a message against the connection's fixed one-second window (PROTOCOL.md §9), at
    /// the time it arrived (`now` when not given, never later than `now`); over the limit the
    /// connection gets RATE_LIMITED and is closed (now, when it is handled). Returns whether to go on.
    ///
    /// A message that may have waited unread (``Arrival/mayHaveWaited``: the server was busy)
    /// is counted at the earliest time consistent with both that wait and the client keeping
    /// to the limit: one ``PartyRules/rateSpacingMs`` after the connection's previous message,
    /// but no earlier than it could have arrived and no later than it was read. A clump of
    /// messages a busy server read at once is so spread back over the time it could not read,
    /// at the limit's pace; what that time cannot explain lands on the read and counts there
    /// (docs/protocol.md choice 22). A message read as it came (no wait) counts when read.
    mutating func withinRateLimit(_ client: ClientID, counted: Bool, arrival: Arrival?, now: ServerTime, out: inout Outcome) -> Bool {
        guard counted, sessions[client] != nil else { return true }
        let readAt = min(arrival?.readAt ?? now, now)
        let earliest = readAt - min(readAt, arrival?.mayHaveWaited ?? 0)
        let spacing = rules.rateSpacingMs
        var count = 0
        // The rate window is the connection's, kept by no store: not a change to report.
        sessions.updateUnrecorded(client) { session in
            let paced = session.meters.rateLastArrival.map { $0 + spacing } ?? earliest
            let arrivedAt = min(readAt, max(earliest, paced))
            session.meters.rateLastArrival = arrivedAt
            // Only a later window starts a new one: an arrival stamped a moment before the
            // window's start (the shell's two clocks differ by up to a millisecond) counts in it.
            if arrivedAt >= session.meters.rateWindowStart + 1000 {
                session.meters.rateWindowStart = arrivedAt
                session.meters.rateCount = 0
            }
            session.meters.rateCount += 1
            count = session.meters.rateCount
        }
        guard count > rules.rateLimitPerSecond else { return true }
        endSession(client, .rateLimited, now: now, out: &out)
        return false
    }

    /// Sends `code` and closes the connection with that cause's own close code
    /// (``CloseCause``); nothing it sends afterwards is served.
    mutating func endSession(_ client: ClientID, _ code: ErrorCode, now: ServerTime, out: inout Outcome) {
        guard let cause = CloseCause(ending: code) else { preconditionFailure("\(code) does not end a session") }
        sessions[client]?.closing = true
        out.error(code, to: client, room: nil, now: now)
        out.closes.append(CloseRequest(client: client, cause: cause))
    }

    /// A well-formed line is logged while the connection's budget lasts (``PartyRules/clientLogBurst``,
    /// refilled at ``PartyRules/clientLogPerSecond``); past it the line is dropped and counted.
    mutating func clientLog(from client: ClientID, payload: JSONValue?, now: ServerTime, out: inout Outcome) {
        guard let category = payload?["category"]?.string, Self.isLogCategory(category),
            let message = payload?["message"]?.string, sessions[client] != nil
        else { return }
        var allowed = false
        let (perSecond, burst) = (rules.clientLogPerSecond, rules.clientLogBurst)
        sessions.updateUnrecorded(client) { session in  // the connection's budget: kept by no store
            let earned = Double(now > session.meters.logAllowanceAt ? now - session.meters.logAllowanceAt : 0) / 1000 * perSecond
            session.meters.logAllowance = min(burst, session.meters.logAllowance + earned)
            session.meters.logAllowanceAt = now
            allowed = session.meters.logAllowance >= 1
            if allowed { session.meters.logAllowance -= 1 }
        }
        guard allowed else {
            out.events.append(.clientLogDropped)
            return
        }
        out.events.append(.clientLog(client: client, category: category, message: Sanitizer.logLine(message, limit: Self.clientLogLineLimit)))
    }

    /// Characters of a client's log line that reach the server's log.
    static let clientLogLineLimit = 500

    static func isLogCategory(_ value: String) -> Bool {
        (1...24).contains(value.utf8.count) && value.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}
