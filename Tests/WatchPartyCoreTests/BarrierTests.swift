import Foundation
import Testing

@testable import WatchPartyCore

/// The ready barrier and scheduled play (PROTOCOL.md §7).
@Suite struct BarrierTests {
    /// Asserts a scheduled play as every member sees it. `position` held at `heldAt` (the
    /// click); the wire gives it as of 300 ms (the clients' seek lead) before the target, where
    /// a host that started at its click will be then (docs/sync.md § Naive clients), with
    /// `server_ts` = that moment: a §6 client's `position + (t − server_ts)` is the same timeline.
    static func expectPlay(
        _ wire: Wire?, room: RoomID, by client: ClientID, position: Double, heldAt: ServerTime, releasedAt: ServerTime,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let wire else {
            Issue.record("no scheduled play", sourceLocation: sourceLocation)
            return
        }
        #expect(wire.type == "player_event", sourceLocation: sourceLocation)
        #expect(wire.room == room, sourceLocation: sourceLocation)
        #expect(wire.client == client, sourceLocation: sourceLocation)
        #expect(wire.ts == releasedAt, sourceLocation: sourceLocation)
        let target = releasedAt + 1500
        let anchor = target - 300
        #expect(wire.serverTs == anchor, "server_ts is when the sent position holds: a seek lead before the target", sourceLocation: sourceLocation)
        #expect(wire.payloadKeys == ["action", "position", "play_state", "target_server_ts"], sourceLocation: sourceLocation)
        #expect(wire.string("action") == "play", sourceLocation: sourceLocation)
        #expect(wire.number("position") == position + Double(anchor - heldAt) / 1000, "the position as of the anchor", sourceLocation: sourceLocation)
        #expect(wire.string("play_state") == "playing", sourceLocation: sourceLocation)
        #expect(wire.time("target_server_ts") == target, sourceLocation: sourceLocation)
    }

    func plays(_ h: Harness, _ client: ClientID) -> [Wire] {
        h.messages(client, "player_event").filter { $0.string("action") == "play" }
    }

    // MARK: Immediate

    @Test func allReadyPlaysAtOnceForEveryoneIncludingTheHost() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: true)
        h.now = t0 + 700
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 12.5])
        for member in ["h", "g1", "g2"] {
            #expect(h.types(member) == ["player_event"])
            Self.expectPlay(h.inbox(member).first, room: room, by: "h", position: 12.5, heldAt: t0 + 700, releasedAt: t0 + 700)
        }
        #expect(h.lastOutcome.deliveries.count == 1)
        #expect(h.lastOutcome.deliveries.first?.recipients == ["h", "g1", "g2"])
        #expect(h.lastOutcome.timers.isEmpty, "no barrier wait when all are ready")
        let stored = try #require(h.party.rooms[room])
        #expect(stored.pendingPlay == nil)
        #expect(stored.playback == Playback(position: 12.5, playState: .playing, asOf: t0 + 700))
    }

    @Test func hostPlayWithoutPositionUsesTheRoomPosition() throws {
        let h = Harness()
        let room = h.room(payload: ["start_pos": 33])
        h.send("h", "player_event", room: room, payload: ["action": "play"])
        Self.expectPlay(h.only("h"), room: room, by: "h", position: 33, heldAt: t0, releasedAt: t0)
    }

    // MARK: Release by the last ready

    @Test func lastReadyReleasesThePendingPlay() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        #expect(h.inboxes.isEmpty, "nothing is broadcast while the play is pending")
        #expect(h.lastOutcome.timers.count == 1)
        let timer = try #require(h.lastOutcome.timers.first)
        #expect(timer.due == t0 + 2000)
        #expect(h.party.rooms[room]?.pendingPlay != nil)
        #expect(h.party.rooms[room]?.playback.playState == .paused, "the room is paused while the play is pending")

        h.advance(by: 500)
        h.send("g1", "ready", room: room)
        #expect(h.inboxes.isEmpty)
        h.advance(by: 300)
        h.send("g2", "ready", room: room)
        for member in ["h", "g1", "g2"] {
            #expect(h.types(member) == ["player_event"])
            Self.expectPlay(h.inbox(member).first, room: room, by: "h", position: 30, heldAt: t0, releasedAt: t0 + 800)
        }
        #expect(h.releases.count == 1)
        #expect(h.releases.first?.cause == .allReady)
        #expect(h.releases.first?.waitedMs == 800)
        #expect(h.releases.first?.latenessMs == 0)
        #expect(h.party.rooms[room]?.pendingPlay == nil)
        #expect(h.party.rooms[room]?.playback == Playback(position: 30, playState: .playing, asOf: t0))

        // The timer still fires later: nothing happens.
        h.clear()
        h.advance(by: 5000)
        #expect(h.fired.count == 1)
        #expect(h.inboxes.isEmpty)
        #expect(h.releases.isEmpty)
        h.send("g2", "ready", room: room)
        #expect(h.inboxes.isEmpty)
    }

    @Test func readyWithoutPendingPlayIsSilent() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("g", "ready", room: room)
        h.send("g", "ready", room: room)
        #expect(h.inboxes.isEmpty)
        #expect(h.party.rooms[room]?.ready == ["h", "g"])
    }

    @Test func readyErrors() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.connect("x")
        h.clear()
        h.send("x", "ready")
        h.send("x", "ready", room: "room-404")
        h.send("x", "ready", room: room)
        #expect(h.errorCodes("x") == ["INVALID_READY", "ROOM_NOT_FOUND", "NOT_ROOM_MEMBER"])
        #expect(h.inbox("x").first?.string("message") == "Ready message requires a room ID")
        #expect(h.party.rooms[room]?.ready == ["h"])
    }

    // MARK: Release by timeout

    @Test func timeoutReleasesExactlyOnce() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 7])
        let timer = try #require(h.lastOutcome.timers.first)
        #expect(timer.key == .readyWait(room: room, generation: timer.key.generation))
        #expect(timer.due == t0 + 2000)

        h.advance(by: 1999)
        #expect(h.inboxes.isEmpty)
        h.advance(by: 1)
        for member in ["h", "g"] {
            #expect(h.types(member) == ["player_event"])
            Self.expectPlay(h.inbox(member).first, room: room, by: "h", position: 7, heldAt: t0, releasedAt: t0 + 2000)
        }
        #expect(h.releases.count == 1)
        #expect(h.releases.first?.cause == .timeout)
        #expect(h.releases.first?.waitedMs == 2000)
        #expect(h.releases.first?.latenessMs == 0)

        h.clear()
        h.fire(timer.key)
        h.advance(by: 100)
        h.fire(timer.key)
        h.send("g", "ready", room: room)
        #expect(h.inboxes.isEmpty, "a second firing or a late ready does nothing")
        #expect(h.releases.isEmpty)
    }

    @Test func lateTimerReportsLateness() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 7])
        h.advance(by: 2350, late: true)
        #expect(h.fired.count == 1)
        Self.expectPlay(h.last("g", "player_event"), room: room, by: "h", position: 7, heldAt: t0, releasedAt: t0 + 2350)
        #expect(h.releases.count == 1)
        #expect(h.releases.first?.cause == .timeout)
        #expect(h.releases.first?.waitedMs == 2350)
        #expect(h.releases.first?.latenessMs == 350)
    }

    @Test func customWaitIsHonoured() throws {
        var rules = PartyRules()
        rules.maxReadyWaitMs = 500
        rules.playScheduleMs = 900
        let h = Harness(rules: rules)
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 1])
        #expect(h.lastOutcome.timers.first?.due == t0 + 500)
        h.advance(by: 500)
        #expect(h.last("g", "player_event")?.time("target_server_ts") == t0 + 1400)
    }

    // MARK: Cancellation and updates

    @Test("pause and buffering cancel a pending play", arguments: ["pause", "buffering"])
    func pauseCancels(action: String) throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 400)
        h.send("h", "player_event", room: room, payload: ["action": action])
        #expect(h.types("g") == ["player_event"])
        #expect(h.inbox("g").first?.string("action") == action)
        #expect(h.inbox("g").first?.string("play_state") == "paused")
        #expect(h.inbox("g").first?.number("position") == 30)
        #expect(h.inbox("h").isEmpty)
        #expect(h.party.rooms[room]?.pendingPlay == nil)

        h.clear()
        h.send("g", "ready", room: room)
        h.advance(by: 5000)
        #expect(h.fired.count == 1)
        #expect(h.inboxes.isEmpty, "the cancelled play never goes out")
        #expect(h.releases.isEmpty)
    }

    @Test func guestPauseCancelsToo() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false)
        h.send("g1", "ready", room: room)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.send("g1", "player_event", room: room, payload: ["action": "pause"])
        h.clear()
        h.advance(by: 3000)
        #expect(plays(h, "g2").isEmpty)
    }

    @Test func seekWhilePendingUpdatesThePendingPosition() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 500)
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 100])
        let seek = try #require(h.only("g"))
        #expect(seek.string("action") == "seek")
        #expect(seek.number("position") == 100)
        #expect(seek.string("play_state") == "paused", "the room stays paused while the play is pending")
        #expect(seek.time("target_server_ts") == t0 + 800)
        #expect(h.inbox("h").isEmpty)
        #expect(h.party.rooms[room]?.pendingPlay?.position == 100)

        h.clear()
        h.advance(by: 200)
        h.send("g", "ready", room: room)
        for member in ["h", "g"] {
            Self.expectPlay(h.only(member), room: room, by: "h", position: 100, heldAt: t0 + 500, releasedAt: t0 + 700)
        }
    }

    @Test func anotherPlayWhilePendingUpdatesPositionButNotTheDeadline() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 300)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 50])
        #expect(h.inboxes.isEmpty)
        #expect(h.lastOutcome.timers.isEmpty, "the pending play keeps its deadline")
        #expect(h.requested.count == 1)
        h.advance(by: 1699)
        #expect(h.inboxes.isEmpty)
        h.advance(by: 1)
        Self.expectPlay(h.only("g"), room: room, by: "h", position: 50, heldAt: t0 + 300, releasedAt: t0 + 2000)
    }

    @Test func deadlineAndLatenessCountFromCreationNotFromTheLastUpdate() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 300)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 50])
        h.advance(by: 1900, late: true)  // the t0+2000 timer fires 200 ms late, at t0+2200
        Self.expectPlay(h.last("g", "player_event"), room: room, by: "h", position: 50, heldAt: t0 + 300, releasedAt: t0 + 2200)
        #expect(h.releases.count == 1)
        #expect(h.releases.first?.cause == .timeout)
        #expect(h.releases.first?.waitedMs == 2200)
        #expect(h.releases.first?.latenessMs == 200)
    }

    @Test func staleTimerOfACancelledPlayDoesNotReleaseANewerOne() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 100)
        h.send("h", "player_event", room: room, payload: ["action": "pause"])
        h.advance(by: 900)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 40])
        #expect(h.requested.count == 2)
        #expect(h.requested.last?.due == t0 + 3000)
        h.clear()
        h.advance(by: 1000)  // t0+2000: the first timer fires
        #expect(h.fired.count == 1)
        #expect(h.inboxes.isEmpty)
        h.advance(by: 999)
        #expect(h.inboxes.isEmpty)
        h.advance(by: 1)
        Self.expectPlay(h.only("g"), room: room, by: "h", position: 40, heldAt: t0 + 1000, releasedAt: t0 + 3000)
        #expect(h.releases.count == 1)
    }

    @Test func releasedWhenTheOnlyUnreadyGuestLeaves() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"], ready: true)
        h.login("g2", name: "G2")
        h.joinRoom("g2", room)
        h.clear()
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 600)
        h.send("g2", "leave_room")
        for member in ["h", "g1"] {
            #expect(h.types(member) == ["client_left", "participant_list", "participant_statuses", "player_event"], "\(member)")
            Self.expectPlay(h.inbox(member).last, room: room, by: "h", position: 30, heldAt: t0, releasedAt: t0 + 600)
        }
        #expect(h.types("g2") == ["room_list"])
        #expect(h.releases.count == 1)
        #expect(h.releases.first?.cause == .allReady)
        #expect(h.releases.first?.latenessMs == 0)

        h.clear()
        h.advance(by: 3000)
        #expect(h.inboxes.isEmpty, "the timer finds nothing to release")
    }

    @Test func releasedWhenTheOnlyUnreadyGuestDisconnects() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false)
        h.send("g1", "ready", room: room)
        h.send("g1", "player_event", room: room, payload: ["action": "play"])
        h.clear()
        h.disconnect("g2")
        Self.expectPlay(h.last("h", "player_event"), room: room, by: "g1", position: 0, heldAt: t0, releasedAt: t0)
    }

    @Test func guestLeaveDoesNotReleaseWhileOthersAreUnready() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.send("g1", "leave_room")
        #expect(plays(h, "h").isEmpty)
        #expect(h.party.rooms[room]?.pendingPlay != nil)
    }

    @Test func hostDepartureWithTransferCancelsThePendingPlay() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false, guestFeatures: ["g1": ["host_transfer"]])
        h.send("g1", "ready", room: room)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.send("h", "leave_room")
        #expect(h.party.rooms[room]?.hostID == "g1")
        #expect(h.party.rooms[room]?.pendingPlay == nil)
        h.clear()
        h.send("g2", "ready", room: room)
        h.advance(by: 5000)
        #expect(h.fired.count == 1)
        #expect(h.inboxes.isEmpty)
        #expect(h.releases.isEmpty)
    }

    @Test func joinerDuringAPendingPlaySeesPausedAndIsIncludedInTheRelease() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.advance(by: 100)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 30])
        h.advance(by: 500)
        h.login("j", name: "Jo")
        h.joinRoom("j", room)
        let state = try #require(h.last("j", "room_state"))
        #expect(state.statePlayState == "paused")
        #expect(state.statePosition == 30)
        h.send("g", "ready", room: room)
        #expect(plays(h, "g").isEmpty, "the joiner is not ready yet")
        h.send("j", "ready", room: room)
        for member in ["h", "g", "j"] {
            Self.expectPlay(plays(h, member).first, room: room, by: "h", position: 30, heldAt: t0 + 100, releasedAt: t0 + 600)
        }
    }

    @Test func playWithUnreadyMembersPausesAPlayingRoomUntilRelease() throws {
        // docs/protocol.md, choice 4.
        let h = Harness()
        let room = h.room(guests: ["g"], ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.advance(by: 5000)
        h.login("j", name: "Jo")
        h.joinRoom("j", room)
        h.clear()
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 20])
        #expect(h.inboxes.isEmpty)
        #expect(h.party.rooms[room]?.playback == Playback(position: 20, playState: .paused, asOf: t0 + 5000))
        h.advance(by: 1000)
        h.connect("k")
        h.send("k", "join_room", room: room)
        #expect(h.last("k", "room_state")?.statePlayState == "paused")
        #expect(h.last("k", "room_state")?.statePosition == 20)
        h.advance(by: 1000)  // t0+7000: the barrier times out
        Self.expectPlay(h.last("j", "player_event"), room: room, by: "h", position: 20, heldAt: t0 + 5000, releasedAt: t0 + 7000)
        #expect(h.party.rooms[room]?.playback == Playback(position: 20, playState: .playing, asOf: t0 + 5000))
    }

    @Test func guestPlayIsAttributedToTheGuest() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false)
        h.send("g1", "ready", room: room)
        h.send("g1", "player_event", room: room, payload: ["action": "play", "position": 99])
        h.send("g2", "ready", room: room)
        for member in ["h", "g1", "g2"] {
            Self.expectPlay(plays(h, member).first, room: room, by: "g1", position: 0, heldAt: t0, releasedAt: t0)
        }
    }

    @Test func neverReleasedTwiceAcrossManyReadies() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2", "g3"], ready: false)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 1])
        for guest in ["g1", "g2", "g3", "g1", "g3"] {
            h.advance(by: 100)
            h.send(guest, "ready", room: room)
        }
        h.advance(by: 5000)
        for member in ["h", "g1", "g2", "g3"] {
            #expect(plays(h, member).count == 1)
        }
        #expect(h.releases.count == 1)
    }
}

extension TimerKey {
    /// The generation of a ready-wait timer (0 for others).
    var generation: UInt64 {
        if case .readyWait(_, let generation) = self { generation } else { 0 }
    }
}
