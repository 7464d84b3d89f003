import Foundation

/// A message the server sends (PROTOCOL.md §2–§9), built by the server, never relayed.
///
/// Guarantees: `type` is derived from the payload, `ts` and `server_ts` are always present
/// integers, `room` and `client` are omitted rather than empty, and payload fields follow the
/// protocol exactly (no extra fields, `null` only where the protocol shows it).
public struct ServerMessage: Sendable, Equatable {
    public var room: String?
    public var client: String?
    /// Server time the message was built (`ts`).
    public var ts: UInt64
    /// `server_ts`: normally `ts`; for a scheduled play, the moment its position held.
    public var serverTs: UInt64
    public var payload: ServerPayload

    public init(room: String? = nil, client: String? = nil, ts: UInt64, serverTs: UInt64? = nil, payload: ServerPayload) {
        self.room = room
        self.client = client
        self.ts = ts
        self.serverTs = serverTs ?? ts
        self.payload = payload
    }

    public var type: String { payload.type }
}

/// One room as listed in `room_list`.
public struct RoomSummary: Sendable, Equatable, Encodable {
    public var id: String
    public var name: String
    public var count: Int
    public var mediaID: String?

    enum CodingKeys: String, CodingKey { case id, name, count, mediaID = "media_id" }

    public init(id: String, name: String, count: Int, mediaID: String?) {
        self.id = id
        self.name = name
        self.count = count
        self.mediaID = mediaID
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(count, forKey: .count)
        try container.encode(mediaID, forKey: .mediaID)  // null when unknown, like room_state
    }
}

/// The lobby's `room_list` payload, a snapshot shared by every message that carries it, with
/// its JSON encoded once (``payloadJSON``): a connect storm against a server with a thousand
/// rooms would otherwise encode the same thousand entries once per connection.
public final class RoomList: Sendable, Equatable, CustomStringConvertible {
    public let rooms: [RoomSummary]
    /// The payload as ``ServerMessage/encodedJSON()`` writes it (an array, keys sorted).
    let payloadJSON: String

    public init(_ rooms: [RoomSummary]) {
        self.rooms = rooms
        var writer = WireJSONWriter(capacity: 64 + rooms.count * 96)
        writer.raw("[")
        for (index, room) in rooms.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw("{"); writer.key("count"); writer.int(room.count)
            writer.raw(","); writer.key("id"); writer.string(room.id)
            writer.raw(","); writer.key("media_id"); writer.string(room.mediaID)
            writer.raw(","); writer.key("name"); writer.string(room.name); writer.raw("}")
        }
        writer.raw("]")
        payloadJSON = writer.text
    }

    public static func == (lhs: RoomList, rhs: RoomList) -> Bool { lhs === rhs || lhs.rooms == rhs.rooms }

    public var description: String { "RoomList(\(rooms))" }
}

/// A participant as listed in `participant_list`.
public struct ParticipantEntry: Sendable, Equatable, Encodable {
    public var name: String
    public var isHost: Bool
    enum CodingKeys: String, CodingKey { case name, isHost = "is_host" }
}

/// The payload of `room_state` (PROTOCOL.md §5).
public struct RoomStatePayload: Sendable, Equatable {
    public var name: String
    public var hostID: String
    public var position: Double
    public var playState: PlayState
    public var stateServerTs: UInt64
    public var targetServerTs: UInt64?
    public var participantCount: Int
    public var mediaID: String?
}

/// The payload of a `player_event` the server sends (PROTOCOL.md §6–§7).
public struct PlayerEventPayload: Sendable, Equatable {
    public var action: PlayerAction
    public var position: Double
    public var playState: PlayState
    public var targetServerTs: UInt64
}

/// Every kind of server message, with its payload.
public enum ServerPayload: Sendable, Equatable {
    /// `resumeToken`: the token that resumes this session (PROTOCOL.md §13); `resumed`: this
    /// hello answers a resume (the id is the resumed session's).
    case clientHello(clientID: String, resumeToken: String? = nil, resumed: Bool = false)
    case authSuccess(userName: String, protocolVersion: Int?, features: [String]?)
    case roomList(RoomList)
    case roomState(RoomStatePayload)
    case participantList([ParticipantEntry])
    case participantStatuses([ParticipantStatus?])
    case participantsUpdate(count: Int)
    case clientLeft(count: Int)
    case hostChanged(hostID: String, hostName: String)
    case roomClosed(reason: String)
    case playerEvent(PlayerEventPayload)
    case stateUpdate(position: Double, playState: PlayState)
    case chatMessage(username: String, text: String)
    case pong(JSONValue?)
    case error(ErrorCode)

    public var type: String { kind.rawValue }

    /// The message's `type`; the compiler makes every new payload name one.
    public var kind: ServerMessageType {
        switch self {
        case .clientHello: .clientHello
        case .authSuccess: .authSuccess
        case .roomList: .roomList
        case .roomState: .roomState
        case .participantList: .participantList
        case .participantStatuses: .participantStatuses
        case .participantsUpdate: .participantsUpdate
        case .clientLeft: .clientLeft
        case .hostChanged: .hostChanged
        case .roomClosed: .roomClosed
        case .playerEvent: .playerEvent
        case .stateUpdate: .stateUpdate
        case .chatMessage: .chatMessage
        case .pong: .pong
        case .error: .error
        }
    }
}

/// The `type` of every server message (the `type` label of `owp_messages_sent_total`).
public enum ServerMessageType: String, Sendable, Hashable, CaseIterable {
    case clientHello = "client_hello"
    case authSuccess = "auth_success"
    case roomList = "room_list"
    case roomState = "room_state"
    case participantList = "participant_list"
    case participantStatuses = "participant_statuses"
    case participantsUpdate = "participants_update"
    case clientLeft = "client_left"
    case hostChanged = "host_changed"
    case roomClosed = "room_closed"
    case playerEvent = "player_event"
    case stateUpdate = "state_update"
    case chatMessage = "chat_message"
    case pong
    case error
}

// MARK: - Encoding

extension ServerMessage: Encodable {
    enum CodingKeys: String, CodingKey { case type, room, client, payload, ts, serverTs = "server_ts" }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        // An empty id means absent (PROTOCOL.md §2): never put `"room": ""` or `"client": ""` on the wire.
        try container.encodeIfPresent(room.flatMap { $0.isEmpty ? nil : $0 }, forKey: .room)
        try container.encodeIfPresent(client.flatMap { $0.isEmpty ? nil : $0 }, forKey: .client)
        try container.encode(ts, forKey: .ts)
        try container.encode(serverTs, forKey: .serverTs)
        try payload.encodeBody(into: &container, forKey: .payload)
    }

    /// Foundation's encoder, keys sorted: the reference form (``encodedJSONByEncoder()``).
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// The wire form: one JSON object, encoded once and shared by every recipient, written by
    /// ``WireJSONWriter`` exactly as `JSONEncoder` with sorted keys writes it. Keys sorted: one
    /// message has one wire form, so runs are reproducible and identical messages compress alike.
    public func encodedJSON() -> String {
        var writer = WireJSONWriter()
        write(into: &writer)
        return writer.text
    }

    /// The wire form as JSONEncoder writes it (keys sorted): the reference ``encodedJSON()``
    /// is tested against, byte for byte (`WireJSONTests`).
    func encodedJSONByEncoder() -> String {
        // Encoding our own value types cannot fail (every Double in them is finite by construction).
        let data = (try? Self.encoder.encode(self)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The envelope, keys in byte order: client, payload, room, server_ts, ts, type.
    func write(into writer: inout WireJSONWriter) {
        writer.raw("{")
        if let client, !client.isEmpty {
            writer.key("client")
            writer.string(client)
            writer.raw(",")
        }
        if !payload.bodyless {
            writer.key("payload")
            payload.writeBody(into: &writer)
            writer.raw(",")
        }
        if let room, !room.isEmpty {
            writer.key("room")
            writer.string(room)
            writer.raw(",")
        }
        writer.key("server_ts")
        writer.int(serverTs)
        writer.raw(",")
        writer.key("ts")
        writer.int(ts)
        writer.raw(",")
        writer.key("type")
        writer.string(type)
        writer.raw("}")
    }
}

extension ServerPayload {
    /// A `pong` to a `ping` without a payload has none (the encoder's `encodeIfPresent`).
    var bodyless: Bool {
        if case .pong(nil) = self { true } else { false }
    }

    /// The payload object, keys in byte order (as ``encodeBody(into:forKey:)`` encodes it).
    func writeBody(into w: inout WireJSONWriter) {
        switch self {
        case .clientHello(let id, let token, let resumed):
            w.raw("{"); w.key("client_id"); w.string(id)
            w.raw(","); w.key("resume_token"); w.string(token)
            if resumed { w.raw(","); w.key("resumed"); w.bool(true) }
            w.raw("}")
        case .authSuccess(let userName, let version, let features):
            w.raw("{")
            if let features {
                w.key("features"); w.raw("[")
                for (index, feature) in features.enumerated() {
                    if index > 0 { w.raw(",") }
                    w.string(feature)
                }
                w.raw("],")
            }
            if let version { w.key("protocol_version"); w.int(version); w.raw(",") }
            w.key("user_name"); w.string(userName)
            w.raw("}")
        case .roomList(let list):
            w.json(list.payloadJSON)
        case .roomState(let state):
            w.raw("{"); w.key("host_id"); w.string(state.hostID)
            w.raw(","); w.key("media_id"); w.string(state.mediaID)
            w.raw(","); w.key("name"); w.string(state.name)
            w.raw(","); w.key("participant_count"); w.int(state.participantCount)
            w.raw(","); w.key("state")
            w.raw("{"); w.key("play_state"); w.string(state.playState.rawValue)
            w.raw(","); w.key("position"); w.double(state.position); w.raw("}")
            w.raw(","); w.key("state_server_ts"); w.int(state.stateServerTs)
            w.raw(","); w.key("target_server_ts"); w.int(state.targetServerTs)
            w.raw("}")
        case .participantList(let participants):
            w.raw("{"); w.key("participants"); w.raw("[")
            for (index, participant) in participants.enumerated() {
                if index > 0 { w.raw(",") }
                w.raw("{"); w.key("is_host"); w.bool(participant.isHost)
                w.raw(","); w.key("name"); w.string(participant.name); w.raw("}")
            }
            w.raw("]}")
        case .participantStatuses(let statuses):
            w.raw("{"); w.key("statuses"); w.raw("[")
            for (index, status) in statuses.enumerated() {
                if index > 0 { w.raw(",") }
                w.string(status?.rawValue)
            }
            w.raw("]}")
        case .participantsUpdate(let count), .clientLeft(let count):
            w.raw("{"); w.key("participant_count"); w.int(count); w.raw("}")
        case .hostChanged(let hostID, let hostName):
            w.raw("{"); w.key("host_id"); w.string(hostID)
            w.raw(","); w.key("host_name"); w.string(hostName); w.raw("}")
        case .roomClosed(let reason):
            w.raw("{"); w.key("reason"); w.string(reason); w.raw("}")
        case .playerEvent(let event):
            w.raw("{"); w.key("action"); w.string(event.action.rawValue)
            w.raw(","); w.key("play_state"); w.string(event.playState.rawValue)
            w.raw(","); w.key("position"); w.double(event.position)
            w.raw(","); w.key("target_server_ts"); w.int(event.targetServerTs); w.raw("}")
        case .stateUpdate(let position, let playState):
            w.raw("{"); w.key("play_state"); w.string(playState.rawValue)
            w.raw(","); w.key("position"); w.double(position); w.raw("}")
        case .chatMessage(let username, let text):
            w.raw("{"); w.key("text"); w.string(text)
            w.raw(","); w.key("username"); w.string(username); w.raw("}")
        case .pong(let payload):
            w.value(payload ?? .null)
        case .error(let code):
            w.raw("{"); w.key("code"); w.string(code.rawValue)
            w.raw(","); w.key("message"); w.string(code.message); w.raw("}")
        }
    }
}

/// A payload written field by field: `nil` values become JSON `null` (used where the protocol shows null).
private struct Fields: Encodable {
    var entries: [(String, any Encodable & Sendable)]
    init(_ entries: [(String, (any Encodable & Sendable)?)]) {
        self.entries = entries.map { ($0.0, $0.1 ?? NullValue()) }
    }
    struct NullValue: Encodable, Sendable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        }
    }
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (key, value) in entries {
            try container.encode(value, forKey: Key(stringValue: key))
        }
    }
}

extension ServerPayload {
    fileprivate func encodeBody<K: CodingKey>(into container: inout KeyedEncodingContainer<K>, forKey key: K) throws {
        switch self {
        case .clientHello(let id, let token, let resumed):
            var fields: [(String, (any Encodable & Sendable)?)] = [("client_id", id), ("resume_token", token)]
            if resumed { fields.append(("resumed", true)) }
            try container.encode(Fields(fields), forKey: key)
        case .authSuccess(let userName, let version, let features):
            var fields: [(String, (any Encodable & Sendable)?)] = [("user_name", userName)]
            if let version { fields.append(("protocol_version", version)) }
            if let features { fields.append(("features", features)) }
            try container.encode(Fields(fields), forKey: key)
        case .roomList(let list):
            try container.encode(list.rooms, forKey: key)
        case .roomState(let state):
            try container.encode(
                Fields([
                    ("name", state.name),
                    ("host_id", state.hostID),
                    ("state", Fields([("position", state.position), ("play_state", state.playState.rawValue)])),
                    ("state_server_ts", state.stateServerTs),
                    ("target_server_ts", state.targetServerTs),
                    ("participant_count", state.participantCount),
                    ("media_id", state.mediaID),
                ]),
                forKey: key
            )
        case .participantList(let participants):
            try container.encode(Fields([("participants", participants)]), forKey: key)
        case .participantStatuses(let statuses):
            try container.encode(Fields([("statuses", statuses.map { $0?.rawValue })]), forKey: key)
        case .participantsUpdate(let count), .clientLeft(let count):
            try container.encode(Fields([("participant_count", count)]), forKey: key)
        case .hostChanged(let hostID, let hostName):
            try container.encode(Fields([("host_id", hostID), ("host_name", hostName)]), forKey: key)
        case .roomClosed(let reason):
            try container.encode(Fields([("reason", reason)]), forKey: key)
        case .playerEvent(let event):
            try container.encode(
                Fields([
                    ("action", event.action.rawValue),
                    ("position", event.position),
                    ("play_state", event.playState.rawValue),
                    ("target_server_ts", event.targetServerTs),
                ]),
                forKey: key
            )
        case .stateUpdate(let position, let playState):
            try container.encode(Fields([("position", position), ("play_state", playState.rawValue)]), forKey: key)
        case .chatMessage(let username, let text):
            try container.encode(Fields([("username", username), ("text", text)]), forKey: key)
        case .pong(let payload):
            try container.encodeIfPresent(payload, forKey: key)
        case .error(let code):
            try container.encode(Fields([("code", code.rawValue), ("message", code.message)]), forKey: key)
        }
    }
}
