import Foundation
import SyncSimulator
import WatchPartyCore

// owp-syncsim [trials] [seed]: the published sync table (docs/sync.md), fixed and adaptive mode,
// as Markdown on stdout and CSV next to it when a path is given as third argument.
let arguments = CommandLine.arguments.dropFirst()
let trials = arguments.first.flatMap(Int.init) ?? 200
let seed = arguments.dropFirst().first.flatMap { UInt64($0, radix: 16) } ?? 0x5EED
let csvPath = arguments.dropFirst(2).first

print("owp-syncsim: \(trials) trials per scenario, seed \(String(seed, radix: 16))\n")
print(SyncSummary.markdownHeader)
var csv = "scenario,mode,rtt_ms,jitter_ms,down_share,play_p50,play_p99,play_guests_p99,seek_p50,seek_p99,lead_p50,click_to_playback_p50,late\n"
for mode in PlayScheduleMode.allCases {
    for scenario in SyncScenario.standard(mode: mode) {
        let summary = SyncSummary.run(scenario, trials: trials, seed: seed)
        print(summary.markdownRow)
        csv += "\"\(scenario.name)\",\(mode.rawValue),\(scenario.rttMs),\(scenario.jitterMs),\(scenario.downShare),\(summary.playSpreadP50),\(summary.playSpreadP99),"
        csv += "\(summary.playSpreadGuestsP99),\(summary.seekSpreadP50),\(summary.seekSpreadP99),\(summary.playLeadP50),\(summary.clickToPlaybackP50),\(summary.lateActions)\n"
    }
}
if let csvPath {
    try csv.write(toFile: csvPath, atomically: true, encoding: .utf8)
}
