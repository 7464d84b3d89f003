import Foundation
import NIOWebSocket
import Testing
@testable import App

/// The SIGTERM drain of PROTOCOL.md §11, against the real binary.
@Suite(.serialized) struct DrainProcessTests {
    static let arguments = ["--drain-delay-seconds", "1", "--shutdown-grace-seconds", "4", "--max-ready-wait-ms", "60000"]

    @Test func sigtermDrainsInOrderAndExitsZero() async throws {
        let server = try ServerProcess(arguments: Self.arguments)
        try await server.waitUntilListening()
        let port = server.port

        // Room A: host and a ready guest. Room B: a pending play waiting on an unready guest.
        let hostA = try await LiveClient(port: port)
        try await hostA.send(["type": "create_room", "payload": ["name": "A"]])
        let roomA = try #require(try await hostA.next("room_state")["room"] as? String)
        let guestA = try await LiveClient(port: port)
        try await guestA.send(["type": "join_room", "room": roomA])
        _ = try await guestA.next("room_state")
        let hostB = try await LiveClient(port: port)
        try await hostB.send(["type": "create_room", "payload": ["name": "B"]])
        let roomB = try #require(try await hostB.next("room_state")["room"] as? String)
        let guestB = try await LiveClient(port: port)
        try await guestB.send(["type": "join_room", "room": roomB])
        _ = try await guestB.next("room_state")
        try await hostB.send(["type": "player_event", "room": roomB, "payload": ["action": "play", "position": 5]])
        let lobby = try await LiveClient(port: port)
        _ = try await lobby.next("room_list")
        try await Task.sleep(for: .milliseconds(100))

        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        var readyStatus = 0
        while ContinuousClock.now - signalled < .milliseconds(100) {
            readyStatus = try await server.httpStatus("/readyz")
            if readyStatus == 503 { break }
        }
        let readyAfter = ContinuousClock.now - signalled
        #expect(readyStatus == 503)
        #expect(readyAfter < .milliseconds(100), "readiness went 503 after \(readyAfter)")

        try await lobby.send(["type": "join_room", "room": roomA])
        let refused = try await lobby.next("error")
        #expect((refused["payload"] as? [String: Any])?["code"] as? String == "SERVER_SHUTTING_DOWN")
        let upgrade = try RawSocket(port: port)
        let head = try await offPool { try upgrade.upgrade() }
        #expect(head.hasPrefix("HTTP/1.1 503"))

        for member in [hostA, guestA, hostB, guestB] {
            var types: [String] = []
            while types.last != "room_closed" {
                guard let message = try? await member.next(timeout: .seconds(4)) else { break }
                types.append(message["type"] as? String ?? "?")
                if types.last == "room_closed" {
                    #expect((message["payload"] as? [String: Any])?["reason"] as? String == "Server shutting down")
                }
            }
            #expect(types.contains("room_closed"), "\(types)")
            #expect(!types.contains("player_event"), "the pending play must never be released: \(types)")
            let close = try await member.closeFrame()
            #expect(close?.closeCode == .goingAway)
            #expect(close?.reason == "Server shutting down", "PROTOCOL.md §11 step 4")
        }
        let lobbyClose = try await lobby.closeFrame()
        #expect(lobbyClose?.closeCode == .goingAway)
        #expect(lobbyClose?.reason == "Server shutting down")
        let status = try await server.exitStatus(within: .seconds(4) - (ContinuousClock.now - signalled) + .milliseconds(300))
        #expect(status == 0, "exit status \(String(describing: status)); log:\n\(server.logText)")
        #expect(server.logText.contains("Drain finished"))
    }

    @Test func aClientThatNeverAnswersTheCloseDoesNotHoldTheExit() async throws {
        let server = try ServerProcess(arguments: Self.arguments)
        try await server.waitUntilListening()
        let host = try await LiveClient(port: server.port)
        try await host.send(["type": "create_room"])
        let room = try #require(try await host.next("room_state")["room"] as? String)
        // Joins, then never reads nor answers anything again.
        let deaf = try RawSocket(port: server.port, receiveBuffer: 4096)
        _ = try await offPool { try deaf.upgrade() }
        try deaf.sendText(#"{"type":"join_room","room":"\#(room)","ts":1}"#)
        _ = try await host.next("participants_update")

        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        let status = try await server.exitStatus(within: .seconds(5))
        let took = ContinuousClock.now - signalled
        #expect(status == 0, "log:\n\(server.logText)")
        #expect(took < .seconds(4) + .milliseconds(300), "exited after \(took), grace is 4 s")
        #expect(server.logText.contains("dropped=1"), "the deaf client was dropped at the deadline:\n\(server.logText)")
        withExtendedLifetime(deaf) {}
    }

    @Test func aSecondSignalExitsAtOnce() async throws {
        let server = try ServerProcess(arguments: ["--drain-delay-seconds", "30", "--shutdown-grace-seconds", "40"])
        try await server.waitUntilListening()
        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        #expect(server.process.isRunning, "the drain delay holds the first signal")
        server.signal(SIGTERM)
        let status = try await server.exitStatus(within: .seconds(2))
        // 1, not 0: the drain did not finish, and a supervisor should know.
        #expect(status == 1, "a second signal ends the process at once, with status 1 (got \(String(describing: status)))")
        #expect(server.logText.contains("Second signal during drain"), "and says why")
    }
}
