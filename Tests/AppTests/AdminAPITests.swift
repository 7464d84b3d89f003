import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOWebSocket
import Testing
@testable import App

/// The admin API (docs/operations.md § Admin API): bearer token, list, detail, close, disconnect.
@Suite struct AdminAPITests {
    static let token = "admin-token-for-tests-0123456789"

    static func withAdmin(_ server: SessionServer, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let router = AdminAPI.router(gateway: server.gateway, token: Secret(token), logger: Logger(label: "admin-test"))
        try await Application(router: router).test(.router) { try await body($0) }
    }

    static func get(_ admin: any TestClientProtocol, _ uri: String, token: String? = AdminAPITests.token) async throws -> (HTTPResponse.Status, Any?) {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await admin.execute(uri: uri, method: .get, headers: headers) { response in
            (response.status, try? JSONSerialization.jsonObject(with: Data(buffer: response.body)))
        }
    }

    static func delete(_ admin: any TestClientProtocol, _ uri: String) async throws -> HTTPResponse.Status {
        try await admin.execute(uri: uri, method: .delete, headers: [.authorization: "Bearer \(token)"]) { $0.status }
    }

    @Test func everyRequestNeedsTheToken() async throws {
        try await withLiveServer { _, server, _ in
            try await Self.withAdmin(server) { admin in
                for token in [nil, "wrong-token-wrong-token-wrong", Self.token + "x", String(Self.token.dropLast())] {
                    #expect(try await Self.get(admin, "/admin/rooms", token: token).0 == .unauthorized)
                }
                let basic = try await admin.execute(uri: "/admin/rooms", method: .get, headers: [.authorization: "Basic \(Self.token)"]) { $0 }
                #expect(basic.status == .unauthorized)
                #expect(basic.headers[.wwwAuthenticate] == "Bearer")
                #expect(try await admin.execute(uri: "/admin/rooms/x", method: .delete) { $0.status } == .unauthorized)
                #expect(try await Self.get(admin, "/admin/rooms").0 == .ok)
                #expect(try await Self.get(admin, "/admin/rooms", token: nil).0 == .unauthorized)
            }
        }
    }

    @Test func listsShowsClosesAndDisconnects() async throws {
        try await withLiveServer { port, server, _ in
            let host = try await LiveClient(port: port)
            _ = try await host.next("room_list")
            try await host.send(["type": "auth", "payload": ["user_name": "Hana", "user_id": "u-hana"]])
            try await host.send(["type": "create_room", "payload": ["name": "Admin night", "start_pos": 10]])
            let room = try #require(try await host.next("room_state")["room"] as? String)
            let guest = try await LiveClient(port: port)
            let guestID = try #require((try await guest.next("client_hello")["payload"] as? [String: Any])?["client_id"] as? String)
            try await guest.send(["type": "join_room", "room": room, "payload": ["user_name": "Gus"]])
            _ = try await guest.next("room_state")
            try await guest.send(["type": "participant_status", "room": room, "payload": ["status": "buffering"]])
            try await host.send(["type": "player_event", "room": room, "payload": ["action": "play", "position": 10]])
            // Both messages handled (Gus buffering, the play pending on him), however busy the machine.
            #expect(try await eventually {
                server.gateway.inspect(room: room).first.map { $0.pendingPlay && $0.sync.membersCatchingUp == 1 } ?? false
            })

            try await Self.withAdmin(server) { admin in
                let (status, body) = try await Self.get(admin, "/admin/rooms")
                #expect(status == .ok)
                let rooms = try #require((body as? [String: Any])?["rooms"] as? [[String: Any]])
                #expect(rooms.count == 1)
                let listed = try #require(rooms.first)
                #expect(listed["id"] as? String == room)
                #expect(listed["name"] as? String == "Admin night")
                #expect((listed["age_seconds"] as? Double ?? -1) >= 0)
                #expect(listed["pending_play"] is Bool)
                let sync = try #require(listed["sync"] as? [String: Any])
                #expect(sync["verdict"] as? String == "paused", "the play waits for Gus: no timeline yet")
                #expect(sync["members_catching_up"] as? Int == 1, "Gus is buffering")
                let members = try #require(listed["members"] as? [[String: Any]])
                #expect(members.map { $0["name"] as? String } == ["Hana", "Gus"])
                #expect(members.map { $0["is_host"] as? Bool } == [true, false])
                #expect(members[0]["user_id"] as? String == "u-hana")
                #expect(members[1]["client_id"] as? String == guestID)
                #expect(members[1]["status"] as? String == "buffering")

                let (detailStatus, detail) = try await Self.get(admin, "/admin/rooms/\(room)")
                #expect(detailStatus == .ok)
                #expect((detail as? [String: Any])?["id"] as? String == room)
                #expect((detail as? [String: Any])?["position"] as? Double ?? 0 >= 10)
                #expect(try await Self.get(admin, "/admin/rooms/no-such-room").0 == .notFound)

                #expect(try await Self.delete(admin, "/admin/clients/\(guestID)") == .ok)
                #expect(try await guest.closeFrame()?.closeCode == .unknown(4007))
                // Gone once its closing handshake is over (the client's close reply, then the socket).
                #expect(try await eventually { server.gateway.connectionCount == 1 })
                #expect(try await Self.delete(admin, "/admin/clients/\(guestID)") == .notFound)

                #expect(try await Self.delete(admin, "/admin/rooms/\(room)") == .ok)
                let closed = try await host.next("room_closed")
                #expect((closed["payload"] as? [String: Any])?["reason"] as? String == "Room closed by the server operator")
                #expect(try await Self.delete(admin, "/admin/rooms/\(room)") == .notFound)
                #expect(try await eventually { server.gateway.roomCount == 0 })
            }
            try await host.close()
        }
    }

    /// The real binary: the admin API listens on its own port only, and refuses to start without a token.
    /// An away member (its connection reset) shows `away_seconds`; disconnecting it departs it now.
    @Test func anAwayMemberIsShownAndCanBeRemoved() async throws {
        try await withLiveServer { port, server, _ in
            let host = try await LiveClient(port: port)
            _ = try await host.next("room_list")
            try await host.send(["type": "create_room"])
            let room = try #require(try await host.next("room_state")["room"] as? String)
            let (guest, joined) = try await RawSocket.member(port: port, sending: [#"{"type":"join_room","room":"\#(room)","ts":1}"#])
            let guestID = try #require(joined.first?.client)
            guest.reset()
            #expect(try await eventually { server.gateway.awayCount == 1 })
            try await Self.withAdmin(server) { admin in
                let (status, body) = try await Self.get(admin, "/admin/rooms/\(room)")
                #expect(status == .ok)
                let members = try #require((body as? [String: Any])?["members"] as? [[String: Any]])
                let away = try #require(members.first { $0["client_id"] as? String == guestID })
                #expect((away["away_seconds"] as? Double).map { $0 >= 0 && $0 < 10 } == true)
                #expect(members.first { $0["is_host"] as? Bool == true }?["away_seconds"] == nil, "a present member has none")
                #expect(try await Self.delete(admin, "/admin/clients/\(guestID)") == .ok)
            }
            let left = try await host.next("client_left")
            #expect(left["client"] as? String == guestID, "no grace left for a removed member")
            #expect(server.gateway.awayCount == 0)
            try await host.close()
        }
    }

    @Test func itHasItsOwnListenerAndNeedsAToken() async throws {
        let refused = try ServerProcess(arguments: [], environment: ["ADMIN_PORT": "0"])
        #expect(try await refused.exitStatus(within: .seconds(10)) != 0)
        #expect(refused.logText.contains("ADMIN_TOKEN"))

        let server = try ServerProcess(arguments: ["--admin-port", "0"], environment: ["ADMIN_TOKEN": Self.token])
        try await server.waitUntilListening()
        #expect(try await server.httpStatus("/admin/rooms") == 404, "not on the public port")
        let deadline = ContinuousClock.now + .seconds(10)
        var adminPort = 0
        while true {
            adminPort = ServerProcess.port(in: server.logText, of: "Serving the admin API") ?? 0
            if adminPort != 0 || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(adminPort != 0 && adminPort != server.port, "\(server.logText)")
        let port = adminPort
        let answer = try await offPool {
            let socket = try RawSocket(port: port)
            try socket.write(Array("GET /admin/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nConnection: close\r\n\r\n".utf8))
            return String(decoding: try socket.read(count: 1 << 16), as: UTF8.self)
        }
        #expect(answer.hasPrefix("HTTP/1.1 200"))
        #expect(answer.hasSuffix(#"{"rooms":[]}"#))
        #expect(!server.logText.contains(Self.token), "the token is never logged")
        server.signal(SIGTERM)
        #expect(try await server.exitStatus(within: .seconds(10)) == 0)
    }
}
