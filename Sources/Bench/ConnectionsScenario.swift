import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization

/// `connections`: open N connections at a steady ramp, optionally grouped into rooms, hold them
/// idle, and report the handshake rate and the server's resident memory per connection (its
/// `process_resident_memory_bytes` before the first connection and after the hold).
///
/// `--client hummingbird` opens them with HummingbirdWSClient instead (one task and one async
/// inbound sequence per connection, lobby only): the check of whether that client scales to
/// 10 000 connections from one process.
struct ConnectionsOptions: Sendable {
    enum Client: String, Sendable { case nio, hummingbird }
    var count = 1000
    var roomSize = 10
    var rampPerSecond: Double = 1000
    var hold: Double = 10
    var concurrency = 256
    var client: Client = .nio
    var progressInterval: Double = 1
}

final class ConnectionsScenario: Sendable {
    let harness: Harness
    let options: ConnectionsOptions

    init(harness: Harness, options: ConnectionsOptions) {
        self.harness = harness
        self.options = options
    }

    func run() async throws -> RunResult {
        let counters = harness.counters
        let options = self.options
        let before = try? await HTTPGet.metrics(harness.url, group: harness.group)
        let generatorBefore = SelfStats.residentBytes()
        let cpuBefore = SelfStats.cpuSeconds()
        let pacer = Pacer(perSecond: options.rampPerSecond)
        let start = ContinuousClock.now
        let progress = Task {
            await progressLoop(scenario: "connections", interval: options.progressInterval, counters: counters, recorders: harness.recorders, series: .handshake, start: start)
        }
        var result = RunResult()
        let rampSeconds: Double
        let afterRamp: MetricsSample?
        let afterHold: MetricsSample?
        let opened: Int
        switch options.client {
        case .nio:
            let roomSize = max(options.roomSize, 1)
            let rooms = (options.count + roomSize - 1) / roomSize
            let built = await harness.forEach(0..<rooms, limit: max(options.concurrency / roomSize, 1)) { index in
                let members = min(roomSize, options.count - index * roomSize)
                if options.roomSize == 0 {
                    await pacer.wait()
                    let socket = try await self.harness.connect(on: self.harness.loop(index))
                    return Harness.BuiltRoom(index: index, id: "", loop: socket.eventLoop, sockets: [socket])
                }
                return try await self.harness.buildRoom(index: index, members: members, ready: true, pacer: pacer)
            }
            rampSeconds = (ContinuousClock.now - start).seconds
            opened = counters.openConnections.load(ordering: .relaxed)
            Console.line("[connections] \(opened) open after \(String(format: "%.1f", rampSeconds)) s; holding \(options.hold) s")
            let sockets = built.flatMap(\.sockets)
            for socket in sockets { socket.eventLoop.execute { socket.takeOver { _ in counters.messagesReceived.add(1, ordering: .relaxed) } } }
            afterRamp = try? await HTTPGet.metrics(harness.url, group: harness.group)
            try await Task.sleep(for: .seconds(options.hold))
            afterHold = try? await HTTPGet.metrics(harness.url, group: harness.group)
            result.metrics["rooms"] = Double(options.roomSize == 0 ? 0 : built.count)
            result.metrics["held_at_end"] = Double(counters.openConnections.load(ordering: .relaxed))
            result.metrics["generator_rss_mib"] = Double(SelfStats.residentBytes()) / 1_048_576
            await harness.closeAll(sockets)
        case .hummingbird:
            (rampSeconds, opened, afterRamp, afterHold) = try await runHummingbirdClient(pacer: pacer, start: start, result: &result)
        }
        progress.cancel()

        let handshake = harness.recorders.summaries()[Series.handshake.rawValue]
        result.latency = handshake.map { [Series.handshake.rawValue: $0] } ?? [:]
        result.metrics["connections_requested"] = Double(options.count)
        result.metrics["connections_opened"] = Double(opened)
        result.metrics["ramp_seconds"] = rampSeconds
        result.metrics["handshakes_per_second"] = Double(opened) / max(rampSeconds, 0.001)
        result.metrics["generator_rss_mib_delta"] = Double(SelfStats.residentBytes() - generatorBefore) / 1_048_576
        result.metrics["generator_cpu_seconds"] = SelfStats.cpuSeconds() - cpuBefore
        if let value = before?.residentBytes { result.metrics["server_rss_mib_before"] = value / 1_048_576 }
        if let value = afterRamp?.residentBytes { result.metrics["server_rss_mib_after_ramp"] = value / 1_048_576 }
        if let value = afterHold?.residentBytes { result.metrics["server_rss_mib_after_hold"] = value / 1_048_576 }
        if let value = afterHold?.openFDs { result.metrics["server_open_fds_after_hold"] = value }
        if let value = afterHold?["owp_connections_active"] { result.metrics["server_connections_active_after_hold"] = value }
        if let value = afterHold?["owp_rooms_active"] { result.metrics["server_rooms_active_after_hold"] = value }
        if let b = before?.residentBytes, let a = afterHold?.residentBytes, opened > 0 {
            result.metrics["server_rss_kib_per_connection"] = (a - b) / 1024 / Double(opened)
        }
        if before == nil { result.notes.append("The server's /metrics could not be read: no memory figures.") }
        result.errors = counters.errors
        result.errorTotal = counters.errorTotal
        return result
    }

    /// The same ramp with HummingbirdWSClient: one `Task` per connection running `WebSocketClient.connect`.
    private func runHummingbirdClient(
        pacer: Pacer, start: ContinuousClock.Instant, result: inout RunResult
    ) async throws -> (Double, Int, MetricsSample?, MetricsSample?) {
        let counters = harness.counters
        let recorder = harness.recorders.shared
        final class Writers: Sendable { let list = Mutex<[WebSocketOutboundWriter]>([]) }
        let writers = Writers()
        let (openedStream, openedSink) = AsyncStream<Void>.makeStream()
        let url = "ws://\(harness.url.host):\(harness.url.port)\(harness.url.path)"
        let logger = {
            var logger = Logger(label: "owp-bench")
            logger.logLevel = .critical
            return logger
        }()
        let group = harness.group
        let options = self.options
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            for _ in 0..<options.count {
                await pacer.wait()
                let began = BenchClock.micros()
                tasks.addTask {
                    do {
                        try await WebSocketClient.connect(
                            url: url, configuration: .init(maxFrameSize: 1 << 22), eventLoopGroup: group, logger: logger
                        ) { inbound, outbound, _ in
                            recorder.record(.handshake, micros: BenchClock.micros() - began)
                            counters.openConnections.add(1, ordering: .relaxed)
                            writers.list.withLock { $0.append(outbound) }
                            openedSink.yield()
                            for try await _ in inbound.messages(maxSize: 1 << 22) { counters.messagesReceived.add(1, ordering: .relaxed) }
                            counters.openConnections.subtract(1, ordering: .relaxed)
                        }
                    } catch {
                        counters.connectFailed(error)
                        openedSink.yield()
                    }
                }
            }
            var settled = 0
            for await _ in openedStream {
                settled += 1
                if settled == options.count { break }
            }
            let rampSeconds = (ContinuousClock.now - start).seconds
            let opened = counters.openConnections.load(ordering: .relaxed)
            Console.line("[connections] \(opened) open (HummingbirdWSClient) after \(String(format: "%.1f", rampSeconds)) s; holding \(options.hold) s")
            let afterRamp = try? await HTTPGet.metrics(harness.url, group: harness.group)
            try await Task.sleep(for: .seconds(options.hold))
            let afterHold = try? await HTTPGet.metrics(harness.url, group: harness.group)
            result.metrics["held_at_end"] = Double(counters.openConnections.load(ordering: .relaxed))
            result.metrics["generator_rss_mib"] = Double(SelfStats.residentBytes()) / 1_048_576
            result.notes.append("HummingbirdWSClient: one task per connection, connections stay in the lobby (no rooms).")
            counters.stopping.store(true, ordering: .relaxed)
            for writer in writers.list.withLock({ $0 }) {
                tasks.addTask { try? await writer.close(.normalClosure, reason: nil) }
            }
            try await tasks.waitForAll()
            return (rampSeconds, opened, afterRamp, afterHold)
        }
    }
}
