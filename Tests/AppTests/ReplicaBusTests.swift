import Foundation
import Logging
import Observability
import PostgresNIO
import Synchronization
import Testing
import Transport
import WatchPartyCore

@testable import App

/// The bus between replicas against a real PostgreSQL (PROTOCOL.md §14): order, batching,
/// notifications too big for NOTIFY, and links dropped when a peer goes.
@Suite(.enabled(if: TestDatabase.enabled, "needs PostgreSQL's server binaries or OWP_TEST_DATABASE_URL (OWP_REQUIRE_POSTGRES=1 makes this a failure)"))
struct ReplicaBusTests {
    static let logger = Logger(label: "bus-test")

    /// Frames received by a bus, in order, and the links it dropped.
    final class Inbox: Sendable {
        let frames = Mutex<[BusFrame]>([])
        let drops = Mutex<[(String?, ReplicaBus.LinkDrop)]>([])

        func wait(for count: Int, within limit: Duration = .seconds(10)) async throws -> [BusFrame] {
            let deadline = ContinuousClock.now + limit
            while frames.withLock({ $0.count }) < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            return frames.withLock { $0 }
        }
    }

    struct Running {
        let bus: ReplicaBus
        let metrics: MetricsRegistry
        let inbox: Inbox
        let task: Task<Void, Never>
    }

    /// A bus for `replica` on `url`'s database, running and listening.
    static func start(_ replica: String, url: String) async throws -> Running {
        let settings = try DatabaseSettings(url: url)
        let pool = PostgresClient(configuration: settings.clientConfiguration(connections: 2))
        let metrics = MetricsRegistry(version: "t", revision: "t", protocolVersion: 1, labels: .watchParty)
        let bus = ReplicaBus(replica: replica, pool: pool, listenConfiguration: { try settings.connectionConfiguration() }, metrics: metrics, logger: logger)
        let inbox = Inbox()
        bus.handle(
            received: { delivery in inbox.frames.withLock { $0.append(contentsOf: delivery.frames) } },
            dropped: { peer, reason in inbox.drops.withLock { $0.append((peer, reason)) } })
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await pool.run() }
                group.addTask { await bus.run() }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !bus.isListening, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(bus.isListening)
        // Listening and registered: its peers take it for live (a first heartbeat the database was
        // slow to take, on a busy machine, would have it dropped as gone by the first peer to look).
        while ContinuousClock.now < deadline, (try? await bus.directory.live(among: [replica]))?.contains(replica) != true {
            try await Task.sleep(for: .milliseconds(50))
        }
        return Running(bus: bus, metrics: metrics, inbox: inbox, task: task)
    }

    static func migrated() async throws -> String {
        let url = try await TestDatabase.fresh()
        try await TestDatabase.withClient(url: url) { client in _ = try await StoreSchema.migrate(client, logger: logger) }
        return url
    }

    /// A metric's value in `metrics`' exposition.
    static func value(_ name: String, in metrics: MetricsRegistry) -> Double {
        let text = metrics.exposition(MetricsRegistry.Snapshot(
            roomsActive: 0, authenticatedConnections: 0, participantsByStatus: [:], roomSizes: [], queuePeakDepth: 0, wireBytesReceived: 0,
            wireBytesSent: 0, tcpConnections: 0, tcpConnectionLimit: 0, tcpAcceptPauses: 0, requestHeadTimeouts: 0, requestBodiesTooLarge: 0))
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
    }

    @Test func framesArriveInOrderBatchedWithABigOneThroughTheSpillTable() async throws {
        let url = try await Self.migrated()
        let a = try await Self.start("host-a/aaaa0001", url: url)
        let b = try await Self.start("host-b/bbbb0002", url: url)
        defer { a.task.cancel(); b.task.cancel() }
        var sent: [BusFrame] = []
        for index in 0..<400 {
            // Past NOTIFY's 8000 bytes, with multi-byte characters: through owp_bus_spill.
            let text = index == 200 ? String(repeating: "é", count: 12_000) : "message \(index)"
            sent.append(.input(connection: "c\(index % 7)", text: text))
        }
        for frame in sent { a.bus.send(frame, to: b.bus.replica) }
        let received = try await b.inbox.wait(for: sent.count)
        #expect(received == sent, "every frame, in the order sent; links dropped: \(a.inbox.drops.withLock { $0.map(\.1) }) \(b.inbox.drops.withLock { $0.map(\.1) })")
        let notifications = Self.value("owp_bus_notifications_received_total", in: b.metrics)
        #expect(notifications >= 3 && notifications < 200, "batched: \(notifications) notifications for \(sent.count) frames")
        #expect(Self.value("owp_bus_spilled_total", in: a.metrics) >= 1)
        let left = try await TestDatabase.withClient(url: url) { client in
            var count = -1
            for try await rows in try await client.query("SELECT count(*) FROM owp_bus_spill").decode(Int.self) { count = rows }
            return count
        }
        #expect(left == 0, "a spilled notification is deleted as it is fetched")
    }

    @Test func oneMessageForSeveralConnectionsIsOneFrame() async throws {
        let url = try await Self.migrated()
        let a = try await Self.start("host-a/aaaa0003", url: url)
        let b = try await Self.start("host-b/bbbb0004", url: url)
        defer { a.task.cancel(); b.task.cancel() }
        let message = OutboundText("{\"type\":\"chat_message\"}")
        for name in ["x", "y", "z"] { #expect(a.bus.post(message, to: name, on: b.bus.replica)) }
        a.bus.post(OutboundText("{\"type\":\"other\"}"), to: "x", on: b.bus.replica)
        a.bus.wakeSender()
        let received = try await b.inbox.wait(for: 2)
        #expect(received == [.deliver(connections: ["x", "y", "z"], text: "{\"type\":\"chat_message\"}"), .deliver(connections: ["x"], text: "{\"type\":\"other\"}")])
    }

    @Test func aPeerThatStopsListeningHasItsLinkDropped() async throws {
        let url = try await Self.migrated()
        let a = try await Self.start("host-a/aaaa0005", url: url)
        let b = try await Self.start("host-b/bbbb0006", url: url)
        defer { a.task.cancel() }
        a.bus.send(.gone(connection: "c"), to: b.bus.replica)
        _ = try await b.inbox.wait(for: 1)
        b.task.cancel()  // its listener's session ends
        let stopped = ContinuousClock.now
        while a.inbox.drops.withLock({ $0.isEmpty }), ContinuousClock.now - stopped < .seconds(6) { try await Task.sleep(for: .milliseconds(20)) }
        let drops = a.inbox.drops.withLock { $0 }
        #expect(drops.count == 1 && drops.first?.0 == b.bus.replica && drops.first?.1 == .peerGone, "\(drops)")
        #expect(ContinuousClock.now - stopped < .seconds(3), "seen by the first heartbeat after its session ended")
    }

    /// A stalled database call delays a heartbeat past the live window: the peer is sent no new
    /// work, but the connections already relayed through it keep their link until the link window.
    @Test func aPeerHeardOfLateKeepsItsLinksUntilTheLinkWindow() async throws {
        let url = try await Self.migrated()
        let a = try await Self.start("host-a/aaaa0007", url: url)
        defer { a.task.cancel() }
        // A peer that listens (a session named after its channel) and whose heartbeats come late.
        let peer = "host-c/cccc0008"
        var configuration = try DatabaseSettings(url: url).connectionConfiguration()
        configuration.options.additionalStartupParameters.append(("application_name", ReplicaBus.channel(of: peer)))
        let listener = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 9, logger: Self.logger)
        func heard(secondsAgo: Double) async throws {
            try await listener.query(
                """
                INSERT INTO owp_replicas (replica, heard_at) VALUES (\(peer), now() - make_interval(secs => \(secondsAgo)))
                ON CONFLICT (replica) DO UPDATE SET heard_at = excluded.heard_at
                """, logger: Self.logger)
        }
        try await heard(secondsAgo: 0)
        a.bus.send(.gone(connection: "c"), to: peer)  // linked from now on
        // Past the live window by half a second; the link window leaves 2.5 s for a slow machine's loop.
        let late = ReplicaDirectory.liveWindowSeconds + 0.5
        let lateFor = ContinuousClock.now + .seconds(3.5)  // three of a's link checks at least
        while ContinuousClock.now < lateFor {
            try await heard(secondsAgo: late)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await a.bus.directory.live(among: [peer]).isEmpty, "not live: nothing new goes to it")
        #expect(a.inbox.drops.withLock { $0.isEmpty }, "its links stay: \(a.inbox.drops.withLock { $0 })")

        try await heard(secondsAgo: ReplicaDirectory.linkWindowSeconds + 1)
        let gone = ContinuousClock.now
        while a.inbox.drops.withLock({ $0.isEmpty }), ContinuousClock.now - gone < .seconds(5) { try await Task.sleep(for: .milliseconds(20)) }
        let drops = a.inbox.drops.withLock { $0 }
        #expect(drops.count == 1 && drops.first?.0 == peer && drops.first?.1 == .peerGone, "past the link window it is gone: \(drops)")
        try await listener.close()
    }

    @Test func payloadsStayUnderTheLimitAndKeepEveryFrame() throws {
        let frames = (0..<40).map { BusFrame.input(connection: "c", text: String(repeating: "x", count: 50 * $0)) }
        let payloads = try ReplicaBus.payloads(frames, from: "r/1")
        #expect(payloads.allSatisfy { $0.utf8.count <= ReplicaBus.payloadLimit })
        let decoded = try payloads.flatMap { try JSONDecoder().decode(BusBatch.self, from: Data($0.utf8)).frames }
        #expect(decoded == frames)
        #expect(payloads.count > 1 && payloads.count < frames.count)
        #expect(ReplicaBus.channel(of: "owp-server-7d9f/ab12cd34") == "owp_bus_ab12cd34_owp_server_7d9f")
    }
}
