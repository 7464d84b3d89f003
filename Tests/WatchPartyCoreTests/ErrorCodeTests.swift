import Foundation
import Testing

@testable import WatchPartyCore

/// Every error code has a scenario that produces it (PROTOCOL.md §3).
@Suite struct ErrorCodeTests {
    /// Sets up a harness and makes client "x" receive `code`. Exhaustive: a new code needs a scenario.
    static func provoke(_ code: ErrorCode) -> Harness {
        switch code {
        case .authenticationRequired:
            let h = Harness(verifier: StubVerifier())
            h.connect("x")
            h.send("x", "list_rooms")
            return h
        case .authenticationFailed:
            let h = Harness(verifier: StubVerifier())
            h.connect("x")
            h.send("x", "auth", payload: ["token": "tampered"])
            return h
        case .authenticationExpired:
            var verifier = StubVerifier()
            verifier.lifetimeMs = 5_000
            let h = Harness(verifier: verifier)
            h.connect("x")
            h.send("x", "auth", payload: ["token": "good-alice"])
            h.advance(by: 5_000)
            return h
        case .authenticationTimeout:
            let h = Harness(verifier: StubVerifier())
            h.connect("x")
            h.advance(by: h.party.rules.authTimeoutMs)
            return h
        case .rateLimited:
            let h = Harness()
            h.connect("x")
            for _ in 0...h.party.rules.rateLimitPerSecond {
                h.send("x", "ping")
            }
            return h
        case .unsupportedMessageFormat:
            let h = Harness()
            h.connect("x")
            h.receiveBinary("x")
            return h
        case .protocolVersionUnsupported:
            let h = Harness()
            h.connect("x")
            h.send("x", "auth", payload: ["protocol_version": 2])
            return h
        case .invalidJSON:
            let h = Harness()
            h.connect("x")
            h.sendText("x", "{")
            return h
        case .unknownMessageType:
            let h = Harness()
            h.connect("x")
            h.sendText("x", #"{"type":"teleport","ts":1}"#)
            return h
        case .roomIDRequired:
            let h = Harness()
            h.connect("x")
            h.send("x", "join_room")
            return h
        case .roomNotFound:
            let h = Harness()
            h.connect("x")
            h.send("x", "join_room", room: "room-404")
            return h
        case .roomFull:
            var rules = PartyRules()
            rules.maxClientsPerRoom = 1
            let h = Harness(rules: rules)
            let room = h.room()
            h.connect("x")
            h.send("x", "join_room", room: room)
            return h
        case .notRoomMember:
            let h = Harness()
            let room = h.room()
            h.connect("x")
            h.send("x", "chat_message", room: room, payload: ["text": "hi"])
            return h
        case .notInRoom:
            let h = Harness()
            h.connect("x")
            h.send("x", "close_room")
            return h
        case .hostPermissionRequired:
            let h = Harness()
            let room = h.room(guests: ["x"])
            h.send("x", "player_event", room: room, payload: ["action": "seek", "position": 1])
            return h
        case .invalidPlaybackPayload:
            let h = Harness()
            let room = h.room(host: "x")
            h.send("x", "player_event", room: room, payload: ["action": "jump"])
            return h
        case .invalidReady:
            let h = Harness()
            h.room(guests: ["x"], ready: false)
            h.send("x", "ready")
            return h
        case .invalidChatPayload:
            let h = Harness()
            let room = h.room(guests: ["x"])
            h.send("x", "chat_message", room: room, payload: ["message": "hi"])
            return h
        case .chatMessageEmpty:
            let h = Harness()
            let room = h.room(guests: ["x"])
            h.send("x", "chat_message", room: room, payload: ["text": "   "])
            return h
        case .chatMessageTooLong:
            let h = Harness()
            let room = h.room(guests: ["x"])
            h.send("x", "chat_message", room: room, payload: ["text": String(repeating: "ß", count: 251)])
            return h
        case .serverShuttingDown:
            let h = Harness()
            h.connect("x")
            h.party.beginDrain()
            h.send("x", "create_room")
            return h
        case .resumeFailed:
            let h = Harness()
            h.connect("x")
            h.send("x", "resume", payload: ["token": "token-999"])
            return h
        case .serviceUnavailable:
            // The shell's refusal when the shared store cannot serve a message (PROTOCOL.md §14).
            let h = Harness()
            h.connect("x")
            h.reject("x", .serviceUnavailable)
            return h
        }
    }

    @Test("every code can be produced", arguments: ErrorCode.allCases)
    func produce(code: ErrorCode) throws {
        let h = Self.provoke(code)
        let error = try #require(h.inbox("x").last)
        #expect(error.type == "error")
        #expect(error.client == "x")
        #expect(error.payloadKeys == ["code", "message"])
        #expect(error.string("code") == code.rawValue)
        #expect(error.string("message") == code.message)
        #expect(h.events.last == .errorSent(code))
    }

    /// The codes that end the session, with the close each one comes with (docs/protocol.md § Close codes).
    static let fatal: [ErrorCode: (code: UInt16, reason: String)] = [
        .rateLimited: (4002, "Rate limit exceeded"),
        .authenticationTimeout: (4004, "Authentication timeout"),
        .authenticationExpired: (4005, "Authentication expired"),
        .protocolVersionUnsupported: (4006, "Unsupported protocol version"),
    ]

    @Test("only the fatal codes close the connection, each with its own code", arguments: ErrorCode.allCases)
    func closes(code: ErrorCode) throws {
        let h = Self.provoke(code)
        if let expected = Self.fatal[code] {
            #expect(h.closes.map(\.client) == ["x"])
            #expect(h.closes.map(\.code) == [expected.code])
            #expect(h.closes.map(\.reason) == [expected.reason])
        } else {
            #expect(h.closes.isEmpty)
        }
    }

    @Test func rejectSendsOnlyTheError() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.reject("g", .unsupportedMessageFormat)
        let error = try #require(h.only("g"))
        #expect(error.errorCode == "UNSUPPORTED_MESSAGE_FORMAT")
        #expect(error.string("message") == "Only text WebSocket messages are supported")
        #expect(error.room == nil)
        #expect(error.ts == t0)
        #expect(h.inbox("h").isEmpty)
        #expect(h.party.rooms[room]?.members == ["h", "g"])
    }

    @Test func errorsEchoTheAddressedRoom() throws {
        let h = Harness()
        h.connect("x")
        h.clear()
        h.send("x", "join_room", room: "room-404")
        h.send("x", "leave_room", room: "room-404")
        #expect(h.inbox("x").map(\.room) == ["room-404", "room-404"])
    }
}
