import Foundation
import Testing

@testable import WatchPartyCore

/// Drain (PROTOCOL.md §11, the core's part).
@Suite struct DrainTests {
    @Test func createAndJoinAreRefusedDuringDrain() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.connect("l")
        h.clear()
        h.party.beginDrain()
        #expect(h.party.draining)
        h.send("l", "create_room")
        h.send("l", "join_room", room: room)
        h.send("g", "create_room")
        #expect(h.errorCodes("l") == ["SERVER_SHUTTING_DOWN", "SERVER_SHUTTING_DOWN"])
        #expect(h.inbox("l").first?.string("message") == "Server is shutting down")
        #expect(h.errorCodes("g") == ["SERVER_SHUTTING_DOWN"])
        #expect(h.party.rooms.keys.sorted() == [room])
        #expect(h.party.rooms[room]?.members == ["h", "g"], "a refused create does not move the sender")
        #expect(h.inbox("h").isEmpty)
    }

    @Test func everythingElseKeepsWorkingDuringDrain() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.party.beginDrain()
        h.send("g", "chat_message", room: room, payload: ["text": "bye"])
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 4])
        h.send("g", "ping")
        h.send("g", "list_rooms")
        h.send("g", "leave_room")
        #expect(h.types("g") == ["chat_message", "player_event", "pong", "room_list", "room_list"])
        #expect(h.errorCodes("h").isEmpty)
    }

    @Test func closeAllRoomsTellsEveryMember() throws {
        let h = Harness()
        let first = h.room(host: "h1", guests: ["g1"])
        let second = h.room(host: "h2", guests: ["g2", "g3"])
        h.connect("l")
        h.clear()
        h.party.beginDrain()
        h.closeAllRooms()
        for (member, room) in [("h1", first), ("g1", first), ("h2", second), ("g2", second), ("g3", second)] {
            #expect(h.types(member) == ["room_closed", "room_list"], "\(member)")
            #expect(h.inbox(member).first?.room == room)
            #expect(h.inbox(member).first?.string("reason") == "Server shutting down")
            #expect(h.inbox(member).last?.roomList.isEmpty == true)
            #expect(h.party.sessions[member]?.roomID == nil)
        }
        #expect(h.types("l") == ["room_list"])
        #expect(h.party.rooms.isEmpty)
        #expect(h.events.contains(.roomClosed(room: first, reason: .shutdown)))
        #expect(h.events.contains(.roomClosed(room: second, reason: .shutdown)))
    }

    @Test func pendingPlayIsNeverReleasedAfterClosing() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 3])
        h.advance(by: 500)
        h.clear()
        h.party.beginDrain()
        h.closeAllRooms()
        #expect(h.types("h") == ["room_closed", "room_list"], "closing does not release the play half-way")
        #expect(h.types("g") == ["room_closed", "room_list"])
        h.send("g", "ready", room: room)
        h.advance(by: 10_000)
        #expect(h.fired.count == 1, "the barrier timer fired")
        #expect(h.messages("h", "player_event").isEmpty)
        #expect(h.messages("g", "player_event").isEmpty)
        #expect(h.releases.isEmpty)
        #expect(h.errorCodes("g") == ["ROOM_NOT_FOUND"])
    }

    @Test func closeAllRoomsWithoutRoomsIsQuiet() throws {
        let h = Harness()
        h.connect("l")
        h.clear()
        h.closeAllRooms()
        #expect(h.inboxes.isEmpty)
    }
}
