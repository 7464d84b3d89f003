import NIOCore
import Synchronization

/// `fanout`: rooms of 20 members, every member chatting at `rate` messages/s; every message
/// goes to every member of its room, the sender included. Reports messages delivered per second.
///
/// Flow control: a member has at most `window` of its own messages in flight (sent and not yet
/// echoed back to it). Below saturation it sends at exactly `rate`; at saturation the offered
/// load adapts to what the server delivers instead of filling its bounded outbound queues
/// (which would end in 1008 slow-client disconnects, or in RATE_LIMITED when a backlog is
/// handled in one burst). So "delivered per second" is the server's capacity, without errors.
///
/// Ceiling mode (`owp-server --fanout-ceiling`): the same sockets, rooms and timing; a member's
/// first message names its group, later ones are relayed verbatim to the whole group. Members
/// send text shaped like the server's own `chat_message` broadcast (same size), so both runs
/// write the same bytes per delivery.
struct FanoutOptions: Sendable {
    var rooms = 10
    var members = 20
    var rate: Double = 25
    var window = 2
    var duration: Double = 20
    var warmup: Double = 3
    var rampPerSecond: Double = 2000
    var setupConcurrency = 32
    var drain: Double = 2
    var progressInterval: Double = 1
}

final class FanoutScenario: Sendable {
    let harness: Harness
    let options: FanoutOptions
    let ceiling: Bool
    let throttled = Atomic<Int>(0)
    let deliveredInWindow = Atomic<Int>(0)
    let measureFrom = Atomic<UInt64>(UInt64.max)
    let measureUntil = Atomic<UInt64>(UInt64.max)

    init(harness: Harness, options: FanoutOptions, ceiling: Bool) {
        self.harness = harness
        self.options = options
        self.ceiling = ceiling
    }

    func run() async throws -> RunResult {
        let counters = harness.counters
        let options = self.options
        let name = ceiling ? "fanout/ceiling" : "fanout"
        let metricsBefore = try? await HTTPGet.metrics(harness.url, group: harness.group)
        let pacer = Pacer(perSecond: options.rampPerSecond)
        let setupStart = ContinuousClock.now
        let built: [Harness.BuiltRoom]
        if ceiling {
            built = await harness.forEach(0..<options.rooms, limit: options.setupConcurrency) { index in
                try await self.buildGroup(index: index, pacer: pacer)
            }
        } else {
            built = await harness.forEach(0..<options.rooms, limit: options.setupConcurrency) { index in
                try await self.harness.buildRoom(index: index, members: options.members, ready: false, pacer: pacer)
            }
        }
        guard !built.isEmpty else { throw BenchError.handshakeRefused }
        let setupSeconds = (ContinuousClock.now - setupStart).seconds
        Console.line("[\(name)] \(built.count) rooms, \(counters.openConnections.load(ordering: .relaxed)) connections set up in \(String(format: "%.1f", setupSeconds)) s")
        try await Task.sleep(for: .milliseconds(300))  // every group join has landed
        let metricsAfterSetup = try? await HTTPGet.metrics(harness.url, group: harness.group)

        let rooms = built.map { FanoutRoom(scenario: self, built: $0) }
        let start = ContinuousClock.now
        let startMicros = BenchClock.micros()
        measureFrom.store(startMicros + UInt64(options.warmup * 1_000_000), ordering: .relaxed)
        measureUntil.store(startMicros + UInt64((options.warmup + options.duration) * 1_000_000), ordering: .relaxed)
        let cpuBefore = SelfStats.cpuSeconds()
        for room in rooms { try await room.loop.submit { room.start() }.get() }
        let progress = Task { await progressLoop(scenario: name, interval: options.progressInterval, counters: counters, recorders: harness.recorders, series: .fanout, start: start) }
        try await Task.sleep(for: .seconds(options.warmup + options.duration))
        for room in rooms { try await room.loop.submit { room.stopSending() }.get() }
        let cpuSeconds = SelfStats.cpuSeconds() - cpuBefore
        try await Task.sleep(for: .seconds(options.drain))
        progress.cancel()
        let metricsAtEnd = try? await HTTPGet.metrics(harness.url, group: harness.group)
        await harness.closeAll(rooms.flatMap(\.sockets))

        var result = RunResult()
        let connections = built.reduce(0) { $0 + $1.sockets.count }
        let delivered = Double(deliveredInWindow.load(ordering: .relaxed))
        result.metrics["rooms"] = Double(built.count)
        result.metrics["connections"] = Double(connections)
        result.metrics["offered_messages_per_second"] = Double(connections) * options.rate
        result.metrics["offered_deliveries_per_second"] = Double(connections) * options.rate * Double(options.members)
        result.metrics["delivered_per_second"] = delivered / options.duration
        result.metrics["sent_per_second"] = Double(counters.messagesSent.load(ordering: .relaxed)) / (options.warmup + options.duration)
        result.metrics["sends_skipped_by_window"] = Double(throttled.load(ordering: .relaxed))
        result.metrics["measured_seconds"] = options.duration
        result.metrics["setup_seconds"] = setupSeconds
        result.metrics["generator_cpu_seconds_per_second"] = cpuSeconds / (options.warmup + options.duration)
        result.latency = harness.recorders.summaries().filter { $0.key == Series.fanout.rawValue }
        if let before = metricsAfterSetup ?? metricsBefore, let end = metricsAtEnd {
                if let value = end.residentBytes { result.metrics["server_rss_mib_end"] = value / 1_048_576 }
            result.metrics["server_slow_client_disconnects"] = end.total("owp_slow_client_disconnects_total") - before.total("owp_slow_client_disconnects_total")
            if let high = end.queuePeak { result.metrics["server_outbound_queue_high_water"] = high }
        }
        result.errors = counters.errors
        result.errorTotal = counters.errorTotal
        result.notes.append(
            "Delivered = chat messages received by any member during the \(Int(options.duration)) s after a \(Int(options.warmup)) s warm-up; each member keeps ≤ \(options.window) of its own messages in flight."
        )
        return result
    }

    /// Ceiling mode: M sockets that name the same group.
    private func buildGroup(index: Int, pacer: Pacer) async throws -> Harness.BuiltRoom {
        let loop = harness.loop(index)
        let sockets = try await withThrowingTaskGroup(of: (Int, BenchSocket).self) { group in
            for member in 0..<options.members {
                group.addTask {
                    await pacer.wait()
                    let socket = try await self.harness.connect(on: loop)
                    socket.sendFromAnywhere("group-\(index)")
                    return (member, socket)
                }
            }
            var sockets: [(Int, BenchSocket)] = []
            for try await socket in group { sockets.append(socket) }
            return sockets.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return Harness.BuiltRoom(index: index, id: FanoutRoom.fakeID(index), loop: loop, sockets: sockets)
    }
}

/// One room's members, confined to the room's loop.
final class FanoutRoom: @unchecked Sendable {
    let scenario: FanoutScenario
    let loop: any EventLoop
    let id: String
    let index: Int
    let sockets: [BenchSocket]
    let recorder: Recorder
    let counters: BenchCounters
    private var outstanding: [Int]
    private var tasks: [RepeatedTask] = []
    /// Ceiling mode: the fixed parts of a message shaped like the server's chat broadcast.
    private let clientIDs: [String]

    init(scenario: FanoutScenario, built: Harness.BuiltRoom) {
        self.scenario = scenario
        self.loop = built.loop
        self.id = built.id
        self.index = built.index
        self.sockets = built.sockets
        self.recorder = scenario.harness.recorders.recorder(for: built.loop)
        self.counters = scenario.harness.counters
        self.outstanding = Array(repeating: 0, count: built.sockets.count)
        self.clientIDs = built.sockets.indices.map { FanoutRoom.fakeID(built.index * 1000 + $0) }
    }

    /// A UUID-shaped id (36 characters, like the server's room and client ids).
    static func fakeID(_ n: Int) -> String {
        let hex = String(n, radix: 16)
        return "00000000-0000-4000-8000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }

    func start() {
        let period = TimeAmount.nanoseconds(Int64(1e9 / scenario.options.rate))
        for (member, socket) in sockets.enumerated() {
            socket.takeOver { message in self.received(message, member: member) }
            let phase = TimeAmount.nanoseconds(Int64.random(in: 0..<max(period.nanoseconds, 1)))
            tasks.append(loop.scheduleRepeatedTask(initialDelay: phase, delay: period) { _ in self.tick(member) })
        }
    }

    func stopSending() {
        for task in tasks { task.cancel() }
        tasks.removeAll()
    }

    private func tick(_ member: Int) {
        guard outstanding[member] < scenario.options.window else {
            scenario.throttled.add(1, ordering: .relaxed)
            return
        }
        outstanding[member] += 1
        counters.messagesSent.add(1, ordering: .relaxed)
        let text = "F\(member):\(BenchClock.micros())"
        let ts = BenchClock.ts()
        if scenario.ceiling {
            sockets[member].send(
                #"{"type":"chat_message","room":"\#(id)","client":"\#(clientIDs[member])","payload":{"username":"member-\#(index)-\#(member)","text":"\#(text)"},"ts":\#(ts),"server_ts":\#(ts)}"#
            )
        } else {
            sockets[member].send(#"{"type":"chat_message","room":"\#(id)","payload":{"text":"\#(text)"},"ts":\#(ts)}"#)
        }
    }

    private func received(_ message: ByteBuffer, member: Int) {
        let now = BenchClock.micros()
        counters.messagesReceived.add(1, ordering: .relaxed)
        switch JSONScan.kind(of: message) {
        case .chatMessage:
            guard let (sender, sentAt) = Self.stamp(message) else { return }
            if sender == member { outstanding[member] = max(outstanding[member] - 1, 0) }
            if sentAt >= scenario.measureFrom.load(ordering: .relaxed) && now <= scenario.measureUntil.load(ordering: .relaxed) {
                scenario.deliveredInWindow.add(1, ordering: .relaxed)
                recorder.record(.fanout, micros: now &- sentAt)
            }
            counters.delivered.add(1, ordering: .relaxed)
        case .error:
            counters.protocolError(code: JSONScan.string(.code, in: message) ?? "?")
        default:
            break
        }
    }

    /// Sender index and send time of a chat text `F<member>:<micros>`.
    static func stamp(_ message: ByteBuffer) -> (Int, UInt64)? {
        message.withUnsafeReadableBytes { bytes -> (Int, UInt64)? in
            guard let start = JSONScan.valueStart(.text, in: bytes), start + 2 < bytes.count, bytes[start + 1] == UInt8(ascii: "F") else { return nil }
            var index = start + 2
            var sender = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                sender = sender * 10 + Int(bytes[index] - 48)
                index += 1
            }
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":"), let sent = JSONScan.parseNumber(bytes, from: index + 1) else { return nil }
            return (sender, UInt64(sent))
        }
    }
}
