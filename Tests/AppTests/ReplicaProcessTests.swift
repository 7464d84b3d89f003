import Foundation
import NIOWebSocket
import Testing

@testable import App

/// Real `owp-server` processes sharing rooms through a real PostgreSQL (PROTOCOL.md §14):
/// a restart hands the rooms over, a killed owner's rooms move within the lease, and a
/// database that goes away and comes back is followed by readiness.
@Suite(.serialized, .enabled(if: TestDatabase.enabled, "needs PostgreSQL's server binaries or OWP_TEST_DATABASE_URL"))
struct ReplicaProcessTests {
    /// A member on `port`: connected, its greeting (id and resume token) read.
    struct Member {
        let client: LiveClient
        let id: String
        let token: String

        static func connect(_ port: Int) async throws -> Member {
            let client = try await LiveClient(port: port)
            let hello = try await client.next("client_hello")
            let payload = try #require(hello["payload"] as? [String: Any])
            return Member(client: client, id: try #require(payload["client_id"] as? String), token: try #require(payload["resume_token"] as? String))
        }

        /// A new connection to `port` resuming this member's seat; what it was sent, through `room_state`.
        func resume(on port: Int) async throws -> (client: LiveClient, hello: [String: Any], state: [String: Any]) {
            let client = try await LiveClient(port: port)
            _ = try await client.next("client_hello")
            try await client.send(["type": "resume", "payload": ["token": token]])
            let hello = try await client.next("client_hello", timeout: .seconds(8))
            let state = try await client.next("room_state")
            return (client, hello, state)
        }
    }

    /// Every message type `client` receives until it has been quiet for `quiet`.
    static func types(_ client: LiveClient, quiet: Duration = .milliseconds(300)) async -> [String] {
        var types: [String] = []
        while let message = try? await client.next(timeout: quiet) { types.append(message["type"] as? String ?? "?") }
        return types
    }

    static func payload(_ message: [String: Any]) -> [String: Any] { message["payload"] as? [String: Any] ?? [:] }

    /// A room on `port` with a host and a guest, playing from 30 s.
    static func party(on port: Int) async throws -> (room: String, host: Member, guest: Member) {
        let host = try await Member.connect(port)
        try await host.client.send(["type": "create_room", "payload": ["name": "Movie night", "user_name": "Hannah"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        let guest = try await Member.connect(port)
        try await guest.client.send(["type": "join_room", "room": room, "payload": ["user_name": "Gus"]])
        _ = try await guest.client.next("room_state")
        try await guest.client.send(["type": "ready", "room": room])
        try await host.client.send(["type": "player_event", "room": room, "payload": ["action": "play", "position": 30]])
        _ = try await guest.client.next("player_event")
        return (room, host, guest)
    }

    @Test func aRestartHandsTheRoomOverAndEveryoneResumesWithItsState() async throws {
        let url = try await TestDatabase.fresh()
        let first = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        try await first.waitUntilListening()
        let (room, host, guest) = try await Self.party(on: first.port)
        let playedAt = Date()
        try await Task.sleep(for: .milliseconds(300))

        first.signal(SIGTERM)
        for member in [host, guest] {
            let close = try await member.client.closeFrame()
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 1012), "1012: the client reconnects and resumes")
        }
        #expect(try await first.exitStatus(within: .seconds(10)) == 0)
        #expect(first.logText.contains("rooms_handed_over=1"), "\(first.logText)")
        #expect(!first.logText.contains("Room closed"))

        let second = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        try await second.waitUntilListening()
        let resumedHost = try await host.resume(on: second.port)
        #expect(Self.payload(resumedHost.hello)["client_id"] as? String == host.id)
        #expect(Self.payload(resumedHost.hello)["resumed"] as? Bool == true)
        #expect(resumedHost.state["room"] as? String == room)
        let state = try #require(Self.payload(resumedHost.state)["state"] as? [String: Any])
        #expect(state["play_state"] as? String == "playing")
        let position = try #require(state["position"] as? Double)
        let expected = 30 + Date().timeIntervalSince(playedAt)
        #expect(abs(position - expected) < 0.5, "the timeline went on: \(position) vs \(expected)")
        let resumedGuest = try await guest.resume(on: second.port)
        #expect(Self.payload(resumedGuest.hello)["client_id"] as? String == guest.id)
        let list = try await resumedGuest.client.next("participant_list")
        let entries = try #require(Self.payload(list)["participants"] as? [[String: Any]])
        #expect(entries.map { $0["is_host"] as? Bool } == [true, false], "the host is still the host")

        try await resumedHost.client.send(["type": "chat_message", "room": room, "payload": ["text": "still here"]])
        let chat = try await resumedGuest.client.next("chat_message")
        #expect(Self.payload(chat)["text"] as? String == "still here")
        #expect(second.logText.contains("Room taken over from the store"))
        second.signal(SIGTERM)
        _ = try await second.exitStatus(within: .seconds(10))
    }

    @Test func upstreamClientsComeBackByTheirLoginAfterARestart() async throws {
        // The unmodified upstream clients know nothing of resume tokens: they reconnect and
        // send `auth` with the same JWT. That must bring them back into the room on a new process.
        let url = try await TestDatabase.fresh()
        let environment = ["DATABASE_URL": url, "JWT_SECRET": TestTokens.secret]
        let first = try ServerProcess(arguments: [], environment: environment)
        try await first.waitUntilListening()
        let hostToken = TestTokens.token(claims: TestTokens.claims(["sub": "u-host", "name": "Hannah"]))
        let guestToken = TestTokens.token(claims: TestTokens.claims(["sub": "u-guest", "name": "Gus"]))
        let host = try await Member.connect(first.port)
        try await host.client.send(["type": "auth", "payload": ["token": hostToken]])
        _ = try await host.client.next("auth_success")
        try await host.client.send(["type": "create_room", "payload": ["name": "Upstream night"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        let guest = try await Member.connect(first.port)
        try await guest.client.send(["type": "auth", "payload": ["token": guestToken]])
        _ = try await guest.client.next("auth_success")
        try await guest.client.send(["type": "join_room", "room": room])
        _ = try await guest.client.next("room_state")
        try await Task.sleep(for: .milliseconds(300))

        first.signal(SIGTERM)
        for member in [host, guest] { _ = try await member.client.closeFrame() }
        _ = try await first.exitStatus(within: .seconds(10))
        let second = try ServerProcess(arguments: [], environment: environment)
        try await second.waitUntilListening()
        for (member, token) in [(guest, guestToken), (host, hostToken)] {
            let client = try await LiveClient(port: second.port)
            _ = try await client.next("client_hello")
            try await client.send(["type": "auth", "payload": ["token": token]])
            _ = try await client.next("auth_success", timeout: .seconds(8))
            let hello = try await client.next("client_hello")
            #expect(Self.payload(hello)["client_id"] as? String == member.id, "the same seat, by the same sub")
            #expect(Self.payload(hello)["resumed"] as? Bool == true)
            #expect(try await client.next("room_state")["room"] as? String == room)
        }
        second.signal(SIGTERM)
        _ = try await second.exitStatus(within: .seconds(10))
    }

    @Test func aKilledOwnersRoomMovesWithinTheLease() async throws {
        let url = try await TestDatabase.fresh()
        // Not shorter: an owner acts for the lease less a 1 s margin after each renewal, and a
        // replica starved for a second under a loaded test run would otherwise refuse the
        // party's own set-up with SERVICE_UNAVAILABLE.
        let lease = 5
        let environment = ["DATABASE_URL": url, "ROOM_LEASE_SECONDS": String(lease)]
        let owner = try ServerProcess(arguments: [], environment: environment)
        let other = try ServerProcess(arguments: [], environment: environment)
        try await owner.waitUntilListening()
        try await other.waitUntilListening()
        let (room, _, guest) = try await Self.party(on: owner.port)
        try await Task.sleep(for: .milliseconds(300))

        owner.signal(SIGKILL)
        let killed = ContinuousClock.now
        try await Task.sleep(for: .seconds(1))  // the upstream clients' first back-off
        let resumed = try await guest.resume(on: other.port)
        let moved = ContinuousClock.now - killed
        #expect(resumed.state["room"] as? String == room)
        #expect(Self.payload(resumed.hello)["client_id"] as? String == guest.id)
        #expect(moved < .seconds(lease + 1), "owned elsewhere within ROOM_LEASE_SECONDS + 1 s, took \(moved)")
        // The owner renewed at most 1 s before it died: its lease ran out lease − 1 s after the kill at the earliest.
        #expect(moved > .seconds(lease - 1) - .milliseconds(100), "not before the dead owner's lease ran out (\(moved))")
        let list = try await resumed.client.next("participant_statuses")
        #expect((Self.payload(list)["statuses"] as? [Any])?.count == 2, "the host is away, still counted")
        other.signal(SIGTERM)
        _ = try await other.exitStatus(within: .seconds(10))
    }

    @Test func aRoomALiveReplicaOwnsIsServedThroughItNotStolen() async throws {
        let url = try await TestDatabase.fresh()
        let owner = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        let other = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        try await owner.waitUntilListening()
        try await other.waitUntilListening()
        let (room, host, _) = try await Self.party(on: owner.port)
        try await Task.sleep(for: .milliseconds(300))
        let stranger = try await Member.connect(other.port)
        let asked = ContinuousClock.now
        try await stranger.client.send(["type": "join_room", "room": room])
        let state = try await stranger.client.next("room_state", timeout: .seconds(8))
        #expect(state["room"] as? String == room, "served through the owner (PROTOCOL.md §14)")
        #expect(ContinuousClock.now - asked < .seconds(2), "a live owner is recognised by its heartbeat on the bus")
        try await host.client.send(["type": "chat_message", "room": room, "payload": ["text": "still ours"]])
        _ = try await host.client.next("chat_message")
        #expect(Self.payload(try await stranger.client.next("chat_message"))["text"] as? String == "still ours")
        #expect(!other.logText.contains("Room taken over"))
        for server in [owner, other] { server.signal(SIGTERM) }
        for server in [owner, other] { _ = try await server.exitStatus(within: .seconds(10)) }
    }

    @Test func readinessFollowsTheDatabaseAndNothingAcknowledgedIsLost() async throws {
        let cluster = try await offPool { try TestDatabase.Cluster.start() }
        defer {
            cluster.stop()
            try? FileManager.default.removeItem(atPath: cluster.directory)
        }
        let server = try ServerProcess(arguments: [], environment: ["DATABASE_URL": cluster.url, "ROOM_LEASE_SECONDS": "3"])
        try await server.waitUntilListening()
        let (room, host, guest) = try await Self.party(on: server.port)
        try await host.client.send(["type": "chat_message", "room": room, "payload": ["text": "before"]])
        _ = try await guest.client.next("chat_message")
        // Ready once its bus listener is up too (on a loaded CI machine that can follow the party's set-up).
        var before = try await server.httpStatus("/readyz")
        let readyBy = ContinuousClock.now + .seconds(5)
        while before != 200, ContinuousClock.now < readyBy {
            try await Task.sleep(for: .milliseconds(50))
            before = try await server.httpStatus("/readyz")
        }
        #expect(before == 200, "\(server.logText)")

        try await offPool { cluster.stop() }
        let stopped = ContinuousClock.now
        // Within the claim the room keeps working, and what it acknowledges now is written later.
        try await host.client.send(["type": "chat_message", "room": room, "payload": ["text": "during"]])
        #expect(Self.payload(try await guest.client.next("chat_message"))["text"] as? String == "during")
        try await host.client.send(["type": "player_event", "room": room, "payload": ["action": "pause", "position": 42]])
        let paused = try await guest.client.next("player_event")
        #expect(Self.payload(paused)["action"] as? String == "pause")
        var ready = 200
        while ready == 200 && ContinuousClock.now - stopped < .seconds(8) {
            ready = try await server.httpStatus("/readyz")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(ready == 503)
        #expect(ContinuousClock.now - stopped < .seconds(5), "readiness 503 within 5 s")
        #expect(try await server.httpStatus("/healthz") == 200, "liveness stays 200: the process is fine, its database is not")
        // Readiness may go first (the bus listener's connection is lost at once); what refuses
        // a create is the store's own verdict, within the same 5 s.
        var reachable = true
        while reachable && ContinuousClock.now - stopped < .seconds(5) {
            reachable = try await server.httpResponse("/metrics").contains("\nowp_store_reachable 1")
            if reachable { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(!reachable, "the store says it cannot reach its database within 5 s")
        let lobby = try await Member.connect(server.port)
        try await lobby.client.send(["type": "create_room", "payload": ["name": "no database"]])
        #expect(Self.payload(try await lobby.client.next("error"))["code"] as? String == "SERVICE_UNAVAILABLE")
        try await Task.sleep(for: .seconds(3))  // past the claim: this replica stops acting on the room
        try await host.client.send(["type": "chat_message", "room": room, "payload": ["text": "unsure"]])
        #expect(Self.payload(try await host.client.next("error"))["code"] as? String == "SERVICE_UNAVAILABLE")

        try await offPool { try cluster.start() }
        let restarted = ContinuousClock.now
        while ready != 200 && ContinuousClock.now - restarted < .seconds(12) {
            ready = try await server.httpStatus("/readyz")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(ready == 200)
        #expect(ContinuousClock.now - restarted < .seconds(10), "readiness 200 within 10 s of the database's return")
        try await Task.sleep(for: .seconds(1.5))  // a renewal round
        try await host.client.send(["type": "chat_message", "room": room, "payload": ["text": "after"]])
        #expect(Self.payload(try await guest.client.next("chat_message"))["text"] as? String == "after", "the claim held: the room is served again")
        let (members, playState, position) = try await TestDatabase.withClient(url: cluster.url) { client in
            var row = (0, "", 0.0)
            let rows = try await client.query(
                "SELECT members, record->'playback'->>'playState', (record->'playback'->>'position')::float8 FROM owp_rooms WHERE room_id = \(room)")
            for try await values in rows.decode((Int, String, Double).self) { row = values }
            return row
        }
        #expect(members == 2, "the room as acknowledged is in the store")
        #expect(playState == "paused" && position == 42, "the pause acknowledged while the database was away was written once it was back")
        server.signal(SIGTERM)
        _ = try await server.exitStatus(within: .seconds(10))
    }
}
