import Testing
import WatchPartyCore

@testable import SyncSimulator

/// The sync simulator on small scenarios, with asserted bounds (docs/sync.md has the full table).
@Suite struct SyncSimulationTests {
    static let trials = 40
    static let seed: UInt64 = 0x5EED

    @Test func theSameSeedGivesTheSameRun() {
        let scenario = SyncScenario(name: "rtt 100", rttMs: 100, jitterMs: 15, mode: .adaptive)
        var first = SyncSimulation(scenario: scenario, seed: 7)
        var second = SyncSimulation(scenario: scenario, seed: 7)
        #expect(first.run() == second.run())
    }

    @Test func guestsStartTogetherOnASymmetricLinkInBothModes() {
        for mode in PlayScheduleMode.allCases {
            let summary = SyncSummary.run(SyncScenario(name: "rtt 20", rttMs: 20, jitterMs: 4, mode: mode), trials: Self.trials, seed: Self.seed)
            #expect(summary.playSpreadGuestsP99 <= 10, "\(mode): guests p99 \(summary.playSpreadGuestsP99) ms")
            #expect(summary.lateActions == 0)
        }
    }

    @Test func adaptiveModeAlsoBringsTheHostIntoStepOnASymmetricLink() {
        let adaptive = SyncSummary.run(SyncScenario(name: "rtt 20", rttMs: 20, jitterMs: 4, mode: .adaptive), trials: Self.trials, seed: Self.seed)
        #expect(adaptive.playSpreadP99 <= 10, "all members p99 \(adaptive.playSpreadP99) ms")
        #expect(adaptive.seekSpreadP99 <= 10, "after a seek p99 \(adaptive.seekSpreadP99) ms")
        // In fixed mode the host, who plays from its click, is ahead by its uplink delay (≈ RTT/2).
        let fixed = SyncSummary.run(SyncScenario(name: "rtt 100", rttMs: 100, jitterMs: 15, mode: .fixed), trials: Self.trials, seed: Self.seed)
        #expect(fixed.playSpreadP50 >= 40, "fixed-mode host lag \(fixed.playSpreadP50) ms")
    }

    @Test func adaptiveModeNeverStartsAMemberLateAndStartsSoonerOnFastLinks() {
        for scenario in SyncScenario.standard(mode: .adaptive) {
            let summary = SyncSummary.run(scenario, trials: Self.trials, seed: Self.seed)
            #expect(summary.lateActions == 0, "\(scenario.name): \(summary.lateActions) late actions")
            #expect(summary.playLeadP50 < 1500 && summary.playLeadP50 >= 300)
        }
        let fast = SyncSummary.run(SyncScenario(name: "rtt 20", rttMs: 20, jitterMs: 4, mode: .adaptive), trials: 5, seed: Self.seed)
        #expect(fast.playLeadP50 == 300, "clamped to CONTROL_SCHEDULE_MS")
        #expect(fast.clickToPlaybackP50 < 400)
    }

    @Test func aTooShortLeadIsSeenAsLateStarts() {
        // The measurement itself: a fixed lead shorter than the link makes guests late.
        var scenario = SyncScenario(name: "rtt 300, lead too short", rttMs: 600, jitterMs: 40, mode: .fixed)
        scenario.members = 3
        var rules = PartyRules()
        rules.playScheduleMs = 200
        var simulation = SyncSimulation(scenario: scenario, seed: 1, rules: rules)
        #expect(simulation.run().lateActions > 0)
    }
}
