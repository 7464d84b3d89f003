import Foundation

/// One scenario's measurements.
struct RunResult: Codable, Sendable {
    /// Flat figures: counts, rates, memory (names carry their unit).
    var metrics: [String: Double] = [:]
    var latency: [String: LatencySummary] = [:]
    /// Errors by kind (protocol error codes, unexpected closes, failed connects); empty = none.
    var errors: [String: Int] = [:]
    var errorTotal: Int = 0
    var notes: [String] = []
}

/// A stated target and whether the run met it.
struct TargetCheck: Codable, Sendable {
    var name: String
    var target: String
    var measured: String
    var met: Bool
}

/// What `--json` writes and `--markdown` renders.
struct BenchReport: Codable, Sendable {
    var scenario: String
    var label: String?
    var command: String
    var started_at: String
    var server_url: String
    var parameters: [String: String]
    var machine: MachineInfo
    var result: RunResult
    var ceiling: RunResult?
    var ratio_to_ceiling: [String: Double]?
    var targets: [TargetCheck] = []

    func write(json: String?, markdown: String?) throws {
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try encoder.encode(self).write(to: URL(fileURLWithPath: json))
        }
        if let markdown {
            try Data(self.markdown().utf8).write(to: URL(fileURLWithPath: markdown))
        }
    }

    func markdown() -> String {
        var out = "## owp-bench \(scenario)\(label.map { " — \($0)" } ?? "")\n\n"
        out += "Started \(started_at) against `\(server_url)`; machine: \(machine.summary).\n\n"
        out += "```\n\(command)\n```\n\n"
        out += "| parameter | value |\n| --- | --- |\n"
        for (key, value) in parameters.sorted(by: { $0.key < $1.key }) { out += "| \(key) | \(value) |\n" }
        out += "\n" + Self.table(result, title: "Result")
        if let ceiling {
            out += "\n" + Self.table(ceiling, title: "Ceiling run (`owp-server --fanout-ceiling`, same traffic)")
        }
        if let ratio = ratio_to_ceiling, !ratio.isEmpty {
            out += "\n| ratio to ceiling | value |\n| --- | --- |\n"
            for (key, value) in ratio.sorted(by: { $0.key < $1.key }) { out += "| \(key) | \(Self.format(value)) |\n" }
        }
        if !targets.isEmpty {
            out += "\n| target | goal | measured | met |\n| --- | --- | --- | --- |\n"
            for target in targets { out += "| \(target.name) | \(target.target) | \(target.measured) | \(target.met ? "met" : "**not met**") |\n" }
        }
        return out
    }

    static func table(_ result: RunResult, title: String) -> String {
        var out = "**\(title)**\n\n| metric | value |\n| --- | --- |\n"
        for (key, value) in result.metrics.sorted(by: { $0.key < $1.key }) { out += "| \(key) | \(format(value)) |\n" }
        out += "| errors | \(result.errorTotal)\(result.errors.isEmpty ? "" : " (" + result.errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")") |\n"
        if !result.latency.isEmpty {
            out += "\n| latency (ms) | count | p50 | p90 | p99 | p99.9 | max | mean |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
            for (name, l) in result.latency.sorted(by: { $0.key < $1.key }) {
                out += "| \(name) | \(l.count) | \(format(l.p50_ms)) | \(format(l.p90_ms)) | \(format(l.p99_ms)) | \(format(l.p999_ms)) | \(format(l.max_ms)) | \(format(l.mean_ms)) |\n"
            }
        }
        for note in result.notes { out += "\n- \(note)" }
        if !result.notes.isEmpty { out += "\n" }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.rounded() == value && abs(value) < 1e15 { return String(Int(value)) }
        if abs(value) >= 100 { return String(format: "%.1f", value) }
        return String(format: "%.3f", value)
    }
}

/// The machine the run was on (the generator's view: same box as the server on loopback).
struct MachineInfo: Codable, Sendable {
    var cpus: Int
    var cpu_model: String
    var memory_gib: Double
    var kernel: String
    /// /proc/loadavg when the run started: anything else busy on the machine shows here.
    var load_average: String

    static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let kib = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { Double($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        let kernel = ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
        return MachineInfo(
            cpus: ProcessInfo.processInfo.activeProcessorCount, cpu_model: model, memory_gib: (kib / 1_048_576 * 10).rounded() / 10, kernel: kernel,
            load_average: load)
    }

    var summary: String { "\(cpus) CPUs (\(cpu_model)), \(memory_gib) GiB, Linux \(kernel), load average at start \(load_average)" }
}

/// Progress lines on standard error while a scenario runs.
enum Console {
    static func line(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// Prints a progress line every `interval` seconds until cancelled.
func progressLoop(scenario: String, interval: Double, counters: BenchCounters, recorders: Recorders, series: Series, start: ContinuousClock.Instant) async {
    guard interval > 0 else { return }
    var lastSent = counters.messagesSent.load(ordering: .relaxed)
    var lastReceived = counters.messagesReceived.load(ordering: .relaxed)
    var lastTime = ContinuousClock.now
    while !Task.isCancelled {
        try? await Task.sleep(for: .seconds(interval))
        if Task.isCancelled { return }
        let now = ContinuousClock.now
        let seconds = (now - lastTime).seconds
        let sent = counters.messagesSent.load(ordering: .relaxed)
        let received = counters.messagesReceived.load(ordering: .relaxed)
        let histogram = recorders.merged()[series]
        let p99 = histogram.map { $0.totalCount > 0 ? String(format: "%.2fms", Double($0.valueAtPercentile(99)) / 1000) : "-" } ?? "-"
        let rates = String(
            format: "t=%.0fs conns=%d sent=%.0f/s recv=%.0f/s", (now - start).seconds, counters.openConnections.load(ordering: .relaxed),
            Double(sent - lastSent) / seconds, Double(received - lastReceived) / seconds)
        Console.line("[\(scenario)] \(rates) \(series.rawValue) p99=\(p99) errors=\(counters.errorTotal)")
        lastSent = sent
        lastReceived = received
        lastTime = now
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
