import Foundation
import HummingbirdTesting
import Testing

@testable import App

/// Sessions outlive connections (PROTOCOL.md §13) over real sockets, in JWT mode as the
/// upstream clients run: a member's TCP connection is reset (no close frame); it comes back
/// the way those clients do (a new socket after about a second, `auth` with token,
/// `user_name` and `user_id`, then `ping`) and is in its room again, while the others saw
/// nothing but, at most, a status change.
@Suite struct SessionLiveTests {
    static func token(sub: String, name: String) -> String {
        TestTokens.token(claims: TestTokens.claims(["sub": sub, "name": name]))
    }

    static func jwt(_ settings: inout ServerSettings) {
        settings.jwt = JWTSettings(secret: Secret(TestTokens.secret))
    }

    /// An upstream client's reconnect: a new socket, `auth` as the same user, then `ping`.
    static func reconnect(port: Int, sub: String, name: String) async throws -> LiveClient {
        let client = try await LiveClient(port: port)
        _ = try await client.next("client_hello")
        try await client.send(["type": "auth", "payload": ["token": token(sub: sub, name: name), "user_name": name, "user_id": sub]])
        try await client.send(["type": "ping", "payload": ["client_ts": 1]])
        return client
    }

    /// The next messages up to `type` (inclusive), in order.
    static func messages(_ client: LiveClient, through type: String) async throws -> [[String: Any]] {
        var seen: [[String: Any]] = []
        while seen.last?["type"] as? String != type {
            seen.append(try await client.next())
        }
        return seen
    }

    @Test func aGuestWhoseConnectionResetsIsBackInTheRoomWithItsID() async throws {
        let logs = LogCapture()
        try await withLiveServer(Self.jwt, logs: logs) { port, server, http in
            let host = try await LiveClient(port: port)
            _ = try await host.next("client_hello")
            try await host.send(["type": "auth", "payload": ["token": Self.token(sub: "host-sub", name: "Hannah")]])
            _ = try await host.next("auth_success")
            try await host.send(["type": "create_room", "payload": ["name": "Film night"]])
            let room = try #require(try await host.next("room_state")["room"] as? String)

            let (guest, before) = try await RawSocket.member(port: port, sending: [
                #"{"type":"auth","payload":{"token":"\#(Self.token(sub: "guest-sub", name: "Gus"))"},"ts":1}"#,
                #"{"type":"join_room","room":"\#(room)","ts":1}"#,
            ])
            let guestID = try #require(before.first { $0.type == "client_hello" }?.client)
            try guest.sendText(#"{"type":"ready","room":"\#(room)","ts":1}"#)
            _ = try await host.next("participant_statuses")
            try await Task.sleep(for: .milliseconds(100))  // the ready is in

            try await host.send(["type": "player_event", "room": room, "payload": ["action": "play", "position": 42]])
            _ = try await host.next("player_event")
            let playedAt = Date()

            guest.reset()
            #expect(try await eventually { server.gateway.awayCount == 1 })
            try await Task.sleep(for: .seconds(1))  // the upstream clients' first back-off
            let back = try await Self.reconnect(port: port, sub: "guest-sub", name: "Gus")
            let resumed = try await Self.messages(back, through: "pong")
            let types = resumed.compactMap { $0["type"] as? String }
            #expect(types == ["auth_success", "client_hello", "room_state", "participant_list", "participant_statuses", "player_event", "pong"])
            let hello = resumed[1]
            #expect(hello["client"] as? String == guestID)
            let helloPayload = try #require(hello["payload"] as? [String: Any])
            #expect(helloPayload["client_id"] as? String == guestID)
            #expect(helloPayload["resumed"] as? Bool == true)
            #expect((helloPayload["resume_token"] as? String)?.count ?? 0 >= 22, "at least 128 bits, base64url")
            let state = resumed[2]
            #expect(state["room"] as? String == room)
            let statePayload = try #require(state["payload"] as? [String: Any])
            let position = try #require((statePayload["state"] as? [String: Any])?["position"] as? Double)
            let elapsed = Date().timeIntervalSince(playedAt)
            #expect(position > 42 && abs(position - (42 + elapsed)) < 1.0, "projected: \(position) after \(elapsed) s")
            let participants = try #require((resumed[3]["payload"] as? [String: Any])?["participants"] as? [[String: Any]])
            #expect(participants.map { $0["is_host"] as? Bool } == [true, false], "the guest is a guest")
            #expect(server.gateway.awayCount == 0)

            // The host saw nothing of it but status changes: then the guest's chat line.
            try await back.send(["type": "chat_message", "room": room, "payload": ["text": "back"]])
            let seen = try await Self.messages(host, through: "chat_message")
            #expect(Set(seen.dropLast().compactMap { $0["type"] as? String }).isSubset(of: ["participant_statuses"]), "no client_left, no participants_update: \(seen)")
            #expect(seen.last?["client"] as? String == guestID)

            #expect(try await OperatorTests.metric(http, #"owp_session_resumes_total{way="identity",result="resumed"}"#) == 1)
            #expect(logs.lines("Session away", ["client_id": guestID, "room_id": room]).count == 1)
            #expect(logs.lines("Session resumed", ["client_id": guestID, "room_id": room, "way": "identity"]).count == 1)
            let token = try #require(helloPayload["resume_token"] as? String)
            #expect(!logs.all.contains { $0.contains(token) }, "a resume token is never logged")
            try await back.close()
            try await host.close()
        }
    }

    @Test func aHostWhoseConnectionResetsComesBackAsHostAndPlaybackNeverStopped() async throws {
        try await withLiveServer(Self.jwt) { port, server, _ in
            let (host, opened) = try await RawSocket.member(port: port, sending: [
                #"{"type":"auth","payload":{"token":"\#(Self.token(sub: "host-sub", name: "Hannah"))","features":["host_transfer"]},"ts":1}"#,
                #"{"type":"create_room","payload":{"name":"Film night"},"ts":1}"#,
            ])
            let hostID = try #require(opened.first { $0.type == "client_hello" }?.client)
            let room = try #require(opened.last?.room)

            let guests = try await [LiveClient(port: port), LiveClient(port: port)]
            for (index, guest) in guests.enumerated() {
                _ = try await guest.next("client_hello")
                try await guest.send(["type": "auth", "payload": ["token": Self.token(sub: "guest-\(index)", name: "Guest \(index)"), "features": ["host_transfer"]]])
                _ = try await guest.next("auth_success")
                try await guest.send(["type": "join_room", "room": room])
                _ = try await guest.next("room_state")
            }
            try host.sendText(#"{"type":"player_event","room":"\#(room)","payload":{"action":"play","position":10},"ts":1}"#)
            for guest in guests { _ = try await guest.next("player_event") }

            host.reset()
            #expect(try await eventually { server.gateway.awayCount == 1 })
            try await Task.sleep(for: .seconds(1))
            let back = try await Self.reconnect(port: port, sub: "host-sub", name: "Hannah")
            let resumed = try await Self.messages(back, through: "pong")
            #expect(resumed.compactMap { $0["type"] as? String }.prefix(5) == ["auth_success", "client_hello", "room_state", "participant_list", "participant_statuses"])
            #expect(resumed[1]["client"] as? String == hostID)
            let statePayload = try #require(resumed[2]["payload"] as? [String: Any])
            #expect(statePayload["host_id"] as? String == hostID, "back as host")
            #expect((statePayload["state"] as? [String: Any])?["play_state"] as? String == "playing", "playback never stopped")
            #expect(server.gateway.roomCount == 1)

            // The host is the host: its pause reaches both guests, who saw only status changes before it.
            try await back.send(["type": "player_event", "room": room, "payload": ["action": "pause", "position": 12]])
            for guest in guests {
                let seen = try await Self.messages(guest, through: "player_event")
                #expect(Set(seen.dropLast().compactMap { $0["type"] as? String }).isSubset(of: ["participant_statuses"]), "no host_changed, client_left or room_closed: \(seen)")
                #expect((seen.last?["payload"] as? [String: Any])?["action"] as? String == "pause")
                #expect(seen.last?["client"] as? String == hostID)
            }
            try await back.close()
            for guest in guests { try await guest.close() }
        }
    }

    @Test func aSilentHalfOpenSocketIsTakenOverAfterItsProbe() async throws {
        try await withLiveServer(Self.jwt) { port, server, _ in
            // The phone's old socket: open, but nothing comes from it any more (it answers no ping).
            let (old, opened) = try await RawSocket.member(port: port, sending: [
                #"{"type":"auth","payload":{"token":"\#(Self.token(sub: "phone", name: "Pat"))"},"ts":1}"#, #"{"type":"create_room","ts":1}"#,
            ])
            let id = try #require(opened.first { $0.type == "client_hello" }?.client)

            let started = ContinuousClock.now
            let new = try await Self.reconnect(port: port, sub: "phone", name: "Pat")
            let hello = try await new.next("client_hello", timeout: .seconds(5))
            let waited = ContinuousClock.now - started
            #expect(hello["client"] as? String == id)
            #expect(waited >= .milliseconds(1_900), "after the 2 s probe, not before: \(waited)")
            let frames = try await offPool { try old.readFramesUntilClosed() }
            let close = try #require(frames.last)
            #expect(close.opcode == 0x8)
            #expect(close.payload.count >= 2 && (Int(close.payload[0]) << 8 | Int(close.payload[1])) == 4001)
            #expect(String(decoding: close.payload.dropFirst(2), as: UTF8.self) == "Session resumed elsewhere")
            #expect(server.gateway.roomCount == 1)
            try await new.close()
        }
    }

    @Test func aLiveSecondTabOfTheSameUserIsNotTakenOver() async throws {
        try await withLiveServer(Self.jwt) { port, _, _ in
            let first = try await LiveClient(port: port)  // answers pings
            _ = try await first.next("client_hello")
            try await first.send(["type": "auth", "payload": ["token": Self.token(sub: "two-tabs", name: "Tess")]])
            try await first.send(["type": "create_room"])
            let room = try #require(try await first.next("room_state")["room"] as? String)

            let second = try await Self.reconnect(port: port, sub: "two-tabs", name: "Tess")
            _ = try await second.next("room_list")
            try await Task.sleep(for: .milliseconds(2_500))
            #expect(second.pendingCount == 1, "just the pong; no resumed hello")
            try await first.send(["type": "chat_message", "room": room, "payload": ["text": "still mine"]])
            #expect(try await first.next("chat_message")["client"] != nil)
            try await first.close()
            try await second.close()
        }
    }

    @Test func openModeResumesByTokenAndTakesOverAnAttachedSession() async throws {
        try await withLiveServer { port, server, http in
            let host = try await LiveClient(port: port)
            let hello = try await host.next("client_hello")
            let hostID = try #require(hello["client"] as? String)
            let token = try #require((hello["payload"] as? [String: Any])?["resume_token"] as? String)
            try await host.send(["type": "create_room"])
            let room = try #require(try await host.next("room_state")["room"] as? String)

            let other = try await LiveClient(port: port)
            _ = try await other.next("client_hello")
            try await other.send(["type": "resume", "payload": ["token": "not-a-token"]])
            #expect((try await other.next("error")["payload"] as? [String: Any])?["code"] as? String == "RESUME_FAILED")
            try await other.send(["type": "resume", "payload": ["token": token]])
            let resumed = try await other.next("client_hello")
            #expect(resumed["client"] as? String == hostID)
            #expect(try await other.next("room_state")["room"] as? String == room)
            let close = try await host.closeFrame()
            #expect(close?.closeCode == .unknown(4001))
            #expect(close?.reason == "Session resumed elsewhere")
            #expect(try await OperatorTests.metric(http, #"owp_session_resumes_total{way="token",result="taken_over"}"#) == 1)
            #expect(try await OperatorTests.metric(http, #"owp_session_resumes_total{way="token",result="refused"}"#) == 1)
            #expect(try await OperatorTests.metric(http, #"owp_connections_closed_total{code="4001",reason="session_taken_over"}"#) == 1)
            #expect(server.gateway.connectionCount == 1)
            try await other.close()
        }
    }

    @Test func theGraceRunsOutAndTheOthersAreToldThen() async throws {
        try await withLiveServer({ $0.rules.resumeGraceMs = 1_000 }) { port, server, http in
            let host = try await LiveClient(port: port)
            _ = try await host.next("client_hello")
            try await host.send(["type": "create_room"])
            let room = try #require(try await host.next("room_state")["room"] as? String)
            let (guest, _) = try await RawSocket.member(port: port, sending: [#"{"type":"join_room","room":"\#(room)","ts":1}"#])
            _ = try await host.next("participant_statuses")
            guest.reset()
            #expect(try await eventually { server.gateway.awayCount == 1 })
            let left = try await host.next("client_left", timeout: .seconds(3))
            #expect(left["room"] as? String == room)
            #expect(try await eventually { server.gateway.awayCount == 0 })
            #expect(try await OperatorTests.metric(http, "owp_session_graces_expired_total") == 1)
            try await host.close()
        }
    }
}
