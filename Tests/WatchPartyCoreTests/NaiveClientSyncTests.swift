import Foundation
import Testing

@testable import WatchPartyCore

/// What makes the unmodified upstream clients keep step (docs/sync.md § Naive clients): the
/// state filter that tells drift from jitter, and the due play for a late joiner.
@Suite struct NaiveClientSyncTests {
    /// Host h plays from 10 s at t0; past the cooldown (t0 + 3500) the room is at 13.5 s.
    func playingRoom() -> (Harness, RoomID) {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.now = t0 + 3500
        h.clear()
        return (h, room)
    }

    /// One host report, `offset` seconds off the room's timeline, a second after the last.
    func report(_ h: Harness, _ room: RoomID, offset: Double, playState: String = "playing") -> StateUpdateResult? {
        h.advance(by: 1000)
        let position = (h.party.rooms[room]?.playback.position(at: h.now) ?? 0) + offset
        h.send("h", "state_update", room: room, payload: ["position": position, "play_state": playState])
        return h.stateUpdates.last?.result
    }

    @Test func aPersistentOffsetIsDriftAndTheRoomFollowsTheHost() throws {
        let (h, room) = playingRoom()
        // A 200 ms stall: too small for the jitter threshold (0.5 s), on every report.
        #expect(report(h, room, offset: -0.2) == .jitter)
        #expect(report(h, room, offset: -0.2) == .jitter)
        #expect(h.inbox("g").isEmpty)
        #expect(report(h, room, offset: -0.2) == .drift, "the third report in a row on one side")
        let relayed = try #require(h.last("g", "state_update"))
        let stored = try #require(h.party.rooms[room])
        #expect(relayed.number("position") == stored.playback.position)
        #expect(stored.playback.asOf == h.now)
        #expect(abs(stored.playback.position - (10 + Double(h.now - t0) / 1000 - 0.2)) < 1e-9, "re-anchored where the host is")
        // On the new timeline the host is in step: its next reports are plain jitter, not drift again.
        #expect(report(h, room, offset: 0) == .jitter)
        #expect(report(h, room, offset: 0.01) == .jitter)
        #expect(report(h, room, offset: -0.01) == .jitter)
    }

    @Test func noiseIsNeverDrift() {
        let (h, room) = playingRoom()
        // ±120 ms alternating, and a run broken by one report back in step, for a minute.
        let offsets: [Double] = [0.12, -0.12, 0.1, -0.08, 0.2, 0.2, 0, 0.2, 0.2, -0.15, 0.04, -0.2, -0.2, 0.03, -0.2]
        for _ in 0..<4 {
            for offset in offsets {
                #expect(report(h, room, offset: offset) == .jitter, "offset \(offset)")
            }
        }
        #expect(h.inbox("g").isEmpty)
    }

    @Test func anOffsetBelowTheDriftThresholdStays() {
        let (h, room) = playingRoom()
        for _ in 0..<10 {
            #expect(report(h, room, offset: -0.036) == .jitter, "the host's start latency: inside 50 ms, left alone")
        }
    }

    @Test func aPausedRoomIsNotReanchoredByDrift() {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "pause", "position": 30])
        h.now = t0 + 3000
        for _ in 0..<5 {
            #expect(report(h, room, offset: 0.2, playState: "paused") == .jitter)
        }
        #expect(h.party.rooms[room]?.playback.position == 30)
    }

    @Test func aCommandStartsTheCountOver() {
        let (h, room) = playingRoom()
        #expect(report(h, room, offset: -0.2) == .jitter)
        #expect(report(h, room, offset: -0.2) == .jitter)
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 100])
        h.advance(by: 2300)  // past the seek's cooldown
        #expect(report(h, room, offset: -0.2) == .jitter, "the streak began again at the seek")
        #expect(report(h, room, offset: -0.2) == .jitter)
        #expect(report(h, room, offset: -0.2) == .drift)
    }

    /// Host h plays from 10 s at t0 (target t0 + 1500, cooldown to t0 + 3500); the host then
    /// reports at t0 + 1000, + 2000, … with `offsets` (seconds off the room's timeline).
    func reportsFromTheClick(_ offsets: [Double]) -> (Harness, RoomID, [StateUpdateResult?]) {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.clear()
        var results: [StateUpdateResult?] = []
        for offset in offsets {
            results.append(report(h, room, offset: offset))
        }
        return (h, room, results)
    }

    @Test func aStartLatencySeenDuringTheCooldownIsCorrectedByTheFirstReportAfterIt() throws {
        // The host's video started 56 ms after its click: every report says so, from the first.
        let (h, _, results) = reportsFromTheClick([-0.056, -0.056, -0.056, -0.056])
        #expect(results == [.cooldown, .cooldown, .cooldown, .drift], "dropped in the cooldown (§8), corrected at its end")
        #expect(h.now == t0 + 4000)
        let relayed = try #require(h.last("g", "state_update"))
        #expect(abs(try #require(relayed.number("position")) - (10 + 4 - 0.056)) < 1e-9, "the room now where the host is")
        #expect(h.messages("g", "state_update").count == 1, "nothing relayed during the cooldown")
    }

    @Test func evidenceFromTheCooldownStartsOverOnAReportOffTheTimeline() {
        // A jump (a seek the host has not told yet) in the cooldown: what came before it is no evidence.
        let (_, _, results) = reportsFromTheClick([-0.056, -0.056, 0.9, -0.056, -0.056])
        #expect(results == [.cooldown, .cooldown, .cooldown, .jitter, .jitter])
    }

    @Test func aLateJoinerOfAPlayingRoomGetsADuePlay() throws {
        let (h, room) = playingRoom()
        h.now = t0 + 10_000
        h.connect("late")
        h.clear()
        h.send("late", "join_room", room: room)
        #expect(h.types("late") == ["room_state", "participant_list", "participant_statuses", "player_event"])
        let play = try #require(h.last("late", "player_event"))
        let target = h.now + 300
        #expect(play.string("action") == "play")
        #expect(play.client == "h")
        #expect(play.time("target_server_ts") == target)
        #expect(play.serverTs == h.now, "a seek lead (300 ms) before the target")
        #expect(play.number("position") == 10 + Double(h.now - t0) / 1000, "where the room is then")
        #expect(h.types("g") == ["participants_update", "participant_list", "participant_statuses"], "the others get no play")
    }

    @Test func noDuePlayForAPausedRoomOrAPendingPlay() {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: true)
        h.connect("late")
        h.clear()
        h.send("late", "join_room", room: room)
        #expect(!h.types("late").contains("player_event"), "paused: room_state says it all")

        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 5])  // pending: late is not ready
        h.connect("later")
        h.clear()
        h.send("later", "join_room", room: room)
        #expect(!h.types("later").contains("player_event"), "the pending play's release will reach it")
    }
}
