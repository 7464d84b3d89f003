/// `auth` and `client_log` (PROTOCOL.md §4, §9).
extension Party {
    mutating func authenticate(_ client: ClientID, payload: JSONValue?, now: ServerTime, out: inout Outcome, lobby: inout LobbyChange) throws(ProtocolError) {
        guard var session = sessions[client] else { return }
        var version: Int?
        if let requested = payload?["protocol_version"], requested != .null {
            guard requested == .int(Int64(supportedProtocolVersion)) else {
                out.error(.protocolVersionUnsupported, to: client, room: nil, now: now)
                out.closes.append(CloseRequest(client: client, code: 1008, reason: ErrorCode.protocolVersionUnsupported.message))
                return
            }
            version = supportedProtocolVersion
        }
        let wasAuthenticated = session.authenticated
        if let verifier {
            guard let token = payload?["token"]?.string, !token.isEmpty else { throw ProtocolError(.authenticationRequired) }
            guard case .valid(let userID, let name, _) = verifier.verify(token: token, now: now) else {
                throw ProtocolError(.authenticationFailed)
            }
            session.userID = userID
            session.name = Sanitizer.name(name) ?? session.name
        } else {
            // Open mode: the client names itself; a token is ignored.
            session.userID = Sanitizer.name(payload?["user_id"]?.string) ?? session.userID
            session.name = Sanitizer.name(payload?["user_name"]?.string) ?? session.name
        }
        session.authenticated = true
        var features: [String]?
        if let declared = payload?["features"]?.array {
            let supported = declared.compactMap { $0.string.flatMap(ClientFeature.init(rawValue:)) }
            session.features = Set(supported)
            features = ClientFeature.allCases.filter(session.features.contains).map(\.rawValue)
        }
        sessions[client] = session
        out.send(.authSuccess(userName: session.name, protocolVersion: version, features: features), to: [client], client: client, now: now)
        if !wasAuthenticated && session.roomID == nil {
            out.send(.roomList(roomSummaries()), to: [client], now: now)
        }
    }

    func clientLog(payload: JSONValue?, out: inout Outcome) {
        guard let category = payload?["category"]?.string, Self.isLogCategory(category),
            let message = payload?["message"]?.string
        else { return }
        out.events.append(.clientLog(category: category, message: Sanitizer.logLine(message)))
    }

    static func isLogCategory(_ value: String) -> Bool {
        (1...24).contains(value.utf8.count) && value.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}
