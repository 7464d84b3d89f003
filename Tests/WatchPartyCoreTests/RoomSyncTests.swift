import Foundation
import Testing

@testable import WatchPartyCore

/// A room's sync as the server sees it (docs/sync.md § Per room): the host's smoothed offset,
/// the members' statuses and their clock uncertainty, classified on the manual clock.
@Suite struct RoomSyncTests {
    /// Host h and `guests`, all ready, playing from 10 s since t0; the clock past the cooldown.
    func playingRoom(guests: [ClientID] = ["g"]) -> (Harness, RoomID) {
        let h = Harness()
        let room = h.room(guests: guests, ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.now = t0 + 3500
        h.clear()
        return (h, room)
    }

    func sync(_ h: Harness, _ room: RoomID) throws -> RoomSync {
        h.party.sync(of: try #require(h.party.rooms[room]))
    }

    /// One host report `offset` seconds off the room's timeline, a second after the last.
    func report(_ h: Harness, _ room: RoomID, offset: Double) {
        h.advance(by: 1000)
        let position = (h.party.rooms[room]?.playback.position(at: h.now) ?? 0) + offset
        h.send("h", "state_update", room: room, payload: ["position": position, "play_state": "playing"])
    }

    @Test func aPausedRoomOrAPendingPlayHasNoTimelineToKeep() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        #expect(try sync(h, room).verdict == .paused)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 5])
        #expect(h.party.rooms[room]?.pendingPlay != nil)
        #expect(try sync(h, room).verdict == .paused, "the play waits on the barrier: still paused for everyone")
    }

    @Test func thePlayingRoomIsUnmeasuredUntilTheHostReports() throws {
        let (h, room) = playingRoom()
        let before = try sync(h, room)
        #expect(before.verdict == .unmeasured)
        #expect(before.hostOffset == nil)
        report(h, room, offset: -0.03)
        let after = try sync(h, room)
        #expect(after.verdict == .inStep)
        #expect(abs(try #require(after.hostOffset) + 0.03) < 1e-9, "the first report's own offset, not half of it")
    }

    @Test func theHostsOffsetGradesTheRoomAndADriftReanchorClearsIt() throws {
        let (h, room) = playingRoom()
        report(h, room, offset: 0.07)
        #expect(try sync(h, room).verdict == .drifting, "70 ms: past the drift threshold, under 100 ms")
        report(h, room, offset: 0.2)
        let off = try sync(h, room)
        #expect(off.verdict == .outOfStep)
        #expect(abs(try #require(off.hostOffset) - 0.135) < 1e-9, "smoothed: 0.07 + ½ (0.2 − 0.07)")
        report(h, room, offset: 0.2)
        #expect(h.stateUpdates.last?.result == .drift, "the third same-side report re-anchors the room")
        #expect(try sync(h, room).verdict == .unmeasured, "the room now follows the host; the next report measures again")
        report(h, room, offset: 0.01)
        #expect(try sync(h, room).verdict == .inStep)
    }

    @Test func aCommandStartsTheMeasurementOver() throws {
        let (h, room) = playingRoom()
        report(h, room, offset: 0.2)
        #expect(try sync(h, room).verdict == .outOfStep)
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 40, "play_state": "playing"])
        #expect(try sync(h, room).hostOffset == nil, "a new timeline: the old offset says nothing about it")
        #expect(try sync(h, room).verdict == .unmeasured)
    }

    @Test func guestsCatchingUpAreCountedAgainstTheRoom() throws {
        let (h, room) = playingRoom(guests: ["g1", "g2", "g3"])
        report(h, room, offset: 0)
        #expect(try sync(h, room).verdict == .inStep)
        h.send("g1", "participant_status", room: room, payload: ["status": "catching_up"])
        #expect(try sync(h, room).membersCatchingUp == 1)
        #expect(try sync(h, room).verdict == .drifting, "one of three guests")
        h.send("g2", "participant_status", room: room, payload: ["status": "buffering"])
        #expect(try sync(h, room).verdict == .outOfStep, "two of three guests")
        h.send("g1", "participant_status", room: room, payload: ["status": "in_sync"])
        h.send("g2", "participant_status", room: room, payload: ["status": "in_sync"])
        #expect(try sync(h, room).membersCatchingUp == 0)
        #expect(try sync(h, room).verdict == .inStep)
        h.send("h", "participant_status", room: room, payload: ["status": "buffering"])
        #expect(try sync(h, room).membersCatchingUp == 0, "the host's own status is not a guest out of step: its offset says it")
    }

    @Test func clockUncertaintyIsHalfTheWorstRecentRoundTrip() throws {
        let (h, room) = playingRoom(guests: ["g1", "g2"])
        #expect(try sync(h, room).clockUncertaintyMs == nil)
        h.party.recordRoundTrip("g1", milliseconds: 40)
        h.party.recordRoundTrip("g2", milliseconds: 180)
        h.party.recordRoundTrip("g2", milliseconds: 60)
        #expect(try sync(h, room).clockUncertaintyMs == 90, "g2's worst recent round trip, 180 ms, halved")
    }
}
