import Foundation
import Testing

@testable import WatchPartyCore

/// The host state-report filter (PROTOCOL.md §8).
@Suite struct StateFilterTests {
    /// Host h and guest g (ready); the host plays from 10 s at t0 (target t0+1500, cooldown to t0+3500).
    func playingRoom(rules: PartyRules = PartyRules()) -> (Harness, RoomID) {
        let h = Harness(rules: rules)
        let room = h.room(guests: ["g"], ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.clear()
        return (h, room)
    }

    func report(_ h: Harness, _ room: RoomID, _ position: Double, _ playState: String = "playing", from client: ClientID = "h") {
        h.send(client, "state_update", room: room, payload: ["position": position, "play_state": playState])
    }

    func lastResult(_ h: Harness) -> StateUpdateResult? { h.stateUpdates.last?.result }

    // MARK: Cooldown

    @Test func cooldownCountsFromTheCommandTarget() throws {
        let (h, room) = playingRoom()
        h.advance(by: 1000)
        report(h, room, 20, "paused")  // a play-state change does not beat the cooldown
        #expect(lastResult(h) == .cooldown)
        h.advance(by: 2499)  // t0+3499
        report(h, room, 20)
        #expect(lastResult(h) == .cooldown)
        #expect(h.inbox("g").isEmpty)
        h.advance(by: 1)  // t0+3500 = target + COMMAND_COOLDOWN_MS
        report(h, room, 20)
        #expect(lastResult(h) == .accepted)
        #expect(h.types("g") == ["state_update"])
    }

    @Test func cooldownAfterAGuestCommand() throws {
        let (h, room) = playingRoom()
        h.advance(by: 10_000)
        h.send("g", "player_event", room: room, payload: ["action": "pause"])  // target t0+10300
        h.clear()
        h.advance(by: 2000)
        report(h, room, 30, "playing")  // the host still reports the old state
        #expect(lastResult(h) == .cooldown)
        #expect(h.inbox("g").isEmpty)
        #expect(h.party.rooms[room]?.playback.playState == .paused)
    }

    @Test func cooldownWhileAPlayIsPending() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], ready: false)
        h.advance(by: 10_000)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 5])
        h.advance(by: 1500)
        report(h, room, 6.5, "playing")
        #expect(lastResult(h) == .cooldown)
        #expect(h.inbox("g").isEmpty)
        #expect(h.party.rooms[room]?.playback.playState == .paused)
    }

    @Test func configurableCooldown() throws {
        var rules = PartyRules()
        rules.commandCooldownMs = 5000
        let (h, room) = playingRoom(rules: rules)
        h.advance(by: 6499)
        report(h, room, 30)
        #expect(lastResult(h) == .cooldown)
        h.advance(by: 1)
        report(h, room, 30)
        #expect(lastResult(h) == .accepted)
    }

    // MARK: Play-state change

    @Test func playStateChangeIsAcceptedEvenInsideTheRateWindow() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.advance(by: 100)
        report(h, room, 5, "playing")
        #expect(lastResult(h) == .accepted)
        let update = try #require(h.only("g"))
        #expect(update.type == "state_update")
        #expect(update.room == room)
        #expect(update.client == "h")
        #expect(update.ts == t0 + 100)
        #expect(update.serverTs == t0 + 100)
        #expect(update.payloadKeys == ["position", "play_state"])
        #expect(update.number("position") == 5)
        #expect(update.string("play_state") == "playing")
        #expect(h.inbox("h").isEmpty, "the host gets no echo")
        #expect(h.party.rooms[room]?.playback == Playback(position: 5, playState: .playing, asOf: t0 + 100))

        h.clear()
        h.advance(by: 100)
        report(h, room, 5.1, "paused")
        #expect(lastResult(h) == .accepted)
        #expect(h.only("g")?.string("play_state") == "paused")
    }

    // MARK: Rate

    @Test func rateIsCountedFromTheLastAcceptedUpdate() throws {
        let (h, room) = playingRoom()
        h.advance(by: 5000)
        report(h, room, 20)  // accepted at t0+5000 (diff 5)
        #expect(lastResult(h) == .accepted)
        h.advance(by: 499)
        report(h, room, 30)
        #expect(lastResult(h) == .rate)
        h.advance(by: 1)
        report(h, room, 30)
        #expect(lastResult(h) == .accepted)
        #expect(h.messages("g", "state_update").map { $0.number("position") } == [20, 30])
    }

    @Test func rateIsCountedFromTheLastCommandToo() throws {
        var rules = PartyRules()
        rules.commandCooldownMs = 0
        let (h, room) = playingRoom(rules: rules)
        h.advance(by: 5000)
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 50])  // handled at t0+5000, target t0+5300
        h.clear()
        h.advance(by: 400)
        report(h, room, 60)
        #expect(lastResult(h) == .rate)
        h.advance(by: 100)
        report(h, room, 60)
        #expect(lastResult(h) == .accepted)
    }

    // MARK: Jitter

    @Test func jitterIsMeasuredAgainstTheProjectedPosition() throws {
        let (h, room) = playingRoom()
        h.advance(by: 5000)  // projected: 15
        report(h, room, 15.2)
        #expect(lastResult(h) == .jitter)
        #expect(abs((h.stateUpdates.last?.drift ?? -1) - 0.2) < 1e-9)
        report(h, room, 14.6)
        #expect(lastResult(h) == .jitter)
        #expect(h.inbox("g").isEmpty)
        report(h, room, 16)
        #expect(lastResult(h) == .accepted)
        #expect(abs((h.stateUpdates.last?.drift ?? -1) - 1.0) < 1e-9)
        let update = try #require(h.only("g"))
        #expect(update.number("position") == 16)
        #expect(update.string("play_state") == "playing")
        #expect(update.client == "h")
        #expect(h.party.rooms[room]?.playback == Playback(position: 16, playState: .playing, asOf: t0 + 5000))

        // The accepted report is the new base: at t0+6000 the room is at 17, not 16.
        h.clear()
        h.advance(by: 1000)
        report(h, room, 17.1)
        #expect(lastResult(h) == .jitter)
        report(h, room, 16.1)
        #expect(lastResult(h) == .accepted)
    }

    @Test func jitterBoundaryAndNegativeDrift() throws {
        let (h, room) = playingRoom()
        h.advance(by: 5000)
        report(h, room, 14.5)  // |diff| = 0.5: not jitter
        #expect(lastResult(h) == .accepted)
        h.advance(by: 1000)  // projected 15.5
        report(h, room, 15.0001)
        #expect(lastResult(h) == .jitter)
        report(h, room, 14.9)
        #expect(lastResult(h) == .accepted)
        #expect(abs((h.stateUpdates.last?.drift ?? -1) - 0.6) < 1e-9)
    }

    @Test func jitterWhilePausedUsesTheStillPosition() throws {
        let h = Harness()
        let room = h.room(guests: ["g"], payload: ["start_pos": 40])
        h.advance(by: 60_000)
        report(h, room, 40.3, "paused")
        #expect(lastResult(h) == .jitter)
        report(h, room, 41, "paused")
        #expect(lastResult(h) == .accepted)
        #expect(h.only("g")?.number("position") == 41)
    }

    @Test func everyReportIsCountedWithItsDrift() throws {
        let (h, room) = playingRoom()
        h.advance(by: 1000)
        report(h, room, 13)  // cooldown, projected 11
        h.advance(by: 4000)  // projected 15
        report(h, room, 15.1)  // jitter
        report(h, room, 18)  // accepted
        report(h, room, 18.5)  // rate
        let results = h.stateUpdates
        #expect(results.map(\.result) == [.cooldown, .jitter, .accepted, .rate])
        let drifts = results.map(\.drift)
        let expected = [2.0, 0.1, 3.0, 0.5]
        #expect(drifts.count == 4)
        for (drift, wanted) in zip(drifts, expected) {
            #expect(abs(drift - wanted) < 1e-9)
        }
        #expect(h.messages("g", "state_update").count == 1)
    }

    // MARK: Errors

    @Test func nonHostReportIsRefused() throws {
        let (h, room) = playingRoom()
        h.advance(by: 5000)
        report(h, room, 30, from: "g")
        let reply = try #require(h.only("g"))
        #expect(reply.errorCode == "HOST_PERMISSION_REQUIRED")
        #expect(reply.string("message") == "Only the room host can control playback")
        #expect(h.inbox("h").isEmpty)
        #expect(h.stateUpdates.isEmpty)
    }

    @Test func errorOrder() throws {
        let (h, room) = playingRoom()
        h.connect("x")
        h.clear()
        let bad: [String: Any] = ["position": "x"]
        h.send("x", "state_update", payload: bad)
        h.send("x", "state_update", room: "room-404", payload: bad)
        h.send("x", "state_update", room: room, payload: bad)
        h.send("g", "state_update", room: room, payload: bad)
        #expect(h.errorCodes("x") == ["ROOM_ID_REQUIRED", "ROOM_NOT_FOUND", "NOT_ROOM_MEMBER"])
        #expect(h.errorCodes("g") == ["HOST_PERMISSION_REQUIRED"])
    }

    static let invalidReports: [String] = [
        "null", "[]", "{}", #"{"position":5}"#, #"{"play_state":"playing"}"#, #"{"position":-1,"play_state":"playing"}"#,
        #"{"position":5,"play_state":"stopped"}"#, #"{"position":"5","play_state":"paused"}"#, #"{"position":86401,"play_state":"paused"}"#,
    ]

    @Test("invalid state reports", arguments: invalidReports)
    func invalidReport(json: String) throws {
        let (h, room) = playingRoom()
        h.advance(by: 5000)
        h.sendText("h", #"{"type":"state_update","room":"\#(room)","payload":\#(json),"ts":1}"#)
        #expect(h.errorCodes("h") == ["INVALID_PLAYBACK_PAYLOAD"])
        #expect(h.inbox("g").isEmpty)
    }
}
