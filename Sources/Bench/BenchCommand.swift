import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// `owp-bench`: load generator and benchmark for owp-server. Speaks the real protocol over real
/// sockets; see BENCHMARKS.md for the published figures and how they were produced.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owp-bench",
        abstract: "Load generator and benchmark for owp-server (real protocol, real sockets, HDR latency histograms).",
        discussion: """
            Run the server as a separate process (the generator needs its own open-file budget), with limits raised for \
            load from one address, e.g.: owp-server --port 3000 --max-connections 20000 --max-connections-per-ip 20000 \
            --log-level warning. For --ceiling, start a second one with --fanout-ceiling on another port.
            """,
        subcommands: [Party.self, Fanout.self, Connections.self, Resume.self, Rolling.self]
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Server WebSocket URL (its /metrics is read on the same host and port)") var url = "ws://127.0.0.1:3000/ws"
    @Option(help: "Another replica's WebSocket URL, repeatable (party, resume): members are spread over --url and these at random, the host's replica owning the room; resume comes back through the next replica")
    var replica: [String] = []
    @Option(help: "Event-loop threads of the generator") var threads = 2
    @Option(help: "Write the report as JSON to this path") var json: String?
    @Option(help: "Write the report as Markdown to this path") var markdown: String?
    @Option(help: "Seconds between progress lines on stderr (0 = none)") var progress: Double = 1
    @Option(help: "A label for this run (shown in reports and charts)") var label: String?
    @Flag(help: "Exit 0 even when errors were seen") var allowErrors = false
    @Option(help: "Share of connections (0…1) that offer permessage-deflate as Chromium does (`permessage-deflate; client_max_window_bits`) and inflate what they get")
    var deflateFraction: Double = 0
}

/// Runs a scenario with a fresh event-loop group, writes the reports, prints the Markdown.
func execute(
    scenario: String, common: CommonOptions, parameters: [String: String], serverURL: String? = nil,
    _ body: @Sendable (_ makeHarness: @Sendable (ServerURL) -> Harness, _ group: any EventLoopGroup) async throws -> (RunResult, RunResult?, [String: Double]?, [TargetCheck])
) async throws {
    let url = try ServerURL(serverURL ?? common.url)
    let group = MultiThreadedEventLoopGroup(numberOfThreads: max(common.threads, 1))
    let startedAt = ISO8601DateFormatter().string(from: Date())
    let machine = MachineInfo.current()
    let outcome: (RunResult, RunResult?, [String: Double]?, [TargetCheck])
    do {
        let deflate = min(max(common.deflateFraction, 0), 1)
        let replicas = try common.replica.map(ServerURL.init)
        outcome = try await body({ Harness(url: $0, group: group, deflateFraction: deflate, replicas: replicas) }, group)
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    try await group.shutdownGracefully()
    var parameters = parameters
    parameters["threads"] = String(common.threads)
    parameters["deflate_fraction"] = String(common.deflateFraction)
    let report = BenchReport(
        scenario: scenario, label: common.label, command: CommandLine.arguments.joined(separator: " "), started_at: startedAt,
        server_url: url.description, parameters: parameters, machine: machine, result: outcome.0, ceiling: outcome.1,
        ratio_to_ceiling: outcome.2, targets: outcome.3)
    try report.write(json: common.json, markdown: common.markdown)
    print(report.markdown())
    let errors = outcome.0.errorTotal + (outcome.1?.errorTotal ?? 0)
    if errors > 0 && !common.allowErrors {
        Console.line("owp-bench: \(errors) errors (see the report); exiting 2")
        throw ExitCode(2)
    }
}

func formatMs(_ value: Double?) -> String { value.map { String(format: "%.3f ms", $0) } ?? "n/a" }

struct Party: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "R rooms × M members: state updates, play/pause/seek, chat, pings; end-to-end latency.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Rooms") var rooms = 10
    @Option(help: "Members per room, the host included") var members = 10
    @Option(help: "Seconds of traffic (after set-up), warm-up included") var duration: Double = 30
    @Option(help: "Seconds at the start whose latencies are not recorded") var warmup: Double = 3
    @Option(help: "Seconds between a host's commands (play → seek → pause → …)") var commandInterval: Double = 5
    @Option(help: "Seconds between a host's state_update reports") var stateInterval: Double = 1
    @Option(help: "Seconds between each member's pings") var pingInterval: Double = 2
    @Option(help: "Seconds between a host's chat messages (0 = none)") var chatInterval: Double = 5
    @Flag(inversion: .prefixedNo, help: "Guests answer each command with participant_status") var statusReports = true
    @Option(help: "Connections opened per second during set-up") var ramp: Double = 2000
    @Option(help: "Rooms set up at once") var setupConcurrency = 32

    func run() async throws {
        var options = PartyOptions()
        options.rooms = rooms
        options.members = members
        options.duration = duration
        options.warmup = min(warmup, duration / 2)
        options.commandInterval = commandInterval
        options.stateInterval = stateInterval
        options.pingInterval = pingInterval
        options.chatInterval = chatInterval
        options.statusReports = statusReports
        options.rampPerSecond = ramp
        options.setupConcurrency = setupConcurrency
        options.progressInterval = common.progress
        let parameters = [
            "rooms": "\(rooms)", "members": "\(members)", "duration_s": "\(duration)", "warmup_s": "\(options.warmup)",
            "command_interval_s": "\(commandInterval)", "state_interval_s": "\(stateInterval)", "ping_interval_s": "\(pingInterval)",
            "chat_interval_s": "\(chatInterval)", "status_reports": "\(statusReports)",
        ]
        try await execute(scenario: "party", common: common, parameters: parameters) { [options] makeHarness, _ in
            let url = try ServerURL(common.url)
            let result = try await PartyScenario(harness: makeHarness(url), options: options).run()
            return (result, nil, nil, Targets.party(result))
        }
    }
}

struct Fanout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rooms of 20 members chatting at the rate limit; delivered messages per second.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Rooms") var rooms = 10
    @Option(help: "Members per room") var members = 20
    @Option(help: "Messages per second per member (the server's limit is 30)") var rate: Double = 25
    @Option(help: "Own messages a member may have in flight") var window = 2
    @Option(help: "Measured seconds (after the warm-up)") var duration: Double = 20
    @Option(help: "Seconds of traffic before measuring") var warmup: Double = 3
    @Option(help: "URL of an `owp-server --fanout-ceiling`: run the same traffic there too and report the ratio") var ceiling: String?
    @Option(help: "Connections opened per second during set-up") var ramp: Double = 2000

    func run() async throws {
        var options = FanoutOptions()
        options.rooms = rooms
        options.members = members
        options.rate = rate
        options.window = window
        options.duration = duration
        options.warmup = warmup
        options.rampPerSecond = ramp
        options.progressInterval = common.progress
        let parameters = [
            "rooms": "\(rooms)", "members": "\(members)", "rate_per_member": "\(rate)", "window": "\(window)",
            "duration_s": "\(duration)", "warmup_s": "\(warmup)", "ceiling_url": ceiling ?? "none",
        ]
        let ceilingURL = try ceiling.map { try ServerURL($0) }
        try await execute(scenario: "fanout", common: common, parameters: parameters) { [options] makeHarness, _ in
            let url = try ServerURL(common.url)
            let result = try await FanoutScenario(harness: makeHarness(url), options: options, ceiling: false).run()
            guard let ceilingURL else { return (result, nil, nil, []) }
            try await Task.sleep(for: .seconds(1))
            let ceilingResult = try await FanoutScenario(harness: makeHarness(ceilingURL), options: options, ceiling: true).run()
            var ratio: [String: Double] = [:]
            if let real = result.metrics["delivered_per_second"], let best = ceilingResult.metrics["delivered_per_second"], best > 0 {
                ratio["delivered_per_second"] = real / best
            }
            if let real = result.latency[Series.fanout.rawValue]?.p99_ms, let best = ceilingResult.latency[Series.fanout.rawValue]?.p99_ms, real > 0 {
                ratio["p99_latency_ceiling_over_server"] = best / real
            }
            return (result, ceilingResult, ratio, Targets.fanout(result, ceiling: ceilingResult, ratio: ratio))
        }
    }
}

struct Connections: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open N idle connections at a ramp rate, hold them; handshake rate and server memory per connection.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Connections") var count = 1000
    @Option(help: "Group them into rooms of this size (0 = stay in the lobby)") var roomSize = 10
    @Option(help: "Connections opened per second") var ramp: Double = 1000
    @Option(help: "Seconds to hold them open") var hold: Double = 10
    @Option(help: "Handshakes in flight at most") var concurrency = 256
    @Option(help: "nio (the lean client) or hummingbird (HummingbirdWSClient, lobby only)") var client = "nio"

    func run() async throws {
        var options = ConnectionsOptions()
        options.count = count
        options.roomSize = roomSize
        options.rampPerSecond = ramp
        options.hold = hold
        options.concurrency = concurrency
        guard let client = ConnectionsOptions.Client(rawValue: client) else { throw ValidationError("--client must be nio or hummingbird") }
        options.client = client
        options.progressInterval = common.progress
        let parameters = [
            "count": "\(count)", "room_size": client == .nio ? "\(roomSize)" : "0 (lobby)", "ramp_per_s": "\(ramp)", "hold_s": "\(hold)",
            "client": client.rawValue,
        ]
        try await execute(scenario: "connections", common: common, parameters: parameters) { [options] makeHarness, _ in
            let url = try ServerURL(common.url)
            let result = try await ConnectionsScenario(harness: makeHarness(url), options: options).run()
            return (result, nil, nil, Targets.connections(result))
        }
    }
}

struct Rolling: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Starts N replicas on one PostgreSQL, builds a party spread over them, and replaces each replica in turn (SIGTERM after its successor is ready) while members reconnect and resume (PROTOCOL.md §11, §13, §14).",
        discussion: "--url and --replica are not used: the generator starts its own replicas on --base-port and the ports after it.")
    @OptionGroup var common: CommonOptions
    @Option(help: "The owp-server binary to start") var server: String
    @Option(help: "PostgreSQL URL the replicas share; default: the DATABASE_URL environment variable (which keeps the password out of the report's command line)")
    var databaseURL: String?
    @Option(help: "Replicas") var replicas = 3
    @Option(help: "Rooms") var rooms = 300
    @Option(help: "Members per room, the host included") var members = 10
    @Option(help: "Seconds a member waits after losing its connection, and between failed attempts") var backoff: Double = 1
    @Option(help: "Seconds between a host's numbered chat messages") var chatInterval: Double = 2
    @Option(help: "Seconds to wait after the set-up and after each replacement") var settle: Double = 4
    @Option(help: "Port of the first replica; each new process takes the next (keep them below the ephemeral range, /proc/sys/net/ipv4/ip_local_port_range: the members connect from those)") var basePort = 29600
    @Option(help: "Directory for the replicas' logs") var logs = "/tmp/owp-rolling"
    @Option(help: "Connections opened per second during set-up") var ramp: Double = 2000
    @Option(help: "Rooms set up at once") var setupConcurrency = 16

    func run() async throws {
        var options = RollingOptions()
        options.server = server
        guard let url = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("rolling needs a PostgreSQL: --database-url or DATABASE_URL")
        }
        options.databaseURL = url
        options.replicas = max(replicas, 1)
        options.rooms = rooms
        options.members = members
        options.backoff = backoff
        options.chatInterval = chatInterval
        options.settle = settle
        options.basePort = basePort
        options.logDirectory = logs
        options.rampPerSecond = ramp
        options.setupConcurrency = setupConcurrency
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let parameters = [
            "replicas": "\(replicas)", "rooms": "\(rooms)", "members": "\(members)", "backoff_s": "\(backoff)", "chat_interval_s": "\(chatInterval)",
            "settle_s": "\(settle)", "server": server,
        ]
        try await execute(scenario: "rolling", common: common, parameters: parameters, serverURL: "ws://127.0.0.1:\(basePort)/ws") { [options] _, group in
            let result = try await RollingScenario(group: group, options: options).run()
            return (result, nil, nil, Targets.rolling(result, backoff: options.backoff))
        }
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "R rooms × M members all lose their connection at once (TCP reset); after a delay every one reconnects and resumes its seat (PROTOCOL.md §13).")
    @OptionGroup var common: CommonOptions
    @Option(help: "Rooms") var rooms = 100
    @Option(help: "Members per room, the host included") var members = 10
    @Option(help: "Seconds between the drop and the first reconnect (the upstream clients' first back-off is 1 s)") var delay: Double = 1
    @Option(help: "Reconnects per second") var ramp: Double = 2000
    @Option(help: "Reconnects in flight at most") var concurrency = 256

    func run() async throws {
        var options = ResumeOptions()
        options.rooms = rooms
        options.members = members
        options.delay = delay
        options.rampPerSecond = ramp
        options.concurrency = concurrency
        let parameters = ["rooms": "\(rooms)", "members": "\(members)", "delay_s": "\(delay)", "ramp_per_s": "\(ramp)", "concurrency": "\(concurrency)"]
        try await execute(scenario: "resume", common: common, parameters: parameters) { [options] makeHarness, _ in
            let url = try ServerURL(common.url)
            let result = try await ResumeScenario(harness: makeHarness(url), options: options).run()
            return (result, nil, nil, Targets.resume(result))
        }
    }
}

/// The published targets (2 cores, generator on the same machine).
enum Targets {
    static let rssMiB = 200.0

    static func party(_ result: RunResult) -> [TargetCheck] {
        var checks: [TargetCheck] = []
        let connections = Int(result.metrics["connections"] ?? 0)
        if let p99 = result.latency[Series.delivery.rawValue]?.p99_ms {
            checks.append(TargetCheck(name: "party delivery p99 (\(connections) connections)", target: "≤ 5 ms", measured: formatMs(p99), met: p99 <= 5))
        }
        if let p99 = result.metrics["server_scheduling_lateness_p99_ms_estimate"] {
            let bound = result.metrics["server_scheduling_lateness_p99_ms_bucket_bound"]
            let within = result.metrics["server_scheduling_lateness_fraction_within_2ms"].map { String(format: "%.2f %% ≤ 2 ms", $0 * 100) } ?? ""
            checks.append(
                TargetCheck(
                    name: "scheduling lateness p99 (server histogram, \(Int(result.metrics["server_scheduled_releases"] ?? 0)) releases)", target: "≤ 2 ms",
                    measured: bound == nil ? "> \(formatMs(p99)) (past the last finite bucket); \(within)" : "\(formatMs(p99)) (bucket ≤ \(formatMs(bound))); \(within)",
                    met: (bound ?? .infinity) <= 2))
        }
        if let rss = result.metrics["server_rss_mib_end"] {
            checks.append(TargetCheck(name: "server RSS with \(connections) connections in party", target: "≤ 200 MiB", measured: String(format: "%.1f MiB", rss), met: rss <= rssMiB))
        }
        return checks
    }

    static func fanout(_ result: RunResult, ceiling: RunResult, ratio: [String: Double]) -> [TargetCheck] {
        guard let value = ratio["delivered_per_second"] else { return [] }
        let measured = String(
            format: "%.0f / %.0f delivered/s = %.1f %%", result.metrics["delivered_per_second"] ?? 0, ceiling.metrics["delivered_per_second"] ?? 0, value * 100)
        return [TargetCheck(name: "fanout vs ceiling", target: "≥ 50 % of the ceiling", measured: measured, met: value >= 0.5)]
    }

    static func resume(_ result: RunResult) -> [TargetCheck] {
        let members = Int(result.metrics["members"] ?? 0)
        let back = Int(result.metrics["seats_back"] ?? 0)
        return [TargetCheck(name: "dropped members back in their seat", target: "\(members)", measured: "\(back)", met: members > 0 && back == members)]
    }

    static func rolling(_ result: RunResult, backoff: Double) -> [TargetCheck] {
        let members = Int(result.metrics["members"] ?? 0)
        let back = Int(result.metrics["members_back_in_their_seat"] ?? 0)
        var checks = [
            TargetCheck(name: "rooms closed", target: "0", measured: "\(Int(result.metrics["rooms_closed_seen"] ?? 0)) room_closed seen", met: result.metrics["rooms_closed_seen"] == 0),
            TargetCheck(
                name: "chats lost silently (the sender got it back, or stayed connected without it)", target: "0",
                measured: "\(Int(result.metrics["chats_missed_silently"] ?? 0)) of \(Int(result.metrics["chats_sent"] ?? 0)) chats; \(Int(result.metrics["chats_missed_in_flight_at_the_senders_close"] ?? 0)) more crossed the close of the sender's connection",
                met: result.metrics["chats_missed_silently"] == 0),
            TargetCheck(name: "members back in their seat", target: "\(members)", measured: "\(back)", met: members > 0 && back == members),
        ]
        if let p99 = result.latency[Series.closeToResumed.rawValue]?.p99_ms {
            let bound = 3_000 + backoff * 1_000
            checks.append(TargetCheck(name: "close → resumed room_state p99", target: "≤ 3 s + the back-off (\(formatMs(bound)))", measured: formatMs(p99), met: p99 <= bound))
        }
        return checks
    }

    static func connections(_ result: RunResult) -> [TargetCheck] {
        var checks: [TargetCheck] = []
        let opened = Int(result.metrics["connections_opened"] ?? 0)
        let held = Int(result.metrics["held_at_end"] ?? 0)
        let requested = Int(result.metrics["connections_requested"] ?? 0)
        checks.append(TargetCheck(name: "connections held", target: "\(requested)", measured: "\(opened) opened, \(held) held at the end", met: held == requested))
        if let rss = result.metrics["server_rss_mib_after_hold"] {
            let rooms = Int(result.metrics["rooms"] ?? 0)
            checks.append(
                TargetCheck(
                    name: "server RSS, \(held) connections in \(rooms) rooms", target: "≤ 200 MiB", measured: String(format: "%.1f MiB", rss), met: rss <= rssMiB))
        }
        return checks
    }
}
