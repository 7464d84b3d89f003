import Foundation
import Testing

@testable import App

/// Rooms are the unit of isolation (issue 11): with the embedded store each room lives in a
/// cell of its own (``RoomCell``), and neither another room's input nor a lobby input waits on it.
@Suite struct RoomIsolationTests {
    @Test func aRoomHeldBusyDelaysNoOtherRoomNorTheLobby() async throws {
        try await withLiveServer { port, server, _ in
            let (hostA, roomA) = try await Self.create("Busy", port: port)
            let guestA = try await Self.join(roomA, port: port)
            let (hostB, roomB) = try await Self.create("Free", port: port)
            let guestB = try await Self.join(roomB, port: port)
            let cell = try #require(server.gateway.roomCells(roomA).first, "the room lives in a cell of its own")
            #expect(server.gateway.roomCells().count == 2 && server.gateway.roomCount == 2)

            // Room A's lock is held, as by a long input of its own, until `release`.
            let held = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                cell.withLock { _ in
                    held.signal()
                    release.wait()
                }
            }
            try await offPool { held.wait() }
            do {
                defer { release.signal() }
                // Room B's chat goes round; a newcomer is greeted, lists both rooms and creates a third.
                try await hostB.send(["type": "chat_message", "room": roomB, "payload": ["text": "still here"]])
                let chat = try await guestB.next("chat_message", timeout: .seconds(3))
                #expect((chat["payload"] as? [String: Any])?["text"] as? String == "still here")
                let newcomer = try await LiveClient(port: port)
                let listed = try await newcomer.next("room_list", timeout: .seconds(3))
                let ids = (listed["payload"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                #expect(ids == [roomA, roomB], "a held room is listed from what the lobby keeps of it")
                try await newcomer.send(["type": "create_room", "payload": ["name": "Third"]])
                _ = try await newcomer.next("room_state", timeout: .seconds(3))
                try await newcomer.close()
            }
            // Released, room A answers again, as if nothing had happened.
            try await hostA.send(["type": "chat_message", "room": roomA, "payload": ["text": "back"]])
            let chat = try await guestA.next("chat_message", timeout: .seconds(3))
            #expect((chat["payload"] as? [String: Any])?["text"] as? String == "back")
            for client in [hostA, guestA, hostB, guestB] { try await client.close() }
        }
    }

    @Test func aRoomsCellGoesWithTheRoomAndAMemberWhoLeftIsServedByTheLobby() async throws {
        try await withLiveServer({ $0.rules.resumeGraceMs = 0 }) { port, server, _ in
            let (host, room) = try await Self.create("Short", port: port)
            let guest = try await Self.join(room, port: port)
            let cell = try #require(server.gateway.roomCells(room).first)
            try await guest.send(["type": "leave_room"])
            _ = try await guest.next("room_list")
            // Out of the room, its messages naming the room are the whole party's to answer.
            try await guest.send(["type": "chat_message", "room": room, "payload": ["text": "let me in"]])
            let error = try await guest.next("error")
            #expect((error["payload"] as? [String: Any])?["code"] as? String == "NOT_ROOM_MEMBER", "the room is found (brought into the lobby for it), its member is not")
            try await host.close()
            #expect(try await eventually { server.gateway.roomCells().isEmpty && server.gateway.roomCount == 0 })
            #expect(cell.withLock { $0.part == nil && $0.carriers.isEmpty }, "a gone room's cell is emptied")
            try await guest.close()
        }
    }

    /// A pong's sample waits in the room's cell; an input of the whole party that puts the room
    /// back (a join) hands it to the member's session, not lost with the cell's copy.
    @Test func aRoundTripWaitingInARoomSurvivesTheRoomBeingPutBack() async throws {
        try await withLiveServer({ $0.transport.firstPingDelay = .seconds(60) }) { port, server, _ in
            let (host, room) = try await Self.create("Measured", port: port)
            let cell = try #require(server.gateway.roomCells(room).first)
            let hostID = try #require(server.gateway.inspect(room: room).first?.members.first?.clientID)
            server.gateway.recordRoundTrip(hostID, .milliseconds(40), room: cell)
            let guest = try await Self.join(room, port: port)
            #expect(cell.roundTrips.withLock { $0.samples.isEmpty }, "the join took the room's waiting samples")
            let members = try #require(server.gateway.inspect(room: room).first?.members)
            #expect(members.first { $0.clientID == hostID }?.rttMs == 40)
            for client in [host, guest] { try await client.close() }
        }
    }

    private static func create(_ name: String, port: Int) async throws -> (LiveClient, String) {
        let host = try await LiveClient(port: port)
        _ = try await host.next("room_list")
        try await host.send(["type": "create_room", "payload": ["name": name]])
        let room = try #require(try await host.next("room_state")["room"] as? String)
        return (host, room)
    }

    private static func join(_ room: String, port: Int) async throws -> LiveClient {
        let guest = try await LiveClient(port: port)
        _ = try await guest.next("room_list")
        try await guest.send(["type": "join_room", "room": room])
        _ = try await guest.next("room_state")
        return guest
    }
}
