import Testing
import SyncSimulator

@testable import WatchPartyCore

/// PLAY_SCHEDULE_MODE (docs/sync.md): the lead rule and the round-trip bookkeeping behind it.
@Suite struct AdaptiveLeadTests {
    @Test func fixedModeAlwaysUsesPlayScheduleMs() {
        let rules = PartyRules()
        #expect(rules.playLead(recentMaxRTTs: [1, 5_000]) == 1500)
    }

    @Test func adaptiveLeadIsTwiceTheWorstRecentRTTPlusMarginClamped() {
        var rules = PartyRules()
        rules.playScheduleMode = .adaptive
        #expect(rules.playLead(recentMaxRTTs: [20, 50]) == 300, "2 × 50 + 100 = 200, clamped up to CONTROL_SCHEDULE_MS")
        #expect(rules.playLead(recentMaxRTTs: [400, 120]) == 900)
        #expect(rules.playLead(recentMaxRTTs: [1_000]) == 1500, "clamped down to PLAY_SCHEDULE_MS")
        #expect(rules.playLead(recentMaxRTTs: [20, nil]) == 1500, "an unmeasured member gets the fixed lead")
    }

    @Test func theCoreKeepsTheLastEightRoundTripsAndASmoothedValue() throws {
        var party = Party(roomIDs: RandomRoomIDs(), tokens: CountingResumeTokens())
        _ = party.connect("c", now: 1)
        for rtt: UInt64 in [500, 10, 10, 10, 10, 10, 10, 10, 10] {
            party.recordRoundTrip("c", milliseconds: rtt)
        }
        let session = try #require(party.sessions["c"])
        #expect(session.recentRTTs.count == 8)
        #expect(session.recentMaxRTT == 10, "the 500 ms sample has aged out of the window")
        let smoothed = try #require(session.smoothedRTT)
        #expect(smoothed > 10 && smoothed < 500)
    }

    @Test func adaptiveModeSchedulesAPlayWithTheRoomsLeadAndAnchorsTheHostsPosition() {
        var rules = PartyRules()
        rules.playScheduleMode = .adaptive
        let h = Harness(rules: rules)
        h.connect("h")
        h.connect("g")
        let room = h.createRoom("h")
        h.joinRoom("g", room, ready: true)
        h.party.recordRoundTrip("h", milliseconds: 80)
        h.party.recordRoundTrip("g", milliseconds: 120)
        h.clear()
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        let play = h.last("g", "player_event")
        #expect(play?.int("target_server_ts").map { UInt64($0) } == h.now + 340, "2 × 120 + 100")
        // The host's 10 s held half its round trip ago (anchored at now − 40), so a seek lead
        // (300 ms) before the target (now + 340) the room is at 10.08; the wire says so, as of then.
        #expect(play?.serverTs == h.now + 40)
        #expect(play?.number("position") == 10 + Double(80) / 1000, "the host's position held half its round trip ago")
        #expect(h.party.rooms[room]?.playback == Playback(position: 10, playState: .playing, asOf: h.now - 40))
    }
}
