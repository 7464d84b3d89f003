/// The message types a client may send (PROTOCOL.md §4–§9).
public enum ClientMessageType: String, Sendable, CaseIterable, Hashable {
    case auth
    case ping
    case listRooms = "list_rooms"
    case createRoom = "create_room"
    case joinRoom = "join_room"
    case leaveRoom = "leave_room"
    case closeRoom = "close_room"
    case ready
    case playerEvent = "player_event"
    case stateUpdate = "state_update"
    case chatMessage = "chat_message"
    case participantStatus = "participant_status"
    case clientLog = "client_log"
    /// Resume an away (or half-open) session by its token (PROTOCOL.md §13).
    case resume
}

/// A decoded client envelope (PROTOCOL.md §2): the type, the addressed room and the payload.
///
/// `room` is `nil` when absent or empty. The client's own `client` field is never trusted
/// and is not kept.
public struct ClientMessage: Sendable, Equatable {
    public var type: ClientMessageType
    public var room: String?
    public var payload: JSONValue?
    public var ts: UInt64

    public init(type: ClientMessageType, room: String? = nil, payload: JSONValue? = nil, ts: UInt64 = 0) {
        self.type = type
        self.room = room.flatMap { $0.isEmpty ? nil : $0 }
        self.payload = payload
        self.ts = ts
    }
}

/// Parses client text frames into ``ClientMessage``s.
///
/// Guarantees: never traps on any input; work is linear in the text's length; answers
/// `INVALID_JSON` for anything that is not strict RFC 8259 JSON (``StrictJSONParser``: no
/// trailing commas, comments or `NaN`, no repeated member names, at most
/// ``StrictJSONParser/defaultMaxDepth`` levels of nesting) or not an object with a string
/// `type` and a non-negative integer `ts`, and `UNKNOWN_MESSAGE_TYPE` for a well-formed
/// envelope with a type we do not serve.
public enum ClientMessageDecoder {
    static let parser = StrictJSONParser()

    public static func decode(_ text: String) -> Result<ClientMessage, ProtocolError> {
        envelope(try? parser.parse(text))
    }

    public static func decode(_ bytes: [UInt8]) -> Result<ClientMessage, ProtocolError> {
        envelope(try? parser.parse(bytes))
    }

    private static func envelope(_ parsed: JSONValue?) -> Result<ClientMessage, ProtocolError> {
        guard let fields = parsed?.object else {
            return .failure(ProtocolError(.invalidJSON))
        }
        guard case .string(let typeName)? = fields["type"], let ts = validTimestamp(fields["ts"]) else {
            return .failure(ProtocolError(.invalidJSON))
        }
        guard let type = ClientMessageType(rawValue: typeName) else {
            return .failure(ProtocolError(.unknownMessageType))
        }
        // A `room` that is not a string is treated like an absent one (upstream clients send "" or omit it).
        return .success(ClientMessage(type: type, room: fields["room"]?.string, payload: fields["payload"], ts: ts))
    }

    private static func validTimestamp(_ value: JSONValue?) -> UInt64? {
        switch value {
        case .int(let int) where int >= 0: UInt64(int)
        default: nil
        }
    }
}
