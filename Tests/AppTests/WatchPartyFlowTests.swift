import Foundation
import Testing
@testable import App

/// A whole watch party over real sockets: the wiring of transport, gateway and core.
@Suite struct WatchPartyFlowTests {
    @Test func handshakeSendsHelloThenRoomList() async throws {
        try await withLiveServer { port, _, _ in
            let client = try await LiveClient(port: port)
            let hello = try await client.next()
            #expect(hello["type"] as? String == "client_hello")
            let id = try #require((hello["payload"] as? [String: Any])?["client_id"] as? String)
            #expect(hello["client"] as? String == id)
            #expect(UUID(uuidString: id) != nil)
            let list = try await client.next()
            #expect(list["type"] as? String == "room_list")
            #expect((list["payload"] as? [Any])?.isEmpty == true)
            try await client.close()
        }
    }

    @Test func hostAndTwoGuestsWatchTogether() async throws {
        try await withLiveServer { port, server, _ in
            let host = try await LiveClient(port: port)
            let guestA = try await LiveClient(port: port)
            let guestB = try await LiveClient(port: port)
            var everything: [[String: Any]] = []
            func read(_ client: LiveClient, _ type: String) async throws -> [String: Any] {
                let message = try await client.next(type)
                everything.append(message)
                return message
            }

            try await host.send(["type": "create_room", "payload": ["name": "Film night", "user_name": "Host"]])
            let state = try await read(host, "room_state")
            let roomID = try #require(state["room"] as? String)
            for guest in [guestA, guestB] {
                try await guest.send(["type": "join_room", "room": roomID, "payload": ["user_name": "Guest"]])
                let joined = try await read(guest, "room_state")
                #expect(joined["room"] as? String == roomID)
            }
            let participants = try await read(guestB, "participant_list")
            #expect(((participants["payload"] as? [String: Any])?["participants"] as? [Any])?.count == 3)

            for guest in [guestA, guestB] {
                try await guest.send(["type": "ready", "room": roomID])
            }
            try await Task.sleep(for: .milliseconds(100))
            try await host.send(["type": "player_event", "room": roomID, "payload": ["action": "play", "position": 12.5]])
            var targets: Set<Int> = []
            for member in [host, guestA, guestB] {
                let play = try await read(member, "player_event")
                let payload = try #require(play["payload"] as? [String: Any])
                #expect(payload["action"] as? String == "play")
                #expect(payload["play_state"] as? String == "playing")
                let target = try #require(payload["target_server_ts"] as? Int)
                let released = try #require(play["ts"] as? Int)
                #expect(target == released + 1500)
                // 12.5 s held when the play was handled; the wire gives it as of a client seek
                // lead (300 ms) before the target.
                #expect(play["server_ts"] as? Int == target - 300)
                #expect(payload["position"] as? Double == 12.5 + Double(target - 300 - released) / 1000)
                targets.insert(target)
            }
            #expect(targets.count == 1)

            try await host.send(["type": "player_event", "room": roomID, "payload": ["action": "pause", "position": 13]])
            for guest in [guestA, guestB] {
                let pause = try await read(guest, "player_event")
                let payload = try #require(pause["payload"] as? [String: Any])
                #expect(payload["action"] as? String == "pause")
                #expect(payload["position"] as? Double == 13)
                #expect(payload["play_state"] as? String == "paused")
                #expect(payload["target_server_ts"] as? Int == (pause["server_ts"] as? Int).map { $0 + 300 })
            }

            try await guestB.send(["type": "leave_room"])
            let left = try await read(host, "client_left")
            #expect((left["payload"] as? [String: Any])?["participant_count"] as? Int == 2)
            try await host.send(["type": "leave_room"])
            let closed = try await read(guestA, "room_closed")
            #expect((closed["payload"] as? [String: Any])?["reason"] as? String == "Host left the room")
            #expect(try await eventually { server.gateway.roomCount == 0 })

            for message in everything {
                #expect(message["server_ts"] is Int, "server_ts missing in \(message)")
                #expect(message["ts"] is Int, "ts missing in \(message)")
            }
            for client in [host, guestA, guestB] { try await client.close() }
            #expect(try await eventually { server.gateway.connectionCount == 0 })
        }
    }

    @Test func lateJoinerOfPlayingRoomGetsProjectedPosition() async throws {
        try await withLiveServer { port, _, _ in
            let host = try await LiveClient(port: port)
            try await host.send(["type": "create_room", "payload": ["start_pos": 100]])
            let roomID = try #require(try await host.next("room_state")["room"] as? String)
            try await host.send(["type": "player_event", "room": roomID, "payload": ["action": "play", "position": 100]])
            let play = try await host.next("player_event")
            let playedAt = try #require(play["ts"] as? Int)  // when 100 s held (server_ts is a seek lead before the target)
            try await Task.sleep(for: .milliseconds(400))

            let late = try await LiveClient(port: port)
            try await late.send(["type": "join_room", "room": roomID])
            let state = try await late.next("room_state")
            let payload = try #require(state["payload"] as? [String: Any])
            let inner = try #require(payload["state"] as? [String: Any])
            let serverTs = try #require(state["server_ts"] as? Int)
            #expect(inner["play_state"] as? String == "playing")
            #expect(payload["state_server_ts"] as? Int == serverTs)
            #expect(serverTs - playedAt >= 400)
            let expected = 100 + Double(serverTs - playedAt) / 1000
            let position = try #require(inner["position"] as? Double)
            #expect(abs(position - expected) < 1e-9)
            try await late.close()
            try await host.close()
        }
    }

    @Test func malformedInputGetsErrorsAndKeepsTheConnection() async throws {
        try await withLiveServer { port, _, _ in
            let client = try await LiveClient(port: port)
            _ = try await client.next("room_list")
            try await client.sendRaw("{not json")
            let invalid = try await client.next("error")
            #expect((invalid["payload"] as? [String: Any])?["code"] as? String == "INVALID_JSON")
            try await client.sendRaw(#"{"type":"dance","ts":1}"#)
            let unknown = try await client.next("error")
            #expect((unknown["payload"] as? [String: Any])?["code"] as? String == "UNKNOWN_MESSAGE_TYPE")
            try await client.sendBinary([1, 2, 3])
            let binary = try await client.next("error")
            #expect((binary["payload"] as? [String: Any])?["code"] as? String == "UNSUPPORTED_MESSAGE_FORMAT")
            try await client.send(["type": "ping", "payload": ["client_ts": 42]])
            let pong = try await client.next("pong")
            #expect((pong["payload"] as? [String: Any])?["client_ts"] as? Int == 42)
            try await client.close()
        }
    }
}
