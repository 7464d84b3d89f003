import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import App
@testable import Bench

/// Keeps owp-bench from rotting: each scenario runs for a moment at tiny sizes against a real
/// in-process server over real sockets, and must deliver messages with zero errors.
@Suite struct BenchSmokeTests {
    @Test func partyDeliversWithoutErrors() async throws {
        try await withBenchServer { port in
            let harness = try Harness(url: ServerURL("ws://127.0.0.1:\(port)/ws"), group: MultiThreadedEventLoopGroup.singleton)
            var options = PartyOptions()
            options.rooms = 2
            options.members = 3
            options.duration = 2
            options.warmup = 0
            options.commandInterval = 0.4
            options.stateInterval = 0.5
            options.pingInterval = 0.5
            options.chatInterval = 0.5
            options.drain = 0.4
            options.progressInterval = 0
            let result = try await PartyScenario(harness: harness, options: options).run()
            #expect(result.errorTotal == 0, "errors: \(result.errors)")
            #expect(result.metrics["connections"] == 6)
            #expect((result.metrics["deliveries_received"] ?? 0) > 0)
            #expect(result.metrics["deliveries_missing"] == 0)
            #expect((result.metrics["pongs_received"] ?? 0) > 0)
            #expect((result.latency["delivery_player_event"]?.count ?? 0) > 0)
            #expect((result.latency["delivery_chat"]?.count ?? 0) > 0)
            #expect((result.latency["scheduled_play_margin"]?.count ?? 0) > 0)
            #expect(result.metrics["server_rss_mib_end"] != nil, "the server's /metrics was read")
            #expect(!Targets.party(result).isEmpty)
        }
    }

    @Test func everyDroppedMemberResumesItsSeat() async throws {
        try await withBenchServer { port in
            let harness = try Harness(url: ServerURL("ws://127.0.0.1:\(port)/ws"), group: MultiThreadedEventLoopGroup.singleton)
            var options = ResumeOptions()
            options.rooms = 2
            options.members = 3
            options.delay = 0.1
            let result = try await ResumeScenario(harness: harness, options: options).run()
            #expect(result.errorTotal == 0, "errors: \(result.errors)")
            #expect(result.metrics["members"] == 6)
            #expect(result.metrics["seats_back"] == 6)
            #expect(result.metrics["server_sessions_away_after_drop"] == 6, "the server saw every drop")
            #expect(result.metrics["server_sessions_away_after_resume"] == 0)
            #expect(result.metrics["server_resumes_token_resumed"] == 6)
            #expect(result.metrics["server_rooms_active_after_resume"] == 2, "no room closed")
            #expect(result.latency["resume"]?.count == 6)
            #expect(Targets.resume(result).map(\.met) == [true])
        }
    }

    @Test func fanoutAndCeilingDeliverWithoutErrors() async throws {
        var options = FanoutOptions()
        options.rooms = 1
        options.members = 4
        options.rate = 20
        options.duration = 1
        options.warmup = 0.3
        options.drain = 0.3
        options.progressInterval = 0
        for ceiling in [false, true] {
            try await withBenchServer({ $0.fanoutCeiling = ceiling }) { [options] port in
                let harness = try Harness(url: ServerURL("ws://127.0.0.1:\(port)/ws"), group: MultiThreadedEventLoopGroup.singleton)
                let result = try await FanoutScenario(harness: harness, options: options, ceiling: ceiling).run()
                #expect(result.errorTotal == 0, "ceiling \(ceiling): \(result.errors)")
                #expect((result.metrics["delivered_per_second"] ?? 0) > 0, "ceiling \(ceiling)")
                #expect((result.latency["fanout_delivery"]?.count ?? 0) > 0, "ceiling \(ceiling)")
            }
        }
    }

    @Test func connectionsAreHeld() async throws {
        try await withBenchServer { port in
            let harness = try Harness(url: ServerURL("ws://127.0.0.1:\(port)/ws"), group: MultiThreadedEventLoopGroup.singleton)
            var options = ConnectionsOptions()
            options.count = 20
            options.roomSize = 5
            options.hold = 0.2
            options.progressInterval = 0
            let result = try await ConnectionsScenario(harness: harness, options: options).run()
            #expect(result.errorTotal == 0, "errors: \(result.errors)")
            #expect(result.metrics["connections_opened"] == 20)
            #expect(result.metrics["held_at_end"] == 20)
            #expect(result.metrics["rooms"] == 4)
            #expect(result.metrics["server_rss_kib_per_connection"] != nil)
        }
    }

    @Test func scanReadsServerFields() {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        buffer.writeString(
            #"{"type":"player_event","room":"r","client":"c","payload":{"action":"seek","position":107.25,"play_state":"paused","target_server_ts":1732700000300},"ts":1732700000000,"server_ts":1732700000000}"#
        )
        #expect(JSONScan.kind(of: buffer) == .playerEvent)
        #expect(JSONScan.string(.action, in: buffer) == "seek")
        #expect(JSONScan.number(.position, in: buffer) == 107.25)
        #expect(JSONScan.number(.serverTS, in: buffer) == 1_732_700_000_000)
        #expect(JSONScan.number(.targetServerTS, in: buffer) == 1_732_700_000_300)
        var chat = ByteBufferAllocator().buffer(capacity: 0)
        chat.writeString(#"{"type":"chat_message","payload":{"username":"u","text":"F12:98765"},"ts":1}"#)
        #expect(FanoutRoom.stamp(chat).map { [$0.0, Int($0.1)] } == [12, 98765])
    }
}

/// A real server on a free loopback port (the bench's own connections need no Origin; limits
/// are the defaults, which the tiny sizes stay under).
func withBenchServer(_ configure: @escaping (inout ServerSettings) -> Void = { _ in }, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    var settings = ServerSettings()
    settings.host = "127.0.0.1"
    settings.port = 0
    settings.transport.closeTimeout = .seconds(2)
    configure(&settings)
    var logger = Logger(label: "bench-smoke-server")
    logger.logLevel = .warning
    let app = SessionServer(settings: settings, logger: logger).makeApplication()
    try await app.test(.live) { client in
        guard let port = client.port else { throw BenchError.http("no port") }
        try await body(port)
    }
}
