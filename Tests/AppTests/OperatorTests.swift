import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOWebSocket
import Observability
import Synchronization
import Testing
import Transport
import WatchPartyCore
@testable import App

/// What an operator relies on: refusals counted and logged, closes that say why, log lines
/// that link clients and rooms (issue 14).
@Suite struct OperatorTests {
    static func metric(_ client: any TestClientProtocol, _ series: String) async throws -> Double? {
        try await client.execute(uri: "/metrics", method: .get) { response in
            let line = String(buffer: response.body).split(separator: "\n").first { $0.hasPrefix(series + " ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
    }

    @Test func refusedUpgradesAreCountedAndLogged() async throws {
        let logs = LogCapture()
        try await withLiveServer({ settings in
            settings.admission = AdmissionPolicy()  // browsers from localhost:8096 only
            settings.admission.maxConnections = 1
        }, logs: logs) { port, server, http in
            let evil = try RawSocket(port: port)
            #expect(try await offPool { try evil.upgrade(extraHeaders: ["Origin: https://evil.example"]) }.hasPrefix("HTTP/1.1 403"))
            let first = try RawSocket(port: port)
            #expect(try await offPool { try first.upgrade() }.hasPrefix("HTTP/1.1 101"))
            let second = try RawSocket(port: port)
            #expect(try await offPool { try second.upgrade() }.hasPrefix("HTTP/1.1 429"))
            server.transport.beginDrain()
            let third = try RawSocket(port: port)
            #expect(try await offPool { try third.upgrade() }.hasPrefix("HTTP/1.1 503"))

            #expect(try await Self.metric(http, #"owp_connections_rejected_total{reason="origin"}"#) == 1)
            #expect(try await Self.metric(http, #"owp_connections_rejected_total{reason="max_connections"}"#) == 1)
            #expect(try await Self.metric(http, #"owp_connections_rejected_total{reason="draining"}"#) == 1)
            #expect(logs.lines("Upgrade refused", ["reason": "origin", "status": "403", "origin": "https://evil.example", "remote": "127.0.0.1"]).count == 1)
            #expect(logs.lines("Upgrade refused", ["reason": "max_connections", "status": "429"]).count == 1)
            #expect(logs.lines("Upgrade refused", ["reason": "draining", "status": "503"]).count == 1)
        }
    }

    @Test func theCloseCounterSaysWhy() async throws {
        try await withLiveServer { port, server, http in
            let client = try await LiveClient(port: port)
            _ = try await client.next("room_list")
            for _ in 0...30 { try await client.send(["type": "ping"]) }
            #expect(try await client.closeFrame()?.closeCode == .unknown(4002))
            #expect(try await eventually { server.gateway.connectionCount == 0 })
            #expect(try await Self.metric(http, #"owp_connections_closed_total{code="4002",reason="rate_limited"}"#) == 1)
            let quiet = try await LiveClient(port: port)
            _ = try await quiet.next("room_list")
            try await quiet.close()
            #expect(try await eventually { server.gateway.connectionCount == 0 })
            #expect(try await Self.metric(http, #"owp_connections_closed_total{code="client",reason="client"}"#) == 1)
        }
    }

    /// A client whose connection resets (no close frame) closed it: `client`, not an internal error.
    @Test func aResetCountsAsTheClientsClose() async throws {
        try await withLiveServer { port, server, http in
            for _ in 0..<3 {
                let socket = try RawSocket(port: port)
                _ = try await offPool { try socket.upgrade() }
                try socket.sendText(#"{"type":"ping","ts":1}"#)
                try await Task.sleep(for: .milliseconds(50))
                socket.reset()
            }
            #expect(try await eventually { server.gateway.connectionCount == 0 })
            #expect(try await Self.metric(http, #"owp_connections_closed_total{code="client",reason="client"}"#) == 3)
        }
    }

    @Test func aPartyLeavesATrailThatLinksClientsAndRooms() async throws {
        let logs = LogCapture()
        // §5's immediate departures, so the host's close ends the room (the §13 lines are SessionLiveTests').
        try await withLiveServer({ $0.rules.resumeGraceMs = 0 }, logs: logs) { port, server, _ in
            let host = try await LiveClient(port: port)
            let hostID = try #require((try await host.next("client_hello")["payload"] as? [String: Any])?["client_id"] as? String)
            try await host.send(["type": "create_room", "payload": ["name": "Trail"]])
            let room = try #require(try await host.next("room_state")["room"] as? String)
            let guest = try await LiveClient(port: port)
            let guestID = try #require((try await guest.next("client_hello")["payload"] as? [String: Any])?["client_id"] as? String)
            try await guest.send(["type": "join_room", "room": room])
            _ = try await guest.next("room_state")
            try await guest.send(["type": "player_event", "room": room, "payload": ["action": "seek", "position": 3]])
            _ = try await guest.next("error")
            try await guest.send(["type": "client_log", "payload": ["category": "player", "message": "stalled"]])
            try await guest.send(["type": "leave_room"])
            _ = try await guest.next("room_list")
            try await guest.close()
            try await host.close()
            #expect(try await eventually { server.gateway.connectionCount == 0 })

            #expect(logs.lines("Room created", ["room_id": room, "client_id": hostID]).count == 1)
            #expect(logs.lines("Member joined", ["room_id": room, "client_id": guestID, "members": "2"]).count == 1)
            #expect(logs.lines("Error sent", ["client_id": guestID, "room_id": room, "code": "HOST_PERMISSION_REQUIRED"]).count == 1)
            #expect(logs.lines("Client log", ["client_id": guestID, "category": "player", "client_message": "stalled"]).count == 1)
            #expect(logs.lines("Member left", ["room_id": room, "client_id": guestID, "members": "1"]).count == 1)
            #expect(logs.lines("Connection closed", ["client_id": guestID, "reason": "client"]).count == 1)
            // Logged after the input's update, which is what connectionCount sees: waited for.
            #expect(try await eventually { logs.lines("Room closed", ["room_id": room, "reason": "empty"]).count == 1 })
        }
    }

    @Test func closeCausesHaveOneCodeEach() {
        let codes = CloseReasons.all.compactMap(\.code)
        #expect(Set(codes).count == codes.count, "a code names its reason")
        #expect(Set(CloseReasons.all.map(\.reason)).count == CloseReasons.all.count)
        #expect(CloseReasons.reason(for: 4000) == "idle")
        #expect(CloseReasons.reason(for: 4003) == "slow_client")
        #expect(CloseReasons.reason(for: 1001) == "shutdown")
        #expect(CloseReasons.reason(for: nil) == "client")
        #expect(CloseReasons.reason(for: 4999) == "other")
        #expect(CloseReasons.reason(for: 4001) == "session_taken_over", "4001 is PROTOCOL.md §13's takeover")
    }

    @Test func theBuildSaysWhichRevisionItIs() async throws {
        let version = try ServerProcess(arguments: ["--version"])
        #expect(try await version.exitStatus(within: .seconds(10)) == 0)
        let line = version.logText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line == BuildInfo.versionLine)
        // Built from this checkout: the revision is its HEAD (when git is there to ask).
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "-C", ServerProcess.binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path,
                         "rev-parse", "--short=12", "HEAD"]
        let pipe = Pipe()
        git.standardOutput = pipe
        git.standardError = FileHandle.nullDevice
        try git.run()
        git.waitUntilExit()
        let head = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if git.terminationStatus == 0 && ProcessInfo.processInfo.environment["OWP_BUILD_REVISION"] == nil {
            #expect(BuildInfo.revision == head, "a commit after the build? rebuild")
        }
        #expect(BuildInfo.revision != "unknown")
        try await withLiveServer { _, _, http in
            let info = try await http.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(info.contains(#"owp_build_info{version="\#(BuildInfo.version)",revision="\#(BuildInfo.revision)",protocol_version="1"} 1"#))
        }
    }

    @Test func aStartupFailureInJSONModeIsAJSONLine() async throws {
        let server = try ServerProcess(arguments: ["--port", "70000"], environment: ["LOG_FORMAT": "json"])
        let status = try await server.exitStatus(within: .seconds(10))
        #expect(status != nil && status != 0)
        let lines = server.logText.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count == 1, "one line: \(server.logText)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines.first.map { Array($0.utf8) } ?? [])) as? [String: Any])
        #expect(object["level"] as? String == "critical")
        #expect(object["message"] as? String == "Start-up failed")
        #expect((object["error"] as? String)?.contains("PORT") == true)
    }

    @Test func helpGroupsTheSettingsAndHidesTestFlags() async throws {
        let help = try ServerProcess(arguments: ["--help"])
        #expect(try await help.exitStatus(within: .seconds(10)) == 0)
        for group in ["SERVER:", "SYNC RULES:", "TRANSPORT AND LIMITS:", "AUTHENTICATION", "ADMIN API", "SHUTDOWN:"] {
            #expect(help.logText.contains(group), "\(group)")
        }
        #expect(!help.logText.contains("echo-conformance"))
        #expect(!help.logText.contains("fanout-ceiling"))
        #expect(help.logText.contains("[PORT] (default \(ServerSettings().port))"))
    }

    @Test(arguments: [
        ("*", true), ("https://jellyfin.example.com", true), ("http://localhost:8096", true), ("http://10.0.0.5:8096", true),
        ("https://[::1]:8920", true), ("https://jellyfin.example.com/", false), ("jellyfin.example.com", false),
        ("https://jellyfin.example.com/web", false), ("ftp://x", false), ("https://", false), ("https://x:99999", false),
        ("https://x:", false), ("REPLACE-ME", false), ("https://a b", false),
    ])
    func originEntriesAreValidated(entry: String, valid: Bool) {
        #expect(AdmissionPolicy.isValidOriginEntry(entry) == valid)
        let resolved = Result { try ServerCommand.parse([]).resolve(environment: ["ALLOWED_ORIGINS": entry]) }
        if valid {
            #expect((try? resolved.get())?.admission.allowedOrigins == [entry])
        } else if case .failure(let error) = resolved {
            #expect(String(describing: error).contains("ALLOWED_ORIGINS"))
        } else {
            Issue.record("'\(entry)' accepted")
        }
    }
}

/// The log throttle, on a manual clock.
@Suite struct LogThrottleTests {
    final class ManualUptime: Sendable {
        let value = Mutex<Duration>(.zero)
        func advance(_ by: Duration) { value.withLock { $0 += by } }
    }

    @Test func aKindIsCappedPerWindowAndReportsWhatItSuppressed() {
        let clock = ManualUptime()
        let throttle = LogThrottle(budgets: [.refusal: .init(lines: 3, per: .seconds(10))]) { clock.value.withLock { $0 } }
        let first = (0..<5).map { _ in throttle.admit(.refusal) }
        #expect(first == [.write(suppressedBefore: 0), .write(suppressedBefore: 0), .write(suppressedBefore: 0), .suppress, .suppress])
        clock.advance(.seconds(9))
        #expect(throttle.admit(.refusal) == .suppress)
        clock.advance(.seconds(1))
        #expect(throttle.admit(.refusal) == .write(suppressedBefore: 3), "the first line of a new window says how many were dropped")
        #expect(throttle.admit(.refusal) == .write(suppressedBefore: 0))
        #expect(throttle.admit(.errorReply) == .write(suppressedBefore: 0), "a kind without a budget is never throttled")
    }

    @Test func jsonLogLinesKeepNumbersAsNumbers() throws {
        let line = try #require(JSONLogHandler.line(
            label: "t", level: .info, message: "Member joined",
            metadata: ["members": .stringConvertible(3), "client_id": .string("c"), "ok": .stringConvertible(true), "ratio": .stringConvertible(0.5)]))
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["members"] as? Int == 3)
        #expect(object["ok"] as? Bool == true)
        #expect(object["ratio"] as? Double == 0.5)
        #expect(object["client_id"] as? String == "c")
        #expect(String(decoding: line, as: UTF8.self).contains(#""members":3"#))
    }
}

/// The panels' numbers, from a live server: what the dashboard shows is what happened.
@Suite struct DashboardNumbersTests {
    @Test func membersRoomSizesAndBytesAreReadAtScrape() async throws {
        try await withLiveServer { port, _, http in
            let host = try await LiveClient(port: port)
            try await host.send(["type": "create_room", "payload": ["name": String(repeating: "a long room name ", count: 20)]])
            let room = try #require(try await host.next("room_state")["room"] as? String)
            let guest = try await LiveClient(port: port, compression: true)
            try await guest.send(["type": "join_room", "room": room])
            _ = try await guest.next("room_state")
            try await guest.send(["type": "participant_status", "room": room, "payload": ["status": "buffering"]])
            try await Task.sleep(for: .milliseconds(400))  // past the status coalescing window
            let text = try await http.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            func value(_ series: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            #expect(value(#"owp_participants{status="none"}"#) == 1, "the host, who reported no status, is a member")
            #expect(value(#"owp_participants{status="buffering"}"#) == 1)
            #expect(value(#"owp_rooms_by_members{members="2"}"#) == 1, "a steady room is counted without any join or leave")
            #expect(value(#"owp_rooms_by_sync{sync="paused"}"#) == 1, "a paused room has no timeline to keep, whatever its members say")
            #expect(value(#"owp_rooms_by_sync{sync="out_of_step"}"#) == 0)
            #expect((value("owp_websocket_sent_bytes_total") ?? 0) > 0)
            #expect((value("owp_message_sent_bytes_total") ?? 0) > (value("owp_websocket_sent_bytes_total") ?? .infinity) / 10)
            #expect((value("owp_message_received_bytes_total") ?? 0) > 0)
            // owp_tcp_connections: the test harness's listener bypasses the delegate; ConnectionBoundTests reads it from the real binary.
            // Buckets that tell loopback from LAN, a fixed 1.5 s lead exactly, and an hour-old report.
            for bound in [#"owp_client_rtt_seconds_bucket{le="0.0002"}"#, #"owp_play_lead_seconds_bucket{le="1.5"}"#, #"owp_sync_drift_seconds_bucket{le="3600.0"}"#] {
                #expect(value(bound) != nil, "\(bound)")
            }
            try await guest.close()
            try await host.close()
        }
    }

    /// A playing room whose only guest says it is catching up is out of step, on the dashboard
    /// and in the admin API (docs/sync.md § Per room).
    @Test func aRoomsSyncIsReadAtScrape() async throws {
        try await withLiveServer { port, _, http in
            let host = try await LiveClient(port: port)
            try await host.send(["type": "create_room", "payload": [:]])
            let room = try #require(try await host.next("room_state")["room"] as? String)
            let guest = try await LiveClient(port: port)
            try await guest.send(["type": "join_room", "room": room])
            _ = try await guest.next("room_state")
            try await guest.send(["type": "ready", "room": room])
            try await host.send(["type": "player_event", "room": room, "payload": ["action": "play", "position": 3]])
            _ = try await guest.next("player_event")
            func value(_ series: String) async throws -> Double? {
                let text = try await http.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
                return text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            #expect(try await value(#"owp_rooms_by_sync{sync="unmeasured"}"#) == 1, "playing, nothing reported yet")
            try await guest.send(["type": "participant_status", "room": room, "payload": ["status": "catching_up"]])
            var outOfStep: Double?
            for _ in 0..<50 where outOfStep != 1 {
                try await Task.sleep(for: .milliseconds(100))
                outOfStep = try await value(#"owp_rooms_by_sync{sync="out_of_step"}"#)
            }
            #expect(outOfStep == 1, "its one guest is catching up")
            #expect(try await value(#"owp_rooms_by_sync{sync="unmeasured"}"#) == 0)
            try await guest.close()
            try await host.close()
        }
    }
}
