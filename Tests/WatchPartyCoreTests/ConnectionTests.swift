import Foundation
import Testing

@testable import WatchPartyCore

/// Connection start and `auth` (PROTOCOL.md §4), open mode and JWT mode.
@Suite struct OpenModeConnectionTests {
    @Test func connectSendsHelloThenRoomList() throws {
        let h = Harness()
        h.connect("c-1")
        #expect(h.types("c-1") == ["client_hello", "room_list"])
        let hello = h.inbox("c-1")[0]
        #expect(hello.client == "c-1")
        #expect(hello.room == nil)
        #expect(hello.payloadKeys == ["client_id", "resume_token"])
        #expect(hello.string("client_id") == "c-1")
        #expect(hello.string("resume_token") == "token-1")
        #expect(hello.ts == t0)
        #expect(hello.serverTs == t0)
        let list = h.inbox("c-1")[1]
        #expect(list.keys == ["type", "payload", "ts", "server_ts"])
        #expect(list.payloadArray?.isEmpty == true)

        let session = try #require(h.party.sessions["c-1"])
        #expect(session.authenticated)
        #expect(session.userID == "anonymous")
        #expect(session.name == "Anonymous")
        #expect(session.roomID == nil)
    }

    @Test func connectListsExistingRooms() throws {
        let h = Harness()
        h.room()
        h.connect("late")
        let list = try #require(h.last("late", "room_list"))
        #expect(list.roomListIDs == ["room-1"])
    }

    @Test func authSetsSanitisedNameAndEchoesVersionAndSupportedFeatures() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.send(
            "c", "auth",
            payload: [
                "user_name": "  Zo\u{0001}e\u{007F} ", "user_id": " u-42 ", "protocol_version": 1,
                "features": ["participant_status", "telepathy", 7, "host_transfer", "host_transfer"],
                "token": "ignored-in-open-mode",
            ])
        let reply = try #require(h.only("c"), "open-mode auth is answered with auth_success only (no second room_list)")
        #expect(reply.type == "auth_success")
        #expect(reply.client == "c")
        #expect(reply.payloadKeys == ["user_name", "protocol_version", "features"])
        #expect(reply.string("user_name") == "Zoe")
        #expect(reply.int("protocol_version") == 1)
        #expect(reply.hasIntegerLiteral("protocol_version"))
        let features = try #require(reply.payload["features"] as? [String])
        #expect(Set(features) == ["host_transfer", "participant_status"])
        #expect(features.count == 2)

        let session = try #require(h.party.sessions["c"])
        #expect(session.name == "Zoe")
        #expect(session.userID == "u-42")
        #expect(session.features == [.hostTransfer, .participantStatus])
        #expect(h.closes.isEmpty)
    }

    @Test func authWithoutVersionOrFeaturesEchoesNeither() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["user_name": "Ann"])
        let reply = try #require(h.only("c"))
        #expect(reply.type == "auth_success")
        #expect(reply.payloadKeys == ["user_name"])
        #expect(reply.string("user_name") == "Ann")
    }

    @Test func authWithUnsupportedFeaturesOnlyEchoesEmptySubset() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["features": ["telepathy"]])
        let reply = try #require(h.only("c"))
        #expect((reply.payload["features"] as? [Any])?.isEmpty == true)
        #expect(reply.string("user_name") == "Anonymous", "no user_name keeps the default name")
    }

    @Test func namesAreCutTo100Characters() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["user_name": String(repeating: "é", count: 150)])
        let reply = try #require(h.only("c"))
        #expect(reply.string("user_name") == String(repeating: "é", count: 100))
    }

    @Test func blankNameMeansNotGiven() throws {
        let h = Harness()
        h.connect("c")
        h.send("c", "auth", payload: ["user_name": "Ann"])
        h.clear()
        h.send("c", "auth", payload: ["user_name": " \u{0003}\t "])
        #expect(h.only("c")?.string("user_name") == "Ann")
    }

    @Test("protocol_version other than 1 is refused and closed", arguments: ["2", "0", "-1", "1.5", "\"1\"", "[1]"])
    func unsupportedProtocolVersion(version: String) throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.sendText("c", #"{"type":"auth","payload":{"user_name":"Ann","protocol_version":\#(version)},"ts":1}"#)
        let reply = try #require(h.only("c"))
        #expect(reply.errorCode == "PROTOCOL_VERSION_UNSUPPORTED")
        #expect(reply.string("message") == "Unsupported protocol version")
        #expect(reply.client == "c")
        #expect(h.closes.count == 1)
        #expect(h.closes.first?.client == "c")
        #expect(h.closes.first?.code == 4006)
        #expect(h.party.sessions["c"]?.name == "Anonymous", "a refused auth changes nothing")
    }
}

@Suite struct JWTModeConnectionTests {
    func harness() -> Harness {
        let h = Harness(verifier: StubVerifier())
        return h
    }

    @Test func connectSendsOnlyHello() throws {
        let h = harness()
        h.connect("c")
        #expect(h.types("c") == ["client_hello"])
        #expect(h.party.sessions["c"]?.authenticated == false)
        #expect(h.party.authEnabled)
    }

    @Test func successfulAuthSendsAuthSuccessThenRoomList() throws {
        let h = harness()
        h.connect("h")
        h.send("h", "auth", payload: ["token": "good-bob"])
        h.createRoom("h")
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["token": "good-alice", "protocol_version": 1, "features": ["host_transfer", "x"], "user_name": "Mallory"])
        #expect(h.types("c") == ["auth_success", "room_list"])
        let success = h.inbox("c")[0]
        #expect(success.client == "c")
        #expect(success.string("user_name") == "Alice", "in JWT mode the name comes from the token")
        #expect(success.int("protocol_version") == 1)
        #expect(success.payload["features"] as? [String] == ["host_transfer"])
        #expect(h.inbox("c")[1].roomListIDs == ["room-1"])
        let session = try #require(h.party.sessions["c"])
        #expect(session.authenticated)
        #expect(session.userID == "u-alice")
        #expect(session.name == "Alice")
        #expect(session.features == [.hostTransfer])
    }

    @Test func tokenNameIsSanitised() throws {
        let h = harness()
        h.connect("c")
        h.send("c", "auth", payload: ["token": "good-controls"])
        #expect(h.last("c", "auth_success")?.string("user_name") == "Carol")
    }

    @Test func authWithoutTokenIsAuthenticationRequired() throws {
        let h = harness()
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["user_name": "Ann"])
        h.send("c", "auth", payload: ["token": ""])
        h.send("c", "auth")
        #expect(h.errorCodes("c") == ["AUTHENTICATION_REQUIRED", "AUTHENTICATION_REQUIRED", "AUTHENTICATION_REQUIRED"])
        #expect(h.inbox("c").allSatisfy { $0.string("message") == "Authentication required" && $0.client == "c" })
        #expect(h.closes.isEmpty)
        #expect(h.party.sessions["c"]?.authenticated == false)
    }

    @Test func badTokenIsAuthenticationFailedAndMayBeRetried() throws {
        let h = harness()
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["token": "forged"])
        let reply = try #require(h.only("c"))
        #expect(reply.errorCode == "AUTHENTICATION_FAILED")
        #expect(reply.string("message") == "Authentication failed")
        #expect(h.closes.isEmpty)
        #expect(h.party.sessions["c"]?.authenticated == false)

        h.clear()
        h.send("c", "auth", payload: ["token": "good-alice"])
        #expect(h.types("c") == ["auth_success", "room_list"])
    }

    @Test func failedReauthKeepsTheSession() throws {
        let h = harness()
        h.connect("c")
        h.send("c", "auth", payload: ["token": "good-alice"])
        h.clear()
        h.send("c", "auth", payload: ["token": "forged"])
        #expect(h.errorCodes("c") == ["AUTHENTICATION_FAILED"])
        #expect(h.party.sessions["c"]?.authenticated == true)
        #expect(h.party.sessions["c"]?.name == "Alice")
    }

    @Test func reauthInsideARoomSendsNoRoomList() throws {
        let h = harness()
        h.connect("c")
        h.send("c", "auth", payload: ["token": "good-alice"])
        h.createRoom("c")
        h.clear()
        h.send("c", "auth", payload: ["token": "good-alice"])
        #expect(h.types("c") == ["auth_success"])
    }

    @Test func protocolVersionTwoIsRefusedInJWTModeToo() throws {
        let h = harness()
        h.connect("c")
        h.clear()
        h.send("c", "auth", payload: ["token": "good-alice", "protocol_version": 2])
        #expect(h.errorCodes("c") == ["PROTOCOL_VERSION_UNSUPPORTED"])
        #expect(h.closes == [CloseRequest(client: "c", cause: .protocolVersionUnsupported)])
        #expect(h.closes.first?.code == 4006)
        #expect(h.closes.first?.reason == "Unsupported protocol version")
        #expect(h.party.sessions["c"]?.authenticated == false)
    }

    @Test("before auth only auth, ping and client_log are served", arguments: [
        "list_rooms", "create_room", "join_room", "leave_room", "close_room", "ready", "player_event", "state_update", "chat_message",
        "participant_status",
    ])
    func preAuthRefusesRoomMessages(type: String) throws {
        let h = harness()
        h.connect("c")
        h.clear()
        h.send("c", type, room: "room-1", payload: ["action": "pause", "text": "hi", "status": "paused"])
        let reply = try #require(h.only("c"))
        #expect(reply.errorCode == "AUTHENTICATION_REQUIRED")
        #expect(reply.client == "c")
        #expect(reply.room == "room-1")
        #expect(h.party.rooms.isEmpty)
        #expect(h.closes.isEmpty)
    }

    @Test func joinWithoutRoomBeforeAuthIsAuthenticationRequiredFirst() throws {
        let h = harness()
        h.connect("c")
        h.clear()
        h.send("c", "join_room")
        #expect(h.errorCodes("c") == ["AUTHENTICATION_REQUIRED"])
    }

    @Test func pingAndClientLogWorkBeforeAuth() throws {
        let h = harness()
        h.connect("c")
        h.clear()
        h.send("c", "ping", payload: ["client_ts": 12])
        h.send("c", "client_log", payload: ["category": "sync", "message": "buffered line"])
        #expect(h.types("c") == ["pong"])
        #expect(h.events == [.clientLog(client: "c", category: "sync", message: "buffered line")])
    }

    @Test func roomListBroadcastsSkipUnauthenticatedConnections() throws {
        let h = harness()
        h.connect("a")
        h.send("a", "auth", payload: ["token": "good-alice"])
        h.connect("b")
        h.send("b", "auth", payload: ["token": "good-bob"])
        h.connect("u")
        h.clear()
        h.createRoom("a")
        #expect(h.inbox("u").isEmpty)
        #expect(h.types("b") == ["room_list"])
        h.clear()
        h.send("a", "leave_room")
        #expect(h.inbox("u").isEmpty)
        #expect(h.types("b") == ["room_list"])
        #expect(h.types("a") == ["room_list"])
    }
}
