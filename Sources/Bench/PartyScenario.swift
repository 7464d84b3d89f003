import NIOCore
import Synchronization

/// `party`: R rooms × M members doing what real watch parties do, measured end to end.
///
/// Each host reports its position (`state_update`) every `stateInterval` s, issues a command
/// every `commandInterval` s cycling play → seek → pause, and posts a chat message every
/// `chatInterval` s. Every member pings every `pingInterval` s; guests answer each command
/// with a `participant_status` as the upstream client does (this is what makes the server run
/// its status-flush timers, whose lateness it reports as `owp_scheduling_lateness_seconds`).
///
/// How latency is measured (one process sends and receives, so one monotonic clock serves):
/// - player events: the host records its send time under the command's `position` (unique per
///   room: 100 + 7·seq), which the server echoes in the `player_event` payload; each guest looks
///   it up on arrival. Scheduled plays also go back to the host; only guests are measured.
/// - chat: the text is `L<send time in µs>`; the server relays it to every member.
/// - state updates: keyed by the reported position like commands (most are filtered out by the
///   server as jitter, which is correct: a host in sync causes no relay).
/// - scheduled margin: `target_server_ts − arrival` in server time (wall clock, same machine),
///   i.e. how much of the 1500 ms (play) or 300 ms (pause/seek) lead is left when a guest gets
///   the command. A negative margin (arrived after its execution time) counts as `late`.
/// - ping: `client_ts` (µs) in the payload, echoed by `pong`: round-trip time.
struct PartyOptions: Sendable {
    var rooms = 10
    var members = 10
    var duration: Double = 30
    var warmup: Double = 3
    var commandInterval: Double = 5
    var stateInterval: Double = 1
    var pingInterval: Double = 2
    var chatInterval: Double = 5
    var statusReports = true
    var rampPerSecond: Double = 2000
    var setupConcurrency = 32
    var drain: Double = 2
    var progressInterval: Double = 1
}

final class PartyScenario: Sendable {
    let harness: Harness
    let options: PartyOptions
    let commandsSent = Atomic<Int>(0)
    let chatsSent = Atomic<Int>(0)
    let stateUpdatesSent = Atomic<Int>(0)
    let stateUpdatesRelayed = Atomic<Int>(0)
    let pingsSent = Atomic<Int>(0)
    let pongs = Atomic<Int>(0)
    let statusReportsSent = Atomic<Int>(0)
    let statusBroadcasts = Atomic<Int>(0)
    let lateCommands = Atomic<Int>(0)
    /// µs (monotonic): latencies of messages sent before this are not recorded (warm-up).
    let measureFrom = Atomic<UInt64>(UInt64.max)

    init(harness: Harness, options: PartyOptions) {
        self.harness = harness
        self.options = options
    }

    func run() async throws -> RunResult {
        let counters = harness.counters
        let metricsBefore = try? await HTTPGet.metrics(harness.url, group: harness.group)
        let setupStart = ContinuousClock.now
        let pacer = Pacer(perSecond: options.rampPerSecond)
        let options = self.options
        let built = await harness.forEach(0..<options.rooms, limit: options.setupConcurrency) { index in
            try await self.harness.buildRoom(index: index, members: options.members, ready: true, pacer: pacer)
        }
        guard !built.isEmpty else { throw BenchError.handshakeRefused }
        let setupSeconds = (ContinuousClock.now - setupStart).seconds
        Console.line("[party] \(built.count) rooms, \(counters.openConnections.load(ordering: .relaxed)) connections set up in \(String(format: "%.1f", setupSeconds)) s")
        try await Task.sleep(for: .milliseconds(300))  // the last `ready`s land before the first play
        let metricsAfterSetup = try? await HTTPGet.metrics(harness.url, group: harness.group)

        let rooms = built.map { PartyRoom(scenario: self, built: $0) }
        let start = ContinuousClock.now
        let startMicros = BenchClock.micros()
        measureFrom.store(startMicros + UInt64(options.warmup * 1_000_000), ordering: .relaxed)
        for room in rooms { try await room.loop.submit { room.start() }.get() }
        let progress = Task { await progressLoop(scenario: "party", interval: options.progressInterval, counters: counters, recorders: harness.recorders, series: .delivery, start: start) }
        try await Task.sleep(for: .seconds(options.duration))
        for room in rooms { try await room.loop.submit { room.stopSending() }.get() }
        let measuredSeconds = max((ContinuousClock.now - start).seconds - options.warmup, 0.001)
        try await Task.sleep(for: .seconds(options.drain))  // in-flight deliveries arrive
        progress.cancel()
        let metricsAtEnd = try? await HTTPGet.metrics(harness.url, group: harness.group)
        let generatorRSS = SelfStats.residentBytes()
        await harness.closeAll(rooms.flatMap(\.sockets))

        var result = RunResult()
        let connections = built.reduce(0) { $0 + $1.sockets.count }
        result.metrics["rooms"] = Double(built.count)
        result.metrics["connections"] = Double(connections)
        result.metrics["setup_seconds"] = setupSeconds
        result.metrics["measured_seconds"] = measuredSeconds
        result.metrics["commands_sent"] = Double(commandsSent.load(ordering: .relaxed))
        result.metrics["chats_sent"] = Double(chatsSent.load(ordering: .relaxed))
        result.metrics["state_updates_sent"] = Double(stateUpdatesSent.load(ordering: .relaxed))
        result.metrics["state_updates_relayed_received"] = Double(stateUpdatesRelayed.load(ordering: .relaxed))
        result.metrics["pings_sent"] = Double(pingsSent.load(ordering: .relaxed))
        result.metrics["pongs_received"] = Double(pongs.load(ordering: .relaxed))
        result.metrics["status_reports_sent"] = Double(statusReportsSent.load(ordering: .relaxed))
        result.metrics["status_broadcasts_received"] = Double(statusBroadcasts.load(ordering: .relaxed))
        result.metrics["messages_sent"] = Double(counters.messagesSent.load(ordering: .relaxed))
        result.metrics["messages_received"] = Double(counters.messagesReceived.load(ordering: .relaxed))
        let delivered = counters.delivered.load(ordering: .relaxed)
        let expected = counters.expectedDeliveries.load(ordering: .relaxed)
        result.metrics["deliveries_expected"] = Double(expected)
        result.metrics["deliveries_received"] = Double(delivered)
        result.metrics["deliveries_missing"] = Double(max(expected - delivered, 0))
        result.metrics["scheduled_commands_late"] = Double(lateCommands.load(ordering: .relaxed))
        let totalSeconds = (ContinuousClock.now - start).seconds
        result.metrics["messages_sent_per_second"] = Double(counters.messagesSent.load(ordering: .relaxed)) / totalSeconds
        result.metrics["messages_received_per_second"] = Double(counters.messagesReceived.load(ordering: .relaxed)) / totalSeconds
        result.metrics["generator_rss_mib"] = Double(generatorRSS) / 1_048_576
        result.latency = harness.recorders.summaries()
        ServerObservation.add(before: metricsBefore, afterSetup: metricsAfterSetup, end: metricsAtEnd, connections: connections, to: &result)
        if expected > delivered {
            counters.note("deliveries_missing", count: expected - delivered)
        }
        result.errors = counters.errors
        result.errorTotal = counters.errorTotal + max(expected - delivered, 0) + lateCommands.load(ordering: .relaxed)
        result.notes.append("Latency is recorded for messages sent after a \(options.warmup) s warm-up; counts cover the whole run.")
        return result
    }
}

/// One room's host and guests, confined to the room's event loop.
final class PartyRoom: @unchecked Sendable {
    let scenario: PartyScenario
    let loop: any EventLoop
    let id: String
    let sockets: [BenchSocket]
    let recorder: Recorder
    let counters: BenchCounters
    /// With several replicas: whether each member is connected to another replica than the host's.
    let crossReplica: [Bool]?
    private var tasks: [RepeatedTask] = []
    private var commandSentAt: [Int64: UInt64] = [:]
    private var stateSentAt: [Int64: UInt64] = [:]
    private var sequence = 0
    // The host's simulated player.
    private var playing = false
    private var position = 0.0
    private var positionAt: UInt64 = 0

    init(scenario: PartyScenario, built: Harness.BuiltRoom) {
        self.scenario = scenario
        self.loop = built.loop
        self.id = built.id
        self.sockets = built.sockets
        self.recorder = scenario.harness.recorders.recorder(for: built.loop)
        self.counters = scenario.harness.counters
        self.crossReplica = scenario.harness.replicas.count > 1 ? built.placement.map { $0 != built.placement.first } : nil
    }

    /// A measured delivery to `member`: every kind's series, and with several replicas whether it crossed.
    private func recordDelivery(_ series: Series, to member: Int, micros: UInt64) {
        recorder.record(.delivery, micros: micros)
        recorder.record(series, micros: micros)
        if let crossReplica, member < crossReplica.count {
            recorder.record(crossReplica[member] ? .crossReplica : .sameReplica, micros: micros)
        }
    }

    var host: BenchSocket { sockets[0] }

    /// On the loop: take the sockets over and start every timer (random phases, so rooms do not tick together).
    func start() {
        let options = scenario.options
        positionAt = BenchClock.micros()
        for (member, socket) in sockets.enumerated() {
            socket.takeOver { message in self.received(message, member: member) }
            if options.pingInterval > 0 {
                schedule(every: options.pingInterval) { self.ping(socket) }
            }
        }
        if options.stateInterval > 0 { schedule(every: options.stateInterval) { self.reportState() } }
        if options.commandInterval > 0 { schedule(every: options.commandInterval) { self.command() } }
        if options.chatInterval > 0 { schedule(every: options.chatInterval) { self.chat() } }
    }

    func stopSending() {
        for task in tasks { task.cancel() }
        tasks.removeAll()
    }

    private func schedule(every seconds: Double, _ body: @escaping @Sendable () -> Void) {
        let period = TimeAmount.nanoseconds(Int64(seconds * 1e9))
        let phase = TimeAmount.nanoseconds(Int64.random(in: 0..<max(period.nanoseconds, 1)))
        tasks.append(loop.scheduleRepeatedTask(initialDelay: phase, delay: period) { _ in body() })
    }

    private func send(_ socket: BenchSocket, _ text: String) {
        counters.messagesSent.add(1, ordering: .relaxed)
        socket.send(text)
    }

    private static func key(_ position: Double) -> Int64 { Int64((position * 1000).rounded()) }

    private func currentPosition(at now: UInt64) -> Double {
        let value = playing ? position + Double(now &- positionAt) / 1_000_000 : position
        return (value * 1000).rounded() / 1000
    }

    // MARK: Host actions

    private func reportState() {
        let now = BenchClock.micros()
        let position = currentPosition(at: now)
        stateSentAt[Self.key(position)] = now
        if stateSentAt.count > 64 { stateSentAt = stateSentAt.filter { now &- $0.value < 10_000_000 } }
        scenario.stateUpdatesSent.add(1, ordering: .relaxed)
        send(
            host,
            #"{"type":"state_update","room":"\#(id)","payload":{"position":\#(position),"play_state":"\#(playing ? "playing" : "paused")"},"ts":\#(BenchClock.ts())}"#
        )
    }

    private func command() {
        sequence += 1
        let now = BenchClock.micros()
        let target = 100 + 7 * Double(sequence)
        let payload: String
        let recipients: Int
        switch sequence % 3 {
        case 1:
            payload = #"{"action":"play","position":\#(target)}"#
            playing = true
            recipients = sockets.count  // a scheduled play goes to every member, the host included
        case 2:
            payload = #"{"action":"seek","position":\#(target),"play_state":"\#(playing ? "playing" : "paused")"}"#
            recipients = sockets.count - 1
        default:
            payload = #"{"action":"pause","position":\#(target)}"#
            playing = false
            recipients = sockets.count - 1
        }
        position = target
        positionAt = now
        commandSentAt[Self.key(target)] = now
        if commandSentAt.count > 16 { commandSentAt = commandSentAt.filter { now &- $0.value < 30_000_000 } }
        counters.expectedDeliveries.add(recipients, ordering: .relaxed)
        scenario.commandsSent.add(1, ordering: .relaxed)
        send(host, #"{"type":"player_event","room":"\#(id)","payload":\#(payload),"ts":\#(BenchClock.ts())}"#)
    }

    private func chat() {
        counters.expectedDeliveries.add(sockets.count, ordering: .relaxed)
        scenario.chatsSent.add(1, ordering: .relaxed)
        send(host, #"{"type":"chat_message","room":"\#(id)","payload":{"text":"L\#(BenchClock.micros())"},"ts":\#(BenchClock.ts())}"#)
    }

    private func ping(_ socket: BenchSocket) {
        scenario.pingsSent.add(1, ordering: .relaxed)
        send(socket, #"{"type":"ping","room":"\#(id)","payload":{"client_ts":\#(BenchClock.micros())},"ts":\#(BenchClock.ts())}"#)
    }

    // MARK: Receiving

    private func received(_ message: ByteBuffer, member: Int) {
        let now = BenchClock.micros()
        counters.messagesReceived.add(1, ordering: .relaxed)
        let measureFrom = scenario.measureFrom.load(ordering: .relaxed)
        switch JSONScan.kind(of: message) {
        case .playerEvent:
            counters.delivered.add(1, ordering: .relaxed)
            let action = JSONScan.string(.action, in: message) ?? ""
            if let target = JSONScan.number(.targetServerTS, in: message) {
                let margin = target - BenchClock.wallMillis()
                if margin < 0 {
                    scenario.lateCommands.add(1, ordering: .relaxed)
                    counters.note("scheduled_command_arrived_late")
                } else if now >= measureFrom {
                    recorder.record(action == "play" ? .playMargin : .controlMargin, micros: UInt64(margin * 1000))
                }
            }
            if member != 0, let position = JSONScan.number(.position, in: message), let sentAt = commandSentAt[Self.key(position)], sentAt >= measureFrom {
                recordDelivery(.playerEvent, to: member, micros: now &- sentAt)
            }
            if member != 0 && scenario.options.statusReports {
                let status =
                    switch action {
                    case "play": "playing"
                    case "seek": "catching_up"
                    default: "paused"
                    }
                scenario.statusReportsSent.add(1, ordering: .relaxed)
                send(sockets[member], #"{"type":"participant_status","room":"\#(id)","payload":{"status":"\#(status)"},"ts":\#(BenchClock.ts())}"#)
            }
        case .chatMessage:
            counters.delivered.add(1, ordering: .relaxed)
            if member != 0, let sentAt = Self.stamp(in: message, prefix: UInt8(ascii: "L")), sentAt >= measureFrom {
                recordDelivery(.chat, to: member, micros: now &- sentAt)
            }
        case .stateUpdate:
            scenario.stateUpdatesRelayed.add(1, ordering: .relaxed)
            if let position = JSONScan.number(.position, in: message), let sentAt = stateSentAt[Self.key(position)], sentAt >= measureFrom {
                recordDelivery(.stateUpdate, to: member, micros: now &- sentAt)
            }
        case .pong:
            scenario.pongs.add(1, ordering: .relaxed)
            if let sent = JSONScan.number(.clientTS, in: message), UInt64(sent) >= measureFrom {
                recorder.record(.pingRTT, micros: now &- UInt64(sent))
            }
        case .participantStatuses:
            scenario.statusBroadcasts.add(1, ordering: .relaxed)
        case .error:
            counters.protocolError(code: JSONScan.string(.code, in: message) ?? "?")
        case .other:
            break
        }
    }

    /// The µs stamp of a chat text `<prefix><micros>…`.
    static func stamp(in message: ByteBuffer, prefix: UInt8) -> UInt64? {
        message.withUnsafeReadableBytes { bytes -> UInt64? in
            guard let start = JSONScan.valueStart(.text, in: bytes), start + 2 < bytes.count, bytes[start + 1] == prefix else { return nil }
            return JSONScan.parseNumber(bytes, from: start + 2).map { UInt64($0) }
        }
    }
}

/// What the server's own /metrics says about a run.
enum ServerObservation {
    static func add(before: MetricsSample?, afterSetup: MetricsSample?, end: MetricsSample?, connections: Int, to result: inout RunResult) {
        if let value = before?.residentBytes { result.metrics["server_rss_mib_before"] = value / 1_048_576 }
        if let value = afterSetup?.residentBytes { result.metrics["server_rss_mib_after_setup"] = value / 1_048_576 }
        if let value = end?.residentBytes { result.metrics["server_rss_mib_end"] = value / 1_048_576 }
        if let before = before?.residentBytes, let after = end?.residentBytes ?? afterSetup?.residentBytes, connections > 0 {
            result.metrics["server_rss_kib_per_connection"] = (after - before) / 1024 / Double(connections)
        }
        guard let end else {
            result.notes.append("The server's /metrics could not be read: no server-side figures.")
            return
        }
        let lateness = BucketDelta(from: afterSetup ?? before, to: end, name: "owp_scheduling_lateness_seconds")
        result.metrics["server_scheduled_releases"] = lateness.count
        if let p99 = lateness.estimate(quantile: 0.99), p99.isFinite { result.metrics["server_scheduling_lateness_p99_ms_estimate"] = p99 * 1000 }
        if let bound = lateness.upperBound(quantile: 0.99) {
            // Past the last finite bucket the bound is +Inf, which JSON cannot carry: say so in a note.
            if bound.isFinite {
                result.metrics["server_scheduling_lateness_p99_ms_bucket_bound"] = bound * 1000
            } else {
                result.notes.append("Server scheduling lateness p99 is beyond the histogram's last finite bucket.")
            }
        }
        if let p50 = lateness.estimate(quantile: 0.5), p50.isFinite { result.metrics["server_scheduling_lateness_p50_ms_estimate"] = p50 * 1000 }
        if let within = lateness.fraction(atOrBelow: 0.002) { result.metrics["server_scheduling_lateness_fraction_within_2ms"] = within }
        let handling = BucketDeltaFamily.total(from: afterSetup ?? before, to: end, name: "owp_message_handling_seconds")
        if let p99 = handling.estimate(quantile: 0.99), p99.isFinite { result.metrics["server_message_handling_p99_ms_estimate"] = p99 * 1000 }
        if let high = end.queuePeak { result.metrics["server_outbound_queue_high_water"] = high }
        let slow = end.total("owp_slow_client_disconnects_total") - ((afterSetup ?? before)?.total("owp_slow_client_disconnects_total") ?? 0)
        result.metrics["server_slow_client_disconnects"] = slow
        let errors = end.total("owp_errors_sent_total") - ((afterSetup ?? before)?.total("owp_errors_sent_total") ?? 0)
        result.metrics["server_errors_sent"] = errors
        for (result_, name) in [("accepted", "accepted"), ("jitter", "jitter"), ("cooldown", "cooldown"), ("rate", "rate")] {
            let series = "owp_state_updates_total{result=\"\(name)\"}"
            if let value = end[series] {
                result.metrics["server_state_updates_\(result_)"] = value - ((afterSetup ?? before)?[series] ?? 0)
            }
        }
    }
}

/// A labelled histogram family summed over its labels (e.g. handling time of every message type).
enum BucketDeltaFamily {
    static func total(from before: MetricsSample?, to after: MetricsSample, name: String) -> BucketDelta {
        func sum(_ sample: MetricsSample?) -> MetricsSample {
            var merged = MetricsSample(text: "")
            guard let sample else { return merged }
            let prefix = "\(name)_bucket{"
            for (key, value) in sample.series where key.hasPrefix(prefix) {
                guard let range = key.range(of: "le=\"") else { continue }
                let le = key[range.upperBound...].prefix { $0 != "\"" }
                merged.series["\(name)_bucket{le=\"\(le)\"}", default: 0] += value
            }
            return merged
        }
        return BucketDelta(from: sum(before), to: sum(after), name: name)
    }
}
