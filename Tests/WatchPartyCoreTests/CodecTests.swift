import Foundation
import Testing

@testable import WatchPartyCore

/// The envelope (PROTOCOL.md §2): decoding client text and the wire form of server messages.
@Suite struct CodecTests {
    // MARK: Decoding

    static let invalidEnvelopes: [String] = [
        "",
        "not json",
        "{\"type\":\"ping\",\"ts\":1",  // truncated
        "[1,2,3]",
        "\"ping\"",
        "42",
        "null",
        "true",
        #"{"type":"ping"}"#,  // missing ts
        #"{"type":"ping","ts":null}"#,
        #"{"type":"ping","ts":-1}"#,
        #"{"type":"ping","ts":1.5}"#,
        #"{"type":"ping","ts":"1732700000000"}"#,
        #"{"type":"ping","ts":true}"#,
        #"{"type":"ping","ts":{}}"#,
        #"{"ts":1}"#,  // missing type
        #"{"type":5,"ts":1}"#,
        #"{"type":null,"ts":1}"#,
    ]

    @Test("malformed envelopes are INVALID_JSON", arguments: invalidEnvelopes)
    func invalidEnvelope(text: String) throws {
        try Self.expectInvalidJSON(text)
    }

    /// `text` is refused by the decoder and answered with exactly one INVALID_JSON error,
    /// the connection left open.
    static func expectInvalidJSON(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(ClientMessageDecoder.decode(text) == .failure(ProtocolError(.invalidJSON)), sourceLocation: sourceLocation)

        let h = Harness()
        h.connect("c")
        h.clear()
        h.sendText("c", text)
        let reply = try #require(h.only("c"), sourceLocation: sourceLocation)
        #expect(reply.type == "error", sourceLocation: sourceLocation)
        #expect(reply.client == "c", sourceLocation: sourceLocation)
        #expect(reply.room == nil, sourceLocation: sourceLocation)
        #expect(reply.payloadKeys == ["code", "message"], sourceLocation: sourceLocation)
        #expect(reply.string("code") == "INVALID_JSON", sourceLocation: sourceLocation)
        #expect(reply.string("message") == "Invalid message format", sourceLocation: sourceLocation)
        #expect(h.closes.isEmpty, "INVALID_JSON does not close the connection", sourceLocation: sourceLocation)
        #expect(h.events == [.errorSent(.invalidJSON)], sourceLocation: sourceLocation)
    }

    @Test func unknownTypeIsUnknownMessageType() throws {
        #expect(ClientMessageDecoder.decode(#"{"type":"dance","ts":1}"#) == .failure(ProtocolError(.unknownMessageType)))
        #expect(ClientMessageDecoder.decode(#"{"type":"PING","ts":1}"#) == .failure(ProtocolError(.unknownMessageType)))

        let h = Harness()
        h.connect("c")
        h.clear()
        h.sendText("c", #"{"type":"dance","room":"r","ts":1}"#)
        let reply = try #require(h.only("c"))
        #expect(reply.type == "error")
        #expect(reply.client == "c")
        #expect(reply.string("code") == "UNKNOWN_MESSAGE_TYPE")
        #expect(reply.string("message") == "Unknown message type")
        #expect(h.closes.isEmpty)

        // The connection keeps working afterwards.
        h.clear()
        h.send("c", "ping")
        #expect(h.types("c") == ["pong"])
    }

    @Test func envelopeIsCheckedBeforeTheType() {
        // docs/protocol.md, choice 1: an unknown type with a bad ts is INVALID_JSON.
        #expect(ClientMessageDecoder.decode(#"{"type":"dance"}"#) == .failure(ProtocolError(.invalidJSON)))
        #expect(ClientMessageDecoder.decode(#"{"type":"dance","ts":-3}"#) == .failure(ProtocolError(.invalidJSON)))
    }

    @Test func wellFormedEnvelopeDecodes() throws {
        let text = #"{"type":"join_room","room":"r-1","client":"spoofed","payload":{"user_name":"Zed","n":1,"f":1.5,"b":true,"z":null,"a":[1]},"ts":0,"extra":{"x":1}}"#
        let message = try ClientMessageDecoder.decode(text).get()
        #expect(message.type == .joinRoom)
        #expect(message.room == "r-1")
        #expect(message.ts == 0)
        #expect(
            message.payload
                == .object([
                    "user_name": .string("Zed"), "n": .int(1), "f": .double(1.5), "b": .bool(true), "z": .null, "a": .array([.int(1)]),
                ]))
    }

    @Test func largeTimestampIsAccepted() throws {
        let message = try ClientMessageDecoder.decode(#"{"type":"ping","ts":1732700000000}"#).get()
        #expect(message.ts == 1_732_700_000_000)
    }

    @Test func everyClientTypeDecodes() throws {
        for type in ClientMessageType.allCases {
            let message = try ClientMessageDecoder.decode(#"{"type":"\#(type.rawValue)","ts":1}"#).get()
            #expect(message.type == type)
        }
        let names = Set(ClientMessageType.allCases.map(\.rawValue))
        #expect(
            names == [
                "auth", "ping", "list_rooms", "create_room", "join_room", "leave_room", "close_room", "ready", "player_event",
                "state_update", "chat_message", "participant_status", "client_log", "resume",
            ])
    }

    @Test func emptyRoomMeansAbsent() throws {
        let decoded = try ClientMessageDecoder.decode(#"{"type":"ping","room":"","ts":1}"#).get()
        #expect(decoded.room == nil)
        #expect(ClientMessage(type: .ping, room: "").room == nil)
        // A non-string room is treated as absent as well.
        #expect(try ClientMessageDecoder.decode(#"{"type":"ping","room":7,"ts":1}"#).get().room == nil)

        let h = Harness()
        h.room(guests: ["g"])
        h.send("g", "ping", room: "", payload: ["client_ts": 5])
        let pong = try #require(h.only("g"))
        #expect(!pong.keys.contains("room"))

        // A room-addressed message with "" is one without a room.
        h.clear()
        h.send("g", "chat_message", room: "", payload: ["text": "hi"])
        h.send("g", "join_room", room: "")
        h.send("h", "player_event", room: "", payload: ["action": "pause"])
        h.send("h", "state_update", room: "", payload: ["position": 1, "play_state": "paused"])
        #expect(h.errorCodes("g") == ["ROOM_ID_REQUIRED", "ROOM_ID_REQUIRED"])
        #expect(h.errorCodes("h") == ["ROOM_ID_REQUIRED", "ROOM_ID_REQUIRED"])
        h.send("g", "ready", room: "")
        #expect(h.errorCodes("g").last == "INVALID_READY")
    }

    @Test func clientFieldIsNeverTrusted() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.sendText("g", #"{"type":"chat_message","room":"\#(room)","client":"h","payload":{"text":"hi"},"ts":99}"#)
        let chat = try #require(h.last("h", "chat_message"))
        #expect(chat.client == "g")
        #expect(chat.ts == h.now, "ts on a server message is now, not the client's ts")
    }

    // MARK: Wire form

    @Test func everyServerMessageCarriesIntegerTimestampsAndOnlyEnvelopeKeys() throws {
        // A busy session touching (nearly) every server message type.
        let h = Harness(rules: {
            var rules = PartyRules()
            rules.maxClientsPerRoom = 3
            return rules
        }())
        h.login("h", name: "Hannah", features: ["host_transfer"])
        h.login("g", name: "Gus", features: ["host_transfer", "participant_status"])
        h.login("x", name: "Xena")
        h.connect("l")
        let room = h.createRoom("h", payload: ["name": "Movie night", "media_id": "0123456789abcdef0123456789abcdef", "start_pos": 12.25])
        h.joinRoom("g", room)
        h.joinRoom("x", room)
        h.advance(by: 100)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 12.25])
        h.send("g", "ready", room: room)
        h.advance(by: 3000)
        h.send("x", "participant_status", payload: ["status": "buffering"])
        h.send("g", "participant_status", payload: ["status": "in_sync"])
        h.advance(by: 3000)
        h.send("h", "state_update", room: room, payload: ["position": 30.5, "play_state": "playing"])
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 60.75, "play_state": "paused"])
        h.send("x", "chat_message", room: room, payload: ["text": "hello"])
        h.send("l", "join_room", room: room)
        h.send("l", "ping", room: "anything", payload: ["client_ts": 1])
        h.send("l", "list_rooms")
        h.send("h", "leave_room")
        h.send("g", "close_room")
        h.sendText("l", "nope")

        let all = h.inboxes.values.flatMap { $0 }
        let seenTypes = Set(all.compactMap(\.type))
        #expect(
            seenTypes.isSuperset(of: [
                "client_hello", "auth_success", "room_list", "room_state", "participant_list", "participant_statuses", "participants_update",
                "client_left", "host_changed", "room_closed", "player_event", "state_update", "chat_message", "pong", "error",
            ]))
        for wire in all {
            #expect(wire.hasIntegerLiteral("ts"), "ts must be a JSON integer: \(wire)")
            #expect(wire.hasIntegerLiteral("server_ts"), "server_ts must be a JSON integer: \(wire)")
            #expect(wire.ts != nil && wire.ts! >= t0)
            #expect(wire.serverTs != nil)
            #expect(wire.keys.isSubset(of: ["type", "room", "client", "payload", "ts", "server_ts"]), "\(wire)")
            if let room = wire.object["room"] { #expect((room as? String).map { !$0.isEmpty } == true, "\(wire)") }
            if let client = wire.object["client"] { #expect((client as? String).map { !$0.isEmpty } == true, "\(wire)") }
            if !(wire.type == "player_event" && wire.string("action") == "play") {
                #expect(wire.serverTs == wire.ts, "server_ts is now except for a scheduled play: \(wire)")
            }
        }
    }

    static let errorTable: [(ErrorCode, String, String)] = [
        (.authenticationRequired, "AUTHENTICATION_REQUIRED", "Authentication required"),
        (.authenticationFailed, "AUTHENTICATION_FAILED", "Authentication failed"),
        (.authenticationExpired, "AUTHENTICATION_EXPIRED", "Authentication expired"),
        (.authenticationTimeout, "AUTHENTICATION_TIMEOUT", "Authentication timeout"),
        (.protocolVersionUnsupported, "PROTOCOL_VERSION_UNSUPPORTED", "Unsupported protocol version"),
        (.rateLimited, "RATE_LIMITED", "Rate limit exceeded"),
        (.unsupportedMessageFormat, "UNSUPPORTED_MESSAGE_FORMAT", "Only text WebSocket messages are supported"),
        (.invalidJSON, "INVALID_JSON", "Invalid message format"),
        (.unknownMessageType, "UNKNOWN_MESSAGE_TYPE", "Unknown message type"),
        (.roomIDRequired, "ROOM_ID_REQUIRED", "Room ID is required"),
        (.roomNotFound, "ROOM_NOT_FOUND", "Room not found"),
        (.roomFull, "ROOM_FULL", "Room is full"),
        (.notRoomMember, "NOT_ROOM_MEMBER", "Client is not a member of this room"),
        (.notInRoom, "NOT_IN_ROOM", "Client is not in a room"),
        (.hostPermissionRequired, "HOST_PERMISSION_REQUIRED", "Only the room host can control playback"),
        (.invalidPlaybackPayload, "INVALID_PLAYBACK_PAYLOAD", "Invalid playback payload"),
        (.invalidReady, "INVALID_READY", "Ready message requires a room ID"),
        (.invalidChatPayload, "INVALID_CHAT_PAYLOAD", "Chat payload must contain text"),
        (.chatMessageEmpty, "CHAT_MESSAGE_EMPTY", "Chat message cannot be empty"),
        (.chatMessageTooLong, "CHAT_MESSAGE_TOO_LONG", "Chat message too long (max 500 characters)"),
        (.serverShuttingDown, "SERVER_SHUTTING_DOWN", "Server is shutting down"),
        (.resumeFailed, "RESUME_FAILED", "Session cannot be resumed"),
        (.serviceUnavailable, "SERVICE_UNAVAILABLE", "Service temporarily unavailable"),
    ]

    @Test func errorTableCoversEveryCode() {
        #expect(Set(Self.errorTable.map(\.0)) == Set(ErrorCode.allCases))
        #expect(Self.errorTable.count == ErrorCode.allCases.count)
    }

    @Test("error payload has the exact code and message", arguments: errorTable.map { $0.0 })
    func errorWireForm(code: ErrorCode) throws {
        let row = try #require(Self.errorTable.first { $0.0 == code })
        let wire = Wire(ServerMessage(room: "room-9", client: "c", ts: 77, payload: .error(code)))
        #expect(wire.type == "error")
        #expect(wire.keys == ["type", "room", "client", "payload", "ts", "server_ts"])
        #expect(wire.room == "room-9")
        #expect(wire.client == "c")
        #expect(wire.ts == 77)
        #expect(wire.serverTs == 77)
        #expect(wire.payloadKeys == ["code", "message"])
        #expect(wire.string("code") == row.1)
        #expect(wire.string("message") == row.2)
        #expect(code.rawValue == row.1)
        #expect(code.message == row.2)
    }

    @Test func roomStateShowsNullsWhenAbsent() throws {
        let h = Harness()
        h.login("h", name: "Hannah")
        h.createRoom("h")
        let state = try #require(h.last("h", "room_state"))
        #expect(state.payloadKeys == ["name", "host_id", "state", "state_server_ts", "target_server_ts", "participant_count", "media_id"])
        #expect(state.isNull("target_server_ts"))
        #expect(state.isNull("media_id"))
        #expect(state.json.contains(#""target_server_ts":null"#))
        #expect(state.json.contains(#""media_id":null"#))
        #expect(Set((state.payload["state"] as? [String: Any])?.keys.map { $0 } ?? []) == ["position", "play_state"])
    }

    @Test func emptyRoomOrClientIsOmittedOnTheWire() {
        let wire = Wire(ServerMessage(room: "", client: "", ts: 5, payload: .roomClosed(reason: "x")))
        #expect(!wire.keys.contains("room"))
        #expect(!wire.keys.contains("client"))
        #expect(wire.keys == ["type", "payload", "ts", "server_ts"])

        let absent = Wire(ServerMessage(ts: 5, payload: .roomList(RoomList([]))))
        #expect(absent.keys == ["type", "payload", "ts", "server_ts"])
        #expect(absent.payloadArray?.isEmpty == true)
    }

    /// `room_list` is written from its once-encoded payload; the bytes must be the encoder's.
    @Test func aRoomListIsWrittenExactlyAsTheEncoderWritesIt() {
        let names = ["Film night", #"quote " and \ backslash"#, "slash / é 🙂", "\u{0007}bell", String(repeating: "x", count: 100)]
        for count in [0, 1, 5] {
            let rooms = (0..<count).map { RoomSummary(id: "room-\($0)", name: names[$0 % names.count], count: $0 + 1, mediaID: $0 % 2 == 0 ? nil : "0123456789abcdef0123456789abcdef") }
            let message = ServerMessage(ts: 1_732_700_000_123, serverTs: 1_732_700_000_456, payload: .roomList(RoomList(rooms)))
            #expect(message.encodedJSON() == message.encodedJSONByEncoder(), "\(count) rooms")
        }
        // With a room or client (never sent so), the general path is taken.
        let addressed = ServerMessage(room: "r", ts: 1, payload: .roomList(RoomList([])))
        #expect(Wire(addressed).room == "r")
    }

    @Test func serverTsDefaultsToTsAndCanDiffer() {
        let normal = Wire(ServerMessage(ts: 1000, payload: .pong(nil)))
        #expect(normal.ts == 1000)
        #expect(normal.serverTs == 1000)
        #expect(!normal.hasPayload, "an absent payload is omitted, not null")
        let play = Wire(
            ServerMessage(
                room: "r", client: "c", ts: 2000, serverTs: 1500,
                payload: .playerEvent(PlayerEventPayload(action: .play, position: 1.5, playState: .playing, targetServerTs: 3500))))
        #expect(play.ts == 2000)
        #expect(play.serverTs == 1500)
        #expect(play.payloadKeys == ["action", "position", "play_state", "target_server_ts"])
        #expect(play.string("action") == "play")
        #expect(play.number("position") == 1.5)
        #expect(play.string("play_state") == "playing")
        #expect(play.time("target_server_ts") == 3500)
    }

    @Test func serverMessageTypesMatchTheirPayloads() {
        let samples: [(ServerPayload, String)] = [
            (.clientHello(clientID: "c"), "client_hello"),
            (.authSuccess(userName: "u", protocolVersion: nil, features: nil), "auth_success"),
            (.roomList(RoomList([])), "room_list"),
            (.participantList([]), "participant_list"),
            (.participantStatuses([]), "participant_statuses"),
            (.participantsUpdate(count: 1), "participants_update"),
            (.clientLeft(count: 1), "client_left"),
            (.hostChanged(hostID: "a", hostName: "b"), "host_changed"),
            (.roomClosed(reason: "r"), "room_closed"),
            (.stateUpdate(position: 1, playState: .paused), "state_update"),
            (.chatMessage(username: "u", text: "t"), "chat_message"),
            (.pong(nil), "pong"),
            (.error(.roomFull), "error"),
        ]
        for (payload, type) in samples {
            #expect(Wire(ServerMessage(ts: 1, payload: payload)).type == type)
        }
    }
}
