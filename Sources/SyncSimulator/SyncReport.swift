import Foundation
import WatchPartyCore

/// Many seeded trials of a scenario, summarised.
public struct SyncSummary: Sendable, Equatable {
    public var scenario: SyncScenario
    public var trials: Int
    public var playSpreadP50: Double
    public var playSpreadP99: Double
    public var playSpreadGuestsP99: Double
    public var seekSpreadP50: Double
    public var seekSpreadP99: Double
    public var clickToPlaybackP50: Double
    public var playLeadP50: Double
    public var lateActions: Int

    /// Runs `trials` trials with seeds derived from `seed`.
    public static func run(_ scenario: SyncScenario, trials: Int, seed: UInt64) -> SyncSummary {
        var seeds = SplitMix64(seed: seed)
        let results = (0..<trials).map { _ in
            var simulation = SyncSimulation(scenario: scenario, seed: seeds.next())
            return simulation.run()
        }
        return SyncSummary(
            scenario: scenario,
            trials: trials,
            playSpreadP50: percentile(results.map(\.playSpreadMs), 50),
            playSpreadP99: percentile(results.map(\.playSpreadMs), 99),
            playSpreadGuestsP99: percentile(results.map(\.playSpreadGuestsMs), 99),
            seekSpreadP50: percentile(results.map(\.seekSpreadMs), 50),
            seekSpreadP99: percentile(results.map(\.seekSpreadMs), 99),
            clickToPlaybackP50: percentile(results.map(\.clickToPlaybackMs), 50),
            playLeadP50: percentile(results.map(\.playLeadMs), 50),
            lateActions: results.map(\.lateActions).reduce(0, +)
        )
    }

    /// Nearest-rank percentile.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    /// One row of the Markdown table.
    public var markdownRow: String {
        func f(_ value: Double) -> String { value.isFinite ? String(format: "%.1f", value) : "—" }
        return "| \(scenario.name) | \(scenario.mode.rawValue) | \(f(playSpreadP50)) | \(f(playSpreadP99)) | \(f(playSpreadGuestsP99)) | \(f(seekSpreadP50)) | \(f(seekSpreadP99)) | \(f(playLeadP50)) | \(f(clickToPlaybackP50)) | \(lateActions) |"
    }

    public static let markdownHeader = """
        | scenario | mode | play spread p50 (ms) | play spread p99 (ms) | guests only p99 (ms) | seek spread p50 (ms) | seek spread p99 (ms) | play lead (ms) | click → playback p50 (ms) | late actions |
        | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
        """
}
