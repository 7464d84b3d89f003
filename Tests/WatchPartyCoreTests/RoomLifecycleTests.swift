import Foundation
import Testing

@testable import WatchPartyCore

/// create, join, leave, close and the departure rules (PROTOCOL.md §5).
@Suite struct RoomLifecycleTests {
    static func smallRooms(_ max: Int) -> PartyRules {
        var rules = PartyRules()
        rules.maxClientsPerRoom = max
        return rules
    }

    // MARK: create_room

    @Test func createRepliesToHostThenBroadcastsToLobby() throws {
        let h = Harness()
        h.login("h", name: "Hannah")
        h.connect("l")
        h.clear()
        h.now = t0 + 5
        h.send("h", "create_room")

        #expect(h.types("h") == ["room_state", "participant_list", "participant_statuses"])
        #expect(h.types("l") == ["room_list"])
        let outcome = h.lastOutcome
        #expect(outcome.deliveries.map(\.message.type) == ["room_state", "participant_list", "participant_statuses", "room_list"])
        #expect(outcome.deliveries.map(\.recipients) == [["h"], ["h"], ["h"], ["l"]])
        #expect(outcome.events.contains(.roomCreated(room: "room-1", host: "h")))

        let state = h.inbox("h")[0]
        #expect(state.room == "room-1")
        #expect(state.client == nil)
        #expect(state.serverTs == t0 + 5)
        #expect(state.string("name") == "Hannah's room")
        #expect(state.string("host_id") == "h")
        #expect(state.statePosition == 0)
        #expect(state.statePlayState == "paused")
        #expect(state.time("state_server_ts") == t0 + 5)
        #expect(state.isNull("target_server_ts"))
        #expect(state.int("participant_count") == 1)
        #expect(state.isNull("media_id"))

        let list = h.inbox("h")[1]
        #expect(list.room == "room-1")
        #expect(list.payloadKeys == ["participants"])
        #expect(list.participants.map(\.name) == ["Hannah"])
        #expect(list.participants.map(\.isHost) == [true])
        #expect(list.json.contains(#"{"name":"Hannah","is_host":true}"#) || list.json.contains(#"{"is_host":true,"name":"Hannah"}"#))
        let statuses = h.inbox("h")[2]
        #expect(statuses.room == "room-1")
        #expect(statuses.payloadKeys == ["statuses"])
        #expect(statuses.statuses == [nil])
        #expect(statuses.json.contains(#""statuses":[null]"#))

        let lobby = h.inbox("l")[0]
        #expect(lobby.roomList.count == 1)
        let entry = lobby.roomList[0]
        #expect(Set(entry.keys) == ["id", "name", "count", "media_id"])
        #expect(entry["id"] as? String == "room-1")
        #expect(entry["name"] as? String == "Hannah's room")
        #expect(entry["count"] as? Int == 1)
        #expect(entry["media_id"] is NSNull)

        let room = try #require(h.party.rooms["room-1"])
        #expect(room.hostID == "h")
        #expect(room.members == ["h"])
        #expect(room.ready == ["h"])
        #expect(room.playback.playState == .paused)
        #expect(h.party.sessions["h"]?.roomID == "room-1")
    }

    @Test func createUsesPayloadNameMediaAndStartPosition() throws {
        let h = Harness()
        h.login("h", name: "Hannah")
        h.connect("l")
        h.clear()
        let media = "0123456789ABCDEFabcdef0123456789"
        h.send("h", "create_room", payload: ["name": "  Movie\u{0007} night ", "media_id": media, "start_pos": 42.5, "user_name": "Hank"])
        let state = try #require(h.last("h", "room_state"))
        #expect(state.string("name") == "Movie night")
        #expect(state.string("media_id") == media)
        #expect(state.statePosition == 42.5)
        #expect(h.last("h", "participant_list")?.participants.map(\.name) == ["Hank"], "create_room's user_name renames the host")
        let entry = try #require(h.last("l", "room_list")?.roomList.first)
        #expect(entry["media_id"] as? String == media)
        #expect(entry["name"] as? String == "Movie night")
    }

    @Test func defaultNameUsesTheCreateRoomUserName() throws {
        let h = Harness()
        h.connect("h")
        h.send("h", "create_room", payload: ["user_name": " Zed ", "name": " \u{0001} "])
        #expect(h.last("h", "room_state")?.string("name") == "Zed's room")
    }

    @Test func defaultNameForAnAnonymousHost() throws {
        let h = Harness()
        h.connect("h")
        h.send("h", "create_room")
        #expect(h.last("h", "room_state")?.string("name") == "Anonymous's room")
    }

    static let badMediaIDs: [String] = [
        #""0123456789abcdef0123456789abcde""#,  // 31
        #""0123456789abcdef0123456789abcdef0""#,  // 33
        #""0123456789abcdef0123456789abcdeg""#,  // non-hex
        #""0123456789abcdef-123456789abcdef""#,
        #""""#,
        "12345",
        "null",
        #"["0123456789abcdef0123456789abcdef"]"#,
    ]

    @Test("media_id is null unless 32 hex characters", arguments: badMediaIDs)
    func badMediaID(json: String) throws {
        let h = Harness()
        h.connect("h")
        h.sendText("h", #"{"type":"create_room","payload":{"media_id":\#(json)},"ts":1}"#)
        let state = try #require(h.last("h", "room_state"))
        #expect(state.isNull("media_id"))
        #expect(h.party.rooms["room-1"]?.mediaID == nil)
    }

    @Test("invalid start_pos becomes 0", arguments: ["-1", "\"10\"", "86400.5", "1e9", "null", "true", "{}"])
    func badStartPosition(json: String) throws {
        let h = Harness()
        h.connect("h")
        h.sendText("h", #"{"type":"create_room","payload":{"start_pos":\#(json)},"ts":1}"#)
        let state = try #require(h.last("h", "room_state"))
        #expect(state.statePosition == 0)
    }

    @Test func createWithoutPayloadWorks() throws {
        let h = Harness()
        h.connect("h")
        h.clear()
        h.sendText("h", #"{"type":"create_room","ts":1}"#)
        #expect(h.types("h") == ["room_state", "participant_list", "participant_statuses"])
    }

    @Test func createWhileHostingClosesTheOldRoomForTheOthers() throws {
        let h = Harness()
        let old = h.room(guests: ["g1", "g2"], guestFeatures: ["g1": ["host_transfer"]])
        h.connect("l")
        h.clear()
        h.send("h", "create_room")

        for guest in ["g1", "g2"] {
            #expect(h.types(guest) == ["room_closed", "room_list"])
            let closed = h.inbox(guest)[0]
            #expect(closed.room == old)
            #expect(closed.payloadKeys == ["reason"])
            #expect(closed.string("reason") == "Host started a new room")
            #expect(h.party.sessions[guest]?.roomID == nil)
        }
        #expect(h.types("h") == ["room_state", "participant_list", "participant_statuses", "room_list"])
        #expect(h.inbox("h")[0].room == "room-2")
        #expect(h.inbox("h")[3].roomListIDs == ["room-2"])
        #expect(h.types("l") == ["room_list"])
        #expect(h.inbox("l")[0].roomListIDs == ["room-2"])
        #expect(h.party.rooms[old] == nil)
        #expect(h.events.contains(.roomClosed(room: old, reason: .hostStartedNewRoom)))
    }

    @Test func createAloneInOwnRoomJustReplacesIt() throws {
        let h = Harness()
        h.room()
        h.send("h", "create_room")
        #expect(h.party.rooms.keys.sorted() == ["room-2"])
        #expect(h.types("h") == ["room_state", "participant_list", "participant_statuses", "room_list"])
    }

    @Test func createWhileGuestLeavesTheOldRoomFirst() throws {
        let h = Harness()
        let old = h.room(guests: ["g"])
        h.send("g", "create_room")
        #expect(h.types("h") == ["client_left", "participant_list", "participant_statuses"])
        #expect(h.inbox("h")[0].client == "g")
        #expect(h.inbox("h")[0].int("participant_count") == 1)
        #expect(h.party.rooms[old]?.members == ["h"])
        #expect(h.party.rooms["room-2"]?.hostID == "g")
        #expect(h.types("g") == ["room_state", "participant_list", "participant_statuses", "room_list"])
    }

    // MARK: join_room

    @Test func joinOrder() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.login("g2", name: "Gwen")
        h.connect("l")
        h.clear()
        h.now = t0 + 1234
        h.send("g2", "join_room", room: room)

        let outcome = h.lastOutcome
        #expect(outcome.deliveries.map(\.message.type) == ["room_state", "participants_update", "participant_list", "participant_statuses", "room_list"])
        #expect(outcome.deliveries.map(\.recipients) == [["g2"], ["h", "g1"], ["h", "g1", "g2"], ["h", "g1", "g2"], ["l"]])
        #expect(outcome.events.contains(.memberJoined(room: room, client: "g2", members: 3)))

        #expect(h.types("g2") == ["room_state", "participant_list", "participant_statuses"])
        #expect(h.types("h") == ["participants_update", "participant_list", "participant_statuses"])
        #expect(h.types("g1") == ["participants_update", "participant_list", "participant_statuses"])
        #expect(h.types("l") == ["room_list"])

        let state = h.inbox("g2")[0]
        #expect(state.room == room)
        #expect(state.string("host_id") == "h")
        #expect(state.int("participant_count") == 3)
        #expect(state.serverTs == t0 + 1234)
        #expect(state.time("state_server_ts") == t0 + 1234)

        let update = h.inbox("h")[0]
        #expect(update.room == room)
        #expect(update.payloadKeys == ["participant_count"])
        #expect(update.int("participant_count") == 3)

        let list = h.inbox("g1")[1]
        #expect(list.participants.map(\.name) == ["Hannah", "G1", "Gwen"])
        #expect(list.participants.map(\.isHost) == [true, false, false])
        #expect(h.inbox("g1")[2].statuses == [nil, nil, nil])

        #expect(h.inbox("l")[0].roomList.first?["count"] as? Int == 3)
        let stored = try #require(h.party.rooms[room])
        #expect(stored.members == ["h", "g1", "g2"])
        #expect(stored.ready == ["h", "g1"], "a joiner is not ready until it says so")
    }

    @Test func joinPayloadUserNameRenames() throws {
        let h = Harness()
        let room = h.room()
        h.connect("g")
        h.send("g", "join_room", room: room, payload: ["user_name": " Gina\u{0000} "])
        #expect(h.last("h", "participant_list")?.participants.map(\.name) == ["Hannah", "Gina"])
    }

    @Test func joinErrorsInOrder() throws {
        let h = Harness(rules: Self.smallRooms(2))
        let room = h.room(guests: ["g"])
        h.connect("x")
        h.clear()
        h.send("x", "join_room")
        h.send("x", "join_room", room: "room-404")
        h.send("x", "join_room", room: room)
        #expect(h.errorCodes("x") == ["ROOM_ID_REQUIRED", "ROOM_NOT_FOUND", "ROOM_FULL"])
        let messages = h.inbox("x").map { $0.string("message") }
        #expect(messages == ["Room ID is required", "Room not found", "Room is full"])
        #expect(h.inbox("x")[0].room == nil)
        #expect(h.inbox("x")[1].room == "room-404")
        #expect(h.inbox("x")[2].room == room)
        #expect(h.inbox("x").allSatisfy { $0.client == "x" })
        #expect(h.inbox("h").isEmpty)
        #expect(h.party.rooms[room]?.members == ["h", "g"])
        #expect(h.party.sessions["x"]?.roomID == nil)
    }

    @Test func fullRoomStillLetsAMemberRejoin() throws {
        let h = Harness(rules: Self.smallRooms(2))
        let room = h.room(guests: ["g"])
        h.send("g", "join_room", room: room)
        #expect(h.types("g") == ["room_state"])
    }

    @Test func defaultRoomLimitIsTwenty() throws {
        let h = Harness()
        let room = h.room(guests: (1...19).map { "g\($0)" })
        #expect(h.party.rooms[room]?.members.count == 20)
        h.connect("x")
        h.clear()
        h.send("x", "join_room", room: room)
        #expect(h.errorCodes("x") == ["ROOM_FULL"])
    }

    @Test func rejoiningOwnRoomOnlyResendsRoomState() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.connect("l")
        h.clear()
        h.now += 10
        h.send("g1", "join_room", room: room, payload: ["user_name": "Renamed"])
        let state = try #require(h.only("g1"))
        #expect(state.type == "room_state")
        #expect(state.room == room)
        #expect(state.int("participant_count") == 3)
        #expect(state.time("state_server_ts") == h.now)
        #expect(h.inbox("h").isEmpty)
        #expect(h.inbox("g2").isEmpty)
        #expect(h.inbox("l").isEmpty)
        #expect(h.party.rooms[room]?.members == ["h", "g1", "g2"])
        #expect(h.party.rooms[room]?.ready.contains("g1") == true, "re-join does not reset readiness")
        #expect(h.party.sessions["g1"]?.name == "G1", "re-join changes nothing else")
    }

    @Test func hostRejoiningOwnRoomOnlyGetsRoomState() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.send("h", "join_room", room: room)
        #expect(h.types("h") == ["room_state"])
        #expect(h.inbox("g").isEmpty)
    }

    @Test func joinWhileInAnotherRoomDepartsFirst() throws {
        let h = Harness()
        let first = h.room(host: "h1", guests: ["g"])
        h.login("h2", name: "Hugo")
        let second = h.createRoom("h2")
        h.connect("l")
        h.clear()
        h.send("g", "join_room", room: second)

        #expect(h.types("h1") == ["client_left", "participant_list", "participant_statuses"])
        #expect(h.inbox("h1")[0].room == first)
        #expect(h.inbox("h1")[0].client == "g")
        #expect(h.types("h2") == ["participants_update", "participant_list", "participant_statuses"])
        #expect(h.types("g") == ["room_state", "participant_list", "participant_statuses", "room_list"])
        #expect(h.inbox("g")[0].room == second)
        #expect(h.types("l") == ["room_list"])
        #expect(h.party.rooms[first]?.members == ["h1"])
        #expect(h.party.rooms[second]?.members == ["h2", "g"])
        #expect(h.party.sessions["g"]?.roomID == second)
        let types = h.lastOutcome.deliveries.map(\.message.type)
        #expect(types.firstIndex(of: "client_left")! < types.firstIndex(of: "room_state")!, "the departure comes first")
    }

    @Test func hostJoiningAnotherRoomLeavesItsRoomAsWithLeave() throws {
        let h = Harness()
        let first = h.room(host: "h1", guests: ["g"])
        h.login("h2", name: "Hugo")
        let second = h.createRoom("h2")
        h.clear()
        h.send("h1", "join_room", room: second)
        #expect(h.types("g") == ["room_closed", "room_list"])
        #expect(h.inbox("g")[0].string("reason") == "Host left the room")
        #expect(h.party.rooms[first] == nil)
        #expect(h.party.rooms[second]?.members == ["h2", "h1"])
    }

    // MARK: leave_room

    @Test func leaveOutsideARoomIsNotInRoom() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.send("c", "leave_room")
        let reply = try #require(h.only("c"))
        #expect(reply.errorCode == "NOT_IN_ROOM")
        #expect(reply.string("message") == "Client is not in a room")
    }

    @Test func guestLeave() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.send("g2", "participant_status", payload: ["status": "paused"])
        h.connect("l")
        h.clear()
        h.send("g1", "leave_room")

        #expect(h.types("g1") == ["room_list"], "the leaver gets no reply besides the lobby list")
        #expect(h.inbox("g1")[0].roomList.first?["count"] as? Int == 2)
        for member in ["h", "g2"] {
            #expect(h.types(member) == ["client_left", "participant_list", "participant_statuses"])
            let left = h.inbox(member)[0]
            #expect(left.room == room)
            #expect(left.client == "g1")
            #expect(left.payloadKeys == ["participant_count"])
            #expect(left.int("participant_count") == 2)
            #expect(h.inbox(member)[1].participants.map(\.name) == ["Hannah", "G2"])
            #expect(h.inbox(member)[2].statuses == [nil, "paused"])
        }
        #expect(h.types("l") == ["room_list"])
        let stored = try #require(h.party.rooms[room])
        #expect(stored.members == ["h", "g2"])
        #expect(!stored.ready.contains("g1"))
        #expect(h.party.sessions["g1"]?.roomID == nil)
        #expect(h.events.contains(.memberLeft(room: room, client: "g1", members: 2)))
    }

    @Test func hostLeaveWithoutTransferClosesTheRoom() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], guestFeatures: ["g1": ["participant_status"]])
        h.connect("l")
        h.clear()
        h.send("h", "leave_room")
        for guest in ["g1", "g2"] {
            #expect(h.types(guest) == ["room_closed", "room_list"])
            #expect(h.inbox(guest)[0].room == room)
            #expect(h.inbox(guest)[0].string("reason") == "Host left the room")
            #expect(h.inbox(guest)[1].roomList.isEmpty)
            #expect(h.party.sessions[guest]?.roomID == nil)
        }
        #expect(h.types("h") == ["room_list"])
        #expect(h.types("l") == ["room_list"])
        #expect(h.party.rooms.isEmpty)
        #expect(h.events.contains(.roomClosed(room: room, reason: .hostLeft)))
    }

    @Test func hostLeaveWithTransferPromotesFirstCapableMemberInJoinOrder() throws {
        let h = Harness()
        let room = h.room(
            guests: ["g1", "g2", "g3"],
            guestFeatures: ["g1": ["participant_status"], "g2": ["host_transfer"], "g3": ["host_transfer", "participant_status"]])
        h.send("g3", "participant_status", payload: ["status": "in_sync"])
        h.connect("l")
        h.clear()
        h.send("h", "leave_room")

        for member in ["g1", "g2", "g3"] {
            #expect(h.types(member) == ["client_left", "host_changed", "participant_list", "participant_statuses"], "\(member)")
            let left = h.inbox(member)[0]
            #expect(left.client == "h")
            #expect(left.int("participant_count") == 3)
            let changed = h.inbox(member)[1]
            #expect(changed.room == room)
            #expect(changed.payloadKeys == ["host_id", "host_name"])
            #expect(changed.string("host_id") == "g2")
            #expect(changed.string("host_name") == "G2")
            #expect(h.inbox(member)[2].participants.map(\.name) == ["G1", "G2", "G3"])
            #expect(h.inbox(member)[2].participants.map(\.isHost) == [false, true, false])
            #expect(h.inbox(member)[3].statuses == [nil, nil, "in_sync"])
        }
        #expect(h.types("h") == ["room_list"])
        #expect(h.types("l") == ["room_list"])
        #expect(h.party.rooms[room]?.hostID == "g2")
        #expect(h.events.contains(.hostChanged(room: room, host: "g2")))

        // The new host controls playback; the old one is gone.
        h.clear()
        h.send("g2", "player_event", room: room, payload: ["action": "seek", "position": 5])
        #expect(h.types("g1") == ["player_event"])
        h.send("g2", "close_room")
        #expect(h.last("g1", "room_closed")?.string("reason") == "Host closed the room")
    }

    @Test func soleMemberLeavingDeletesTheRoom() throws {
        let h = Harness()
        let room = h.room()
        h.connect("l")
        h.clear()
        h.send("h", "leave_room")
        #expect(h.party.rooms.isEmpty)
        #expect(h.types("h") == ["room_list"])
        #expect(h.inbox("l").first?.roomList.isEmpty == true)
        #expect(h.events.contains(.roomClosed(room: room, reason: .empty)))
        #expect(h.lastOutcome.deliveries.allSatisfy { $0.message.type == "room_list" }, "nobody is told about an empty room")
    }

    @Test func lastMemberLeavingDeletesTheRoom() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], hostFeatures: ["host_transfer"], guestFeatures: ["g": ["host_transfer"]])
        h.send("h", "leave_room")
        #expect(h.party.rooms[room]?.hostID == "g")
        h.clear()
        h.send("g", "leave_room")
        #expect(h.party.rooms.isEmpty)
        #expect(h.events.contains(.roomClosed(room: room, reason: .empty)))
    }

    // MARK: close_room

    @Test func closeRoomErrors() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.connect("l")
        h.clear()
        h.send("l", "close_room")
        h.send("g", "close_room", room: room)
        #expect(h.errorCodes("l") == ["NOT_IN_ROOM"])
        #expect(h.errorCodes("g") == ["HOST_PERMISSION_REQUIRED"])
        #expect(h.last("g", "error")?.string("message") == "Only the room host can control playback")
        #expect(h.party.rooms[room] != nil)
        #expect(h.inbox("h").isEmpty)
    }

    @Test func hostClosesTheRoomForEveryone() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.connect("l")
        h.clear()
        h.send("h", "close_room", room: room)
        for member in ["h", "g1", "g2"] {
            #expect(h.types(member) == ["room_closed", "room_list"], "\(member)")
            #expect(h.inbox(member)[0].room == room)
            #expect(h.inbox(member)[0].string("reason") == "Host closed the room")
            #expect(h.party.sessions[member]?.roomID == nil)
        }
        #expect(h.types("l") == ["room_list"])
        #expect(h.party.rooms.isEmpty)
        #expect(h.events.contains(.roomClosed(room: room, reason: .hostClosed)))
        let closed = try #require(h.lastOutcome.deliveries.first)
        #expect(closed.recipients == ["h", "g1", "g2"])
    }

    // MARK: disconnect

    @Test func guestDisconnectIsLikeLeave() throws {
        let h = Harness(rules: .immediateDeparture)
        let room = h.room(guests: ["g1", "g2"])
        h.connect("l")
        h.clear()
        h.disconnect("g1")
        #expect(h.inbox("g1").isEmpty, "nothing is sent to a gone connection")
        #expect(h.types("h") == ["client_left", "participant_list", "participant_statuses"])
        #expect(h.inbox("h")[0].client == "g1")
        #expect(h.types("l") == ["room_list"])
        #expect(h.party.sessions["g1"] == nil)
        #expect(h.party.rooms[room]?.members == ["h", "g2"])
    }

    @Test func hostDisconnectClosesOrTransfers() throws {
        let h = Harness(rules: .immediateDeparture)
        let closing = h.room(host: "h1", guests: ["g1"])
        h.disconnect("h1")
        #expect(h.types("g1") == ["room_closed", "room_list"])
        #expect(h.inbox("g1")[0].string("reason") == "Host left the room")
        #expect(h.party.rooms[closing] == nil)

        let transferring = h.room(host: "h2", guests: ["g2"], guestFeatures: ["g2": ["host_transfer"]])
        h.disconnect("h2")
        #expect(h.types("g2") == ["client_left", "host_changed", "participant_list", "participant_statuses"])
        #expect(h.party.rooms[transferring]?.hostID == "g2")
    }

    @Test func disconnectFromLobbyAndUnknownAreQuiet() throws {
        let h = Harness()
        h.connect("a")
        h.connect("b")
        h.clear()
        h.disconnect("a")
        h.disconnect("a")
        h.disconnect("nobody")
        #expect(h.inboxes.isEmpty)
        #expect(h.party.sessions.keys.sorted() == ["b"])
    }

    @Test func messagesFromUnknownConnectionsAreIgnored() throws {
        let h = Harness()
        h.send("ghost", "ping")
        h.reject("ghost", .invalidJSON)
        #expect(h.inboxes.isEmpty)
    }

    // MARK: Lobby

    @Test func lobbyBroadcastsSkipRoomMembers() throws {
        let h = Harness()
        let first = h.room(host: "h1", guests: ["g1"])
        h.connect("l1")
        h.connect("l2")
        h.clear()
        h.login("h2", name: "Hugo")
        h.clear()
        let second = h.createRoom("h2")
        #expect(h.inbox("h1").isEmpty)
        #expect(h.inbox("g1").isEmpty)
        #expect(h.types("l1") == ["room_list"])
        #expect(h.types("l2") == ["room_list"])
        #expect(h.inbox("l1")[0].roomListIDs == [first, second], "rooms listed in creation order")

        h.clear()
        h.connect("g2")
        h.clear()
        h.send("g2", "join_room", room: second)
        #expect(h.inbox("h1").isEmpty)
        #expect(h.inbox("g1").isEmpty)
        #expect(!h.types("h2").contains("room_list"))
        let counts = h.inbox("l1")[0].roomList.map { $0["count"] as? Int }
        #expect(counts == [2, 2])
    }

    @Test func listRoomsAnswersAnyone() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], payload: ["name": "Cinema", "media_id": String(repeating: "a", count: 32)])
        h.send("g", "list_rooms")
        let list = try #require(h.only("g"))
        #expect(list.type == "room_list")
        #expect(list.room == nil)
        #expect(list.client == nil)
        #expect(list.roomList.count == 1)
        #expect(list.roomList[0]["id"] as? String == room)
        #expect(list.roomList[0]["name"] as? String == "Cinema")
        #expect(list.roomList[0]["count"] as? Int == 2)
        #expect(list.roomList[0]["media_id"] as? String == String(repeating: "a", count: 32))
    }

    // MARK: Late joiners

    @Test func lateJoinerOfAPlayingRoomGetsTheProjectedPosition() throws {
        let h = Harness()
        let room = h.room()
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.advance(by: 4000)
        h.connect("g")
        h.clear()
        h.send("g", "join_room", room: room)
        let state = try #require(h.last("g", "room_state"))
        #expect(state.statePlayState == "playing")
        #expect(state.statePosition == 14.0)
        #expect(state.serverTs == t0 + 4000)
        #expect(state.time("state_server_ts") == t0 + 4000)
        #expect(state.ts == t0 + 4000)
        #expect(state.isNull("target_server_ts"), "the play's target (t0+1500) is past")
    }

    @Test func joinerBeforeTheTargetSeesIt() throws {
        let h = Harness()
        let room = h.room()
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.advance(by: 1000)
        h.connect("g")
        h.send("g", "join_room", room: room)
        let state = try #require(h.last("g", "room_state"))
        #expect(state.time("target_server_ts") == t0 + 1500)
        #expect(state.statePosition == 11.0)
        #expect(state.statePlayState == "playing")
    }

    @Test func joinerAfterAPauseSeesThePausedPositionAndItsTarget() throws {
        let h = Harness()
        let room = h.room()
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.advance(by: 3000)
        h.send("h", "player_event", room: room, payload: ["action": "pause"])
        h.advance(by: 100)
        h.connect("g")
        h.send("g", "join_room", room: room)
        let state = try #require(h.last("g", "room_state"))
        #expect(state.statePlayState == "paused")
        #expect(state.statePosition == 13.0)
        #expect(state.time("target_server_ts") == t0 + 3300)
        h.advance(by: 5000)
        h.send("g", "join_room", room: room)
        #expect(h.last("g", "room_state")?.statePosition == 13.0, "a paused room does not advance")
    }
}

/// Lobby `room_list` coalescing (PROTOCOL.md §5: within 100 ms, the last one always current).
@Suite struct LobbyCoalescingTests {
    @Test func aBurstOfChangesIsOneImmediateListThenOneCurrentListAtTheWindowEnd() throws {
        let h = Harness(coalesceLobby: true)
        h.connect("lobby")
        for host in ["a", "b", "c"] { h.connect(host) }
        h.clear()
        _ = h.createRoom("a")
        #expect(h.messages("lobby", "room_list").count == 1, "the first change goes out at once")
        h.advance(by: 10)
        _ = h.createRoom("b")
        h.advance(by: 10)
        _ = h.createRoom("c")
        #expect(h.messages("lobby", "room_list").count == 1, "later changes in the window wait")
        h.advance(by: 80)
        let lists = h.messages("lobby", "room_list")
        #expect(lists.count == 2)
        #expect(lists.last?.roomListIDs == ["room-1", "room-2", "room-3"], "the last list is current")
        #expect(lists.last?.ts == t0 + 100)
    }

    @Test func aConnectionLeavingARoomGetsTheListAtOnceEvenInsideTheWindow() {
        let h = Harness(coalesceLobby: true)
        h.connect("host")
        h.connect("guest")
        let room = h.createRoom("host")
        h.joinRoom("guest", room)
        h.clear()
        h.send("guest", "leave_room")
        #expect(h.messages("guest", "room_list").count == 1)
    }
}
