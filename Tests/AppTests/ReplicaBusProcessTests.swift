import Foundation
import NIOWebSocket
import Testing

@testable import App

/// Three real `owp-server` processes and one PostgreSQL (PROTOCOL.md §14): members of one room
/// connected to different replicas are served by the room's owner through the bus, so they
/// see one sequence of messages; when the owner stops or dies, the members connected
/// elsewhere are closed with 1012 and resume with the room intact. Part of
/// ``ReplicaProcessTests``, so that no two of these multi-process tests run at once (several
/// debug servers starting together would starve the timing tests running beside them).
extension ReplicaProcessTests {
    static func replicas(_ count: Int, environment: [String: String]) async throws -> [ServerProcess] {
        let servers = try (0..<count).map { _ in try ServerProcess(arguments: [], environment: environment) }
        for server in servers { try await server.waitUntilListening() }
        // Each must be listening on the bus (its heartbeat written) before another relays to it.
        for server in servers {
            let deadline = ContinuousClock.now + .seconds(10)
            while !server.logText.contains("Bus: listening"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(server.logText.contains("Bus: listening"), "\(server.logText)")
        }
        return servers
    }

    static func stop(_ servers: [ServerProcess]) async throws {
        for server in servers { server.signal(SIGTERM) }
        for server in servers { _ = try await server.exitStatus(within: .seconds(10)) }
    }

    /// Every text `client` receives until it has been quiet for `quiet`.
    static func texts(_ client: LiveClient, quiet: Duration = .milliseconds(600)) async -> [String] {
        var texts: [String] = []
        while let text = try? await client.nextText(timeout: quiet) { texts.append(text) }
        return texts
    }

    static func type(_ text: String) -> String {
        ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["type"] as? String ?? "?"
    }

    /// A host on `servers[0]` and a guest on each replica; every guest has its `room_state`.
    static func spreadParty(_ servers: [ServerProcess]) async throws -> (room: String, host: Member, guests: [Member]) {
        let host = try await Member.connect(servers[0].port)
        try await host.client.send(["type": "create_room", "payload": ["name": "Spread night", "user_name": "Hannah"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        var guests: [Member] = []
        for (index, server) in servers.enumerated() {
            let guest = try await Member.connect(server.port)
            try await guest.client.send(["type": "join_room", "room": room, "payload": ["user_name": "Guest \(index)"]])
            let state = try await guest.client.next("room_state", timeout: .seconds(8))
            #expect(state["room"] as? String == room)
            guests.append(guest)
        }
        return (room, host, guests)
    }

    @Test func membersSpreadOverThreeReplicasSeeOneSequence() async throws {
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(3, environment: ["DATABASE_URL": url])
        let (room, host, guests) = try await Self.spreadParty(servers)
        for member in [host] + guests { _ = await Self.texts(member.client) }

        // Chat, the ready barrier, play, pause, seek, the host's state relayed, from members on every replica.
        try await guests[1].client.send(["type": "chat_message", "room": room, "payload": ["text": "hi from replica 2"]])
        try await guests[2].client.send(["type": "chat_message", "room": room, "payload": ["text": "hi from replica 3"]])
        for guest in guests { try await guest.client.send(["type": "ready", "room": room]) }
        try await host.client.send(["type": "player_event", "room": room, "payload": ["action": "play", "position": 12]])
        try await Task.sleep(for: .milliseconds(200))
        try await host.client.send(["type": "state_update", "room": room, "payload": ["position": 14.5, "play_state": "playing"]])
        try await host.client.send(["type": "player_event", "room": room, "payload": ["action": "pause", "position": 20]])
        try await host.client.send(["type": "player_event", "room": room, "payload": ["action": "seek", "position": 60]])
        try await guests[0].client.send(["type": "participant_status", "room": room, "payload": ["status": "buffering"]])
        try await guests[2].client.send(["type": "chat_message", "room": room, "payload": ["text": "bye"]])

        var sequences: [[String]] = []
        for guest in guests { sequences.append(await Self.texts(guest.client, quiet: .seconds(2))) }
        let types = sequences[0].map(Self.type)
        for expected in ["chat_message", "player_event", "participant_statuses"] {
            #expect(types.contains(expected), "\(types)")
        }
        #expect(types.filter { $0 == "player_event" }.count >= 3, "play, pause and seek: \(types)")
        #expect(types.filter { $0 == "chat_message" }.count == 3, "\(types)")
        // Byte for byte: one core encoded each message once, and the relays passed it on as it was.
        #expect(sequences[1] == sequences[0], "the guest on replica 2 saw what the guest on the owner saw")
        #expect(sequences[2] == sequences[0], "the guest on replica 3 saw what the guest on the owner saw")
        #expect(!servers[1].logText.contains("Room taken over"), "served through the owner, never taken from it")
        #expect(servers[1].logText.contains("Connection served by the room's owner"))
        let metrics = try await servers[0].httpResponse("/metrics")
        #expect(metrics.contains("owp_bus_remote_sessions 2"), "two sessions served for connections elsewhere")
        try await Self.stop(servers)
    }

    /// docs/protocol.md choice 19: a draining owner takes on no new member. A join relayed to
    /// it while it waits out its drain delay is answered SERVER_SHUTTING_DOWN (as a join on the
    /// owner itself is, §11); the connection, served by that owner from then on, is closed with
    /// 1012 at the handover like every other, and a new one joins the handed-over room.
    @Test func aJoinRelayedToADrainingOwnerIsToldItShutsDown() async throws {
        let url = try await TestDatabase.fresh()
        let owner = try ServerProcess(arguments: ["--drain-delay-seconds", "3"], environment: ["DATABASE_URL": url])
        let other = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        for server in [owner, other] {
            try await server.waitUntilListening()
            let deadline = ContinuousClock.now + .seconds(10)
            while !server.logText.contains("Bus: listening"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        let host = try await Member.connect(owner.port)
        try await host.client.send(["type": "create_room", "payload": ["name": "Last show", "user_name": "Hannah"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        try await Task.sleep(for: .milliseconds(300))  // written, so the other replica finds it

        owner.signal(SIGTERM)
        let deadline = ContinuousClock.now + .seconds(2)
        while (try? await owner.httpStatus("/readyz")) != 503, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try await owner.httpStatus("/readyz") == 503, "draining")
        let joiner = try await Member.connect(other.port)
        try await joiner.client.send(["type": "join_room", "room": room, "payload": ["user_name": "Late"]])
        let refused = try await joiner.client.next("error", timeout: .seconds(5))
        #expect(ReplicaProcessTests.payload(refused)["code"] as? String == "SERVER_SHUTTING_DOWN", "\(refused)")
        #expect(!other.logText.contains("Room taken over"), "a draining owner's room is not taken while it still owns it")

        for member in [host, joiner] {
            let close = try await member.client.closeFrame()
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 1012), "handed over, not closed: reconnect")
        }
        _ = try await owner.exitStatus(within: .seconds(10))
        let again = try await Member.connect(other.port)
        try await again.client.send(["type": "join_room", "room": room, "payload": ["user_name": "Late"]])
        let state = try await again.client.next("room_state", timeout: .seconds(8))
        #expect(state["room"] as? String == room, "the handed-over room is served here now")
        try await Self.stop([other])
    }

    /// PROTOCOL.md §11, §14: a draining replica takes no room on, an offered one neither. The
    /// owner stops while the other replica waits out its drain delay: the offer reaches a replica
    /// that refuses it, the room stays released, and a replica started afterwards takes it over
    /// when its host comes back.
    @Test func aDrainingReplicaTakesNoOfferedRoom() async throws {
        let url = try await TestDatabase.fresh()
        let owner = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        let draining = try ServerProcess(arguments: ["--drain-delay-seconds", "4"], environment: ["DATABASE_URL": url])
        for server in [owner, draining] {
            try await server.waitUntilListening()
            let deadline = ContinuousClock.now + .seconds(10)
            while !server.logText.contains("Bus: listening"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await Task.sleep(for: .seconds(1))  // each in the other's directory
        let host = try await Member.connect(owner.port)
        try await host.client.send(["type": "create_room", "payload": ["name": "Late night", "user_name": "Hannah"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        try await Task.sleep(for: .milliseconds(300))  // written

        draining.signal(SIGTERM)
        let deadline = ContinuousClock.now + .seconds(3)
        while (try? await draining.httpStatus("/readyz")) != 503, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try await draining.httpStatus("/readyz") == 503, "draining")
        owner.signal(SIGTERM)
        _ = try await host.client.closeFrame()
        _ = try await owner.exitStatus(within: .seconds(10))
        #expect(owner.logText.contains("Drain: rooms offered to the replicas that stay"), "offered to the draining one, still live on the bus")
        #expect(
            try await eventually { draining.logText.contains("Rooms offered at another replica's handover") && draining.logText.contains("taken_over=0") },
            "\(draining.logText)")
        #expect(!draining.logText.contains("Room taken over from the store"), "a draining replica takes nothing on")
        _ = try await draining.exitStatus(within: .seconds(15))

        let fresh = try ServerProcess(arguments: [], environment: ["DATABASE_URL": url])
        try await fresh.waitUntilListening()
        let back = try await host.resume(on: fresh.port)
        #expect(back.state["room"] as? String == room, "the room was left for the next replica, intact")
        try await Self.stop([fresh])
    }

    @Test func aRelayedMemberLeavesAndRejoinsAndItsConnectionClosesCleanly() async throws {
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(2, environment: ["DATABASE_URL": url])
        let (room, host, guests) = try await Self.spreadParty(servers)
        let remote = guests[1]
        try await remote.client.send(["type": "leave_room", "room": room])
        _ = try await remote.client.next("room_list")
        try await remote.client.send(["type": "join_room", "room": room])
        #expect(try await remote.client.next("room_state")["room"] as? String == room)
        try await host.client.send(["type": "chat_message", "room": room, "payload": ["text": "welcome back"]])
        #expect(ReplicaProcessTests.payload(try await remote.client.next("chat_message"))["text"] as? String == "welcome back")
        try await Task.sleep(for: .milliseconds(300))
        _ = await Self.texts(host.client, quiet: .milliseconds(300))
        _ = try await remote.client.close()
        try await Task.sleep(for: .milliseconds(500))
        let away = try await servers[0].httpResponse("/metrics")
        #expect(away.contains("owp_sessions_away 1"), "the owner holds the seat for a resume: \(servers[0].logText)")
        #expect(await Self.texts(host.client).map(Self.type).contains("participant_statuses"), "the others learn of the absence")
        // Resumed through the other replica again, by its token.
        let resumed = try await remote.resume(on: servers[1].port)
        #expect(ReplicaProcessTests.payload(resumed.hello)["client_id"] as? String == remote.id)
        #expect(resumed.state["room"] as? String == room)
        try await Self.stop(servers)
    }

    /// docs/protocol.md choice 21 across replicas: a relayed member's resume was served (its seat
    /// got a new token) but its connection ended before the client kept the `client_hello`; it
    /// comes back through a third replica with the token it holds, the one that retired.
    @Test func aResumeWhoseHelloWasLostIsServedAgainThroughAnotherReplica() async throws {
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(3, environment: ["DATABASE_URL": url])
        let (room, _, guests) = try await Self.spreadParty(servers)
        let guest = guests[1]  // on the second replica, served by the owner (the first)
        _ = try await guest.client.close()
        try await Task.sleep(for: .milliseconds(500))
        let lost = try await guest.resume(on: servers[1].port)
        #expect(ReplicaProcessTests.payload(lost.hello)["resume_token"] as? String != guest.token, "rotated")
        _ = try await lost.client.close()  // the new token is never kept
        try await Task.sleep(for: .milliseconds(500))  // away again, and the rotation written to the store

        let back = try await guest.resume(on: servers[2].port)
        #expect(ReplicaProcessTests.payload(back.hello)["client_id"] as? String == guest.id, "the same seat")
        #expect(back.state["room"] as? String == room)
        let owner = try await servers[0].httpResponse("/metrics")
        #expect(owner.contains(#"owp_session_resumes_total{way="retiring_token",result="resumed"} 1"#), "\(owner)")
        try await Self.stop(servers)
    }

    @Test func aStoppedOwnerHandsTheRoomOverAndRelayedMembersResume() async throws {
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(3, environment: ["DATABASE_URL": url])
        let (room, host, guests) = try await Self.spreadParty(servers)
        try await Task.sleep(for: .milliseconds(300))

        servers[0].signal(SIGTERM)
        let stopped = ContinuousClock.now
        for member in [host] + guests {
            let close = try await member.client.closeFrame()
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 1012), "every member reconnects and resumes")
        }
        #expect(ContinuousClock.now - stopped < .seconds(4), "relayed members are told at once, not when the owner's heartbeats stop")
        _ = try await servers[0].exitStatus(within: .seconds(10))
        #expect(servers[0].logText.contains("Drain: rooms offered to the replicas that stay"), "\(servers[0].logText)")
        // Offered at the handover: a replica that stays owns the room before any member is back.
        let survivors = Array(servers.dropFirst())
        #expect(
            try await eventually(timeout: .seconds(3)) {
                survivors.contains { $0.logText.contains("Rooms offered at another replica's handover") && $0.logText.contains("taken_over=1") }
            }, "taken over at the offer, not at the first resume")
        #expect(survivors.contains { $0.logText.contains("Room taken over from the store") })
        // Each back through one of the two that stay: served by the one the room was offered to, or through it.
        var resumed: [(client: LiveClient, hello: [String: Any], state: [String: Any])] = []
        for (index, member) in ([host] + guests).enumerated() {
            let server = servers[1 + index % 2]
            let back = try await member.resume(on: server.port)
            #expect(ReplicaProcessTests.payload(back.hello)["client_id"] as? String == member.id)
            #expect(back.state["room"] as? String == room)
            resumed.append(back)
        }
        try await resumed[0].client.send(["type": "chat_message", "room": room, "payload": ["text": "still here"]])
        for back in resumed.dropFirst() {
            #expect(ReplicaProcessTests.payload(try await back.client.next("chat_message"))["text"] as? String == "still here")
        }
        let logs = servers[1].logText + servers[2].logText
        #expect(!logs.contains("Room closed"), "no room closed")
        #expect(logs.components(separatedBy: "Room taken over from the store").count == 2, "taken over exactly once")
        try await Self.stop(Array(servers.dropFirst()))
    }

    @Test func upstreamClientsComeBackByTheirLoginThroughAnyReplica() async throws {
        // The upstream clients know no resume token: after a 1012 they reconnect (through the
        // load balancer, to any replica) and send `auth` with the same JWT.
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(3, environment: ["DATABASE_URL": url, "JWT_SECRET": TestTokens.secret])
        let hostToken = TestTokens.token(claims: TestTokens.claims(["sub": "u-host", "name": "Hannah"]))
        let guestToken = TestTokens.token(claims: TestTokens.claims(["sub": "u-guest", "name": "Gus"]))
        let host = try await Member.connect(servers[0].port)
        try await host.client.send(["type": "auth", "payload": ["token": hostToken]])
        _ = try await host.client.next("auth_success")
        try await host.client.send(["type": "create_room", "payload": ["name": "Upstream night"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        try await Task.sleep(for: .milliseconds(300))
        let guest = try await Member.connect(servers[1].port)
        try await guest.client.send(["type": "auth", "payload": ["token": guestToken]])
        _ = try await guest.client.next("auth_success")
        try await guest.client.send(["type": "join_room", "room": room])
        _ = try await guest.client.next("room_state", timeout: .seconds(8))
        try await Task.sleep(for: .milliseconds(300))

        servers[0].signal(SIGTERM)
        for member in [host, guest] { _ = try await member.client.closeFrame() }
        _ = try await servers[0].exitStatus(within: .seconds(10))
        // The handover offered the room to one of the two that stay: the host comes back through
        // that one, the guest through the other (served through the first).
        let survivors = Array(servers.dropFirst())
        #expect(try await eventually { survivors.contains { $0.logText.contains("Room taken over from the store") } })
        let owner = try #require(survivors.first { $0.logText.contains("Room taken over from the store") })
        let other = try #require(survivors.first { $0 !== owner })
        for (member, token, server) in [(host, hostToken, owner), (guest, guestToken, other)] {
            let client = try await LiveClient(port: server.port)
            _ = try await client.next("client_hello")
            try await client.send(["type": "auth", "payload": ["token": token]])
            _ = try await client.next("auth_success", timeout: .seconds(8))
            let hello = try await client.next("client_hello", timeout: .seconds(8))
            #expect(ReplicaProcessTests.payload(hello)["client_id"] as? String == member.id, "the same seat, by the same sub")
            #expect(ReplicaProcessTests.payload(hello)["resumed"] as? Bool == true)
            #expect(try await client.next("room_state")["room"] as? String == room)
        }
        #expect(other.logText.contains("Connection served by the room's owner"), "the guest came back through a replica that does not own the room")
        try await Self.stop(Array(servers.dropFirst()))
    }

    @Test func theRoomListIsGlobal() async throws {
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(2, environment: ["DATABASE_URL": url])
        let lobby = try await Member.connect(servers[1].port)
        _ = try await lobby.client.next("room_list")
        let host = try await Member.connect(servers[0].port)
        try await host.client.send(["type": "create_room", "payload": ["name": "Far away", "user_name": "Hannah"]])
        let room = try #require(try await host.client.next("room_state")["room"] as? String)
        let made = ContinuousClock.now
        // A room made on another replica reaches this lobby within a write and a read of the list (~1 s).
        let list = try await lobby.client.next("room_list", timeout: .seconds(3))
        let entries = list["payload"] as? [[String: Any]] ?? []
        #expect(entries.map { $0["id"] as? String } == [room] && entries.first?["name"] as? String == "Far away", "\(list)")
        #expect(ContinuousClock.now - made < .seconds(2))
        try await lobby.client.send(["type": "join_room", "room": room])
        #expect(try await lobby.client.next("room_state", timeout: .seconds(8))["room"] as? String == room, "and joined through its owner")
        // Its pings are answered by the replica it is connected to: no bus hop in its round trip.
        try await lobby.client.send(["type": "ping", "payload": ["client_ts": 12345]])
        #expect(ReplicaProcessTests.payload(try await lobby.client.next("pong"))["client_ts"] as? Int == 12345)
        let relayMetrics = try await servers[1].httpResponse("/metrics")
        let ownerMetrics = try await servers[0].httpResponse("/metrics")
        #expect(relayMetrics.contains(#"owp_messages_received_total{type="ping"} 1"#), "answered by the relay")
        #expect(ownerMetrics.contains(#"owp_messages_received_total{type="ping"} 0"#), "never reached the owner")
        try await Self.stop(servers)
    }

    @Test func aKilledOwnersRelayedMembersAreClosedAndResumeElsewhere() async throws {
        let url = try await TestDatabase.fresh()
        let servers = try await Self.replicas(2, environment: ["DATABASE_URL": url, "ROOM_LEASE_SECONDS": "3"])
        let (room, _, guests) = try await Self.spreadParty(servers)
        try await Task.sleep(for: .milliseconds(300))

        servers[0].signal(SIGKILL)
        let killed = ContinuousClock.now
        let close = try await guests[1].client.closeFrame()
        #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 1012), "the relay closes what it cannot serve any more")
        #expect(ContinuousClock.now - killed < .seconds(3), "its listener's session is gone at once: seen by the next heartbeat's check")
        let back = try await guests[1].resume(on: servers[1].port)
        #expect(back.state["room"] as? String == room)
        #expect(ContinuousClock.now - killed < .seconds(3 + 1 + 4), "taken over after the dead owner's lease")
        try await Self.stop([servers[1]])
    }
}
