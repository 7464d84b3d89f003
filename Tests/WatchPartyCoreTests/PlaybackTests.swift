import Foundation
import Testing

@testable import WatchPartyCore

/// `player_event`: control messages, guest control and validation (PROTOCOL.md §6).
@Suite struct PlaybackTests {
    /// A room (host h, guests g1 and g2, all ready) playing from 10 s since t0; the clock at t0+5000.
    func playingRoom(rules: PartyRules = PartyRules()) -> (Harness, RoomID) {
        let h = Harness(rules: rules)
        let room = h.room(guests: ["g1", "g2"], ready: true)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        h.advance(by: 5000)
        h.clear()
        return (h, room)
    }

    static func expectControl(
        _ wire: Wire?, action: String, room: RoomID, by client: ClientID, position: Double, playState: String, now: ServerTime,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let wire else {
            Issue.record("no control message", sourceLocation: sourceLocation)
            return
        }
        #expect(wire.type == "player_event", sourceLocation: sourceLocation)
        #expect(wire.room == room, sourceLocation: sourceLocation)
        #expect(wire.client == client, sourceLocation: sourceLocation)
        #expect(wire.ts == now, sourceLocation: sourceLocation)
        // `position` is the room position as of now, and `server_ts` = now: while the result is
        // playing, a command is stated a client seek lead (300 ms) before its target, which for
        // the 300 ms control lead is now (docs/sync.md § Naive clients).
        #expect(wire.serverTs == now, sourceLocation: sourceLocation)
        #expect(wire.payloadKeys == ["action", "position", "play_state", "target_server_ts"], sourceLocation: sourceLocation)
        #expect(wire.string("action") == action, sourceLocation: sourceLocation)
        #expect(wire.number("position") == position, sourceLocation: sourceLocation)
        #expect(wire.string("play_state") == playState, sourceLocation: sourceLocation)
        #expect(wire.time("target_server_ts") == now + 300, sourceLocation: sourceLocation)
    }

    // MARK: Host control

    @Test func pauseWithoutPositionUsesTheProjectedPosition() throws {
        let (h, room) = playingRoom()
        h.send("h", "player_event", room: room, payload: ["action": "pause"])
        #expect(h.inbox("h").isEmpty, "the sender gets nothing")
        for guest in ["g1", "g2"] {
            Self.expectControl(h.only(guest), action: "pause", room: room, by: "h", position: 15, playState: "paused", now: t0 + 5000)
        }
        #expect(h.lastOutcome.deliveries.map(\.recipients) == [["g1", "g2"]])
        let stored = try #require(h.party.rooms[room])
        #expect(stored.playback == Playback(position: 15, playState: .paused, asOf: t0 + 5000))
        #expect(stored.lastCommandTarget == t0 + 5300)
    }

    @Test func pauseWithPositionUsesIt() throws {
        let (h, room) = playingRoom()
        h.send("h", "player_event", room: room, payload: ["action": "pause", "position": 20.25, "play_state": "playing"])
        Self.expectControl(h.only("g1"), action: "pause", room: room, by: "h", position: 20.25, playState: "paused", now: t0 + 5000)
        #expect(h.party.rooms[room]?.playback == Playback(position: 20.25, playState: .paused, asOf: t0 + 5000))
    }

    @Test func seekTakesTheSentPlayState() throws {
        let (h, room) = playingRoom()
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 100, "play_state": "paused"])
        Self.expectControl(h.only("g2"), action: "seek", room: room, by: "h", position: 100, playState: "paused", now: t0 + 5000)
        #expect(h.party.rooms[room]?.playback.playState == .paused)

        h.clear()
        h.advance(by: 1000)
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 200, "play_state": "playing"])
        Self.expectControl(h.only("g2"), action: "seek", room: room, by: "h", position: 200, playState: "playing", now: t0 + 6000)
        #expect(h.party.rooms[room]?.playback == Playback(position: 200, playState: .playing, asOf: t0 + 6000))
    }

    @Test func seekWithoutPlayStateKeepsTheRoomState() throws {
        let (h, room) = playingRoom()
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 50])
        Self.expectControl(h.only("g1"), action: "seek", room: room, by: "h", position: 50, playState: "playing", now: t0 + 5000)
        h.advance(by: 2000)
        h.connect("late")
        h.send("late", "join_room", room: room)
        #expect(h.last("late", "room_state")?.statePosition == 52, "the room plays on from the seek position")

        let h2 = Harness()
        let paused = h2.room(guests: ["g"])
        h2.send("h", "player_event", room: paused, payload: ["action": "seek", "position": 50])
        Self.expectControl(h2.only("g"), action: "seek", room: paused, by: "h", position: 50, playState: "paused", now: t0)
    }

    @Test func bufferingIsFilledInFromTheRoom() throws {
        let (h, room) = playingRoom()
        h.advance(by: 250)
        h.send("h", "player_event", room: room, payload: ["action": "buffering"])
        Self.expectControl(h.only("g1"), action: "buffering", room: room, by: "h", position: 15.25, playState: "paused", now: t0 + 5250)
        #expect(h.party.rooms[room]?.playback.playState == .paused)
    }

    @Test func controlScheduleIsConfigurable() throws {
        var rules = PartyRules()
        rules.controlScheduleMs = 750
        let (h, room) = playingRoom(rules: rules)
        h.send("h", "player_event", room: room, payload: ["action": "pause"])
        #expect(h.only("g1")?.time("target_server_ts") == t0 + 5750)
    }

    @Test func playWhilePlayingReschedulesForEveryone() throws {
        let (h, room) = playingRoom()
        h.send("h", "player_event", room: room, payload: ["action": "play"])
        for member in ["h", "g1", "g2"] {
            BarrierTests.expectPlay(h.only(member), room: room, by: "h", position: 15, heldAt: t0 + 5000, releasedAt: t0 + 5000)
        }
    }

    @Test func positionBoundsAreInclusive() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 86400])
        h.send("h", "player_event", room: room, payload: ["action": "seek", "position": 0])
        #expect(h.messages("g", "player_event").map { $0.number("position") } == [86400, 0])
        #expect(h.errorCodes("h").isEmpty)
    }

    // MARK: Guest control

    @Test func guestPlayIgnoresItsPosition() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], payload: ["start_pos": 42])
        h.send("g1", "player_event", room: room, payload: ["action": "play", "position": 999])
        for member in ["h", "g1", "g2"] {
            BarrierTests.expectPlay(h.only(member), room: room, by: "g1", position: 42, heldAt: t0, releasedAt: t0)
        }
    }

    @Test func guestPauseUsesTheProjectedPosition() throws {
        let (h, room) = playingRoom()
        h.advance(by: 1000)
        h.send("g1", "player_event", room: room, payload: ["action": "pause", "position": 999])
        #expect(h.inbox("g1").isEmpty)
        for member in ["h", "g2"] {
            Self.expectControl(h.only(member), action: "pause", room: room, by: "g1", position: 16, playState: "paused", now: t0 + 6000)
        }
        #expect(h.party.rooms[room]?.playback == Playback(position: 16, playState: .paused, asOf: t0 + 6000))
    }

    @Test("a guest's position is ignored, not validated", arguments: ["-5", "\"x\"", "1e9", "null", "true"])
    func guestPositionIsNotValidated(json: String) throws {
        let (h, room) = playingRoom()
        h.sendText("g1", #"{"type":"player_event","room":"\#(room)","payload":{"action":"pause","position":\#(json)},"ts":1}"#)
        #expect(h.errorCodes("g1").isEmpty)
        Self.expectControl(h.only("h"), action: "pause", room: room, by: "g1", position: 15, playState: "paused", now: t0 + 5000)
    }

    @Test("guests may not seek or buffer", arguments: ["seek", "buffering"])
    func guestSeekIsRefused(action: String) throws {
        let (h, room) = playingRoom()
        h.send("g1", "player_event", room: room, payload: ["action": action, "position": 3])
        let reply = try #require(h.only("g1"))
        #expect(reply.errorCode == "HOST_PERMISSION_REQUIRED")
        #expect(reply.string("message") == "Only the room host can control playback")
        #expect(reply.room == room)
        #expect(reply.client == "g1")
        #expect(h.inbox("h").isEmpty)
        #expect(h.inbox("g2").isEmpty)
        #expect(h.party.rooms[room]?.playback == Playback(position: 10, playState: .playing, asOf: t0))
    }

    @Test("with GUEST_PLAYBACK_CONTROL off guests may not play or pause", arguments: ["play", "pause"])
    func guestControlOff(action: String) throws {
        var rules = PartyRules()
        rules.guestPlaybackControl = false
        let (h, room) = playingRoom(rules: rules)
        h.send("g1", "player_event", room: room, payload: ["action": action])
        #expect(h.only("g1")?.errorCode == "HOST_PERMISSION_REQUIRED")
        #expect(h.inbox("h").isEmpty)
        #expect(h.inbox("g2").isEmpty)
        // The host still may.
        h.send("h", "player_event", room: room, payload: ["action": action])
        #expect(h.messages("g2", "player_event").count == 1)
    }

    // MARK: Validation

    static let invalidPayloads: [String] = [
        #""pause""#,
        "[1]",
        "5",
        "null",
        "{}",
        #"{"action":"rewind"}"#,
        #"{"action":5}"#,
        #"{"action":"PAUSE"}"#,
        #"{"action":"seek"}"#,
        #"{"action":"seek","position":null}"#,
        #"{"action":"seek","position":-1}"#,
        #"{"action":"seek","position":-0.001}"#,
        #"{"action":"seek","position":86400.5}"#,
        #"{"action":"seek","position":1e9}"#,
        #"{"action":"seek","position":"12"}"#,
        #"{"action":"seek","position":"NaN"}"#,
        #"{"action":"seek","position":true}"#,
        #"{"action":"pause","position":-5}"#,
        #"{"action":"play","position":100000}"#,
        #"{"action":"seek","position":3,"play_state":"stopped"}"#,
        #"{"action":"pause","play_state":1}"#,
        #"{"action":"play","play_state":"PLAYING"}"#,
    ]

    @Test("invalid playback payloads", arguments: invalidPayloads)
    func invalidPayload(json: String) throws {
        let (h, room) = playingRoom()
        h.sendText("h", #"{"type":"player_event","room":"\#(room)","payload":\#(json),"ts":1}"#)
        let reply = try #require(h.only("h"))
        #expect(reply.errorCode == "INVALID_PLAYBACK_PAYLOAD")
        #expect(reply.string("message") == "Invalid playback payload")
        #expect(reply.room == room)
        #expect(h.inbox("g1").isEmpty)
        #expect(h.party.rooms[room]?.playback == Playback(position: 10, playState: .playing, asOf: t0))
    }

    @Test func missingPayloadIsInvalid() throws {
        let (h, room) = playingRoom()
        h.send("h", "player_event", room: room)
        #expect(h.errorCodes("h") == ["INVALID_PLAYBACK_PAYLOAD"])
    }

    @Test("non-finite positions are invalid", arguments: [Double.nan, .infinity, -.infinity, -.nan])
    func nonFinitePosition(value: Double) throws {
        let (h, room) = playingRoom()
        h.receive("h", ClientMessage(type: .playerEvent, room: room, payload: .object(["action": .string("seek"), "position": .double(value)]), ts: 1))
        #expect(h.errorCodes("h") == ["INVALID_PLAYBACK_PAYLOAD"])
        h.receive("h", ClientMessage(type: .stateUpdate, room: room, payload: .object(["position": .double(value), "play_state": .string("playing")]), ts: 1))
        #expect(h.errorCodes("h") == ["INVALID_PLAYBACK_PAYLOAD", "INVALID_PLAYBACK_PAYLOAD"])
        #expect(h.inbox("g1").isEmpty)
    }

    @Test func unrepresentableNumberIsInvalidJSON() throws {
        let (h, room) = playingRoom()
        h.sendText("h", #"{"type":"player_event","room":"\#(room)","payload":{"action":"seek","position":1e400},"ts":1}"#)
        #expect(h.errorCodes("h") == ["INVALID_JSON"])
    }

    @Test func errorOrder() throws {
        let (h, room) = playingRoom()
        h.connect("x")
        h.clear()
        let bad: [String: Any] = ["action": "seek", "position": -1]
        h.send("x", "player_event", payload: bad)
        h.send("x", "player_event", room: "room-404", payload: bad)
        h.send("x", "player_event", room: room, payload: bad)
        h.send("g1", "player_event", room: room, payload: bad)
        h.send("h", "player_event", room: room, payload: bad)
        #expect(h.errorCodes("x") == ["ROOM_ID_REQUIRED", "ROOM_NOT_FOUND", "NOT_ROOM_MEMBER"])
        #expect(h.errorCodes("g1") == ["HOST_PERMISSION_REQUIRED"])
        #expect(h.errorCodes("h") == ["INVALID_PLAYBACK_PAYLOAD"])
        #expect(h.inbox("x").map { $0.string("message") } == ["Room ID is required", "Room not found", "Client is not a member of this room"])
        #expect(h.inbox("g2").isEmpty)
    }

    @Test func memberOfAnotherRoomIsNotARoomMember() throws {
        let h = Harness()
        let first = h.room(host: "h1")
        h.room(host: "h2")
        h.send("h2", "player_event", room: first, payload: ["action": "pause"])
        #expect(h.errorCodes("h2") == ["NOT_ROOM_MEMBER"])
        #expect(h.inbox("h1").isEmpty)
    }
}
