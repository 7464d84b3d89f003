import Foundation
import Testing

@testable import SyncSimulator
@testable import WatchPartyCore

/// Rooms that move between servers as values (PROTOCOL.md §14), with the manual clock: the
/// record, the hand-away and the takeover, between two parties standing for two replicas.
@Suite struct RoomOwnershipTests {
    /// A room on replica `a`: host "h" and guests "g1", "g2", playing from 100 s; returns its
    /// id and each member's resume token.
    static func playingRoom(_ a: Harness) -> (room: RoomID, tokens: [ClientID: String]) {
        var tokens: [ClientID: String] = [:]
        for member in ["h", "g1", "g2"] {
            a.login(member, name: member.capitalized)
            tokens[member] = a.last(member, "client_hello")?.string("resume_token")
        }
        let room = a.createRoom("h")
        a.joinRoom("g1", room, ready: true)
        a.joinRoom("g2", room, ready: true)
        a.send("h", "player_event", room: room, payload: ["action": "play", "position": 100])
        a.advance(by: 2_000)
        a.clear()
        return (room, tokens)
    }

    /// JWT mode: Alice's room on replica `a` (her first connection "alice-1" is its host).
    static func alicesRoom() -> (a: Harness, room: RoomID) {
        let a = Harness(verifier: StubVerifier())
        a.signIn("alice-1", token: "good-alice")
        return (a, a.createRoom("alice-1"))
    }

    @Test func aRecordSurvivesItsEncoding() throws {
        let a = Harness()
        let (room, _) = Self.playingRoom(a)
        a.disconnect("g2")
        let record = try #require(a.party.record(of: room))
        #expect(record.members == ["h", "g1", "g2"])
        #expect(record.hostID == "h")
        #expect(record.seats.map(\.awaySince) == [nil, nil, a.now])
        #expect(record.seats.compactMap(\.resumeDigest).count == 3, "every seat keeps its token's digest")
        let data = try JSONEncoder().encode(record)
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.contains("\"token-"), "a record holds digests, never a token")
        #expect(try JSONDecoder().decode(RoomRecord.self, from: data) == record)
    }

    @Test func aDigestReadsBackFromItsHex() {
        let digest = ResumeDigest(bytes: [0x00, 0x0f, 0xa0, 0xff, 0x42])
        #expect(digest.hex == "000fa0ff42")
        #expect(ResumeDigest(hex: digest.hex) == digest)
        #expect(ResumeDigest(hex: "0g") == nil)
        #expect(ResumeDigest(hex: "abc") == nil)
        #expect(ResumeDigest(hex: "AB") == nil, "only the lowercase form is written")
    }

    @Test func aReleasedRoomLeavesWithoutADeparture() throws {
        let a = Harness()
        let (room, _) = Self.playingRoom(a)
        a.login("lobby")
        a.clear()
        let record = try #require(a.release(room))
        #expect(record.id == room)
        for member in ["h", "g1", "g2"] {
            #expect(a.inbox(member).isEmpty, "no room_closed, no client_left: the room lives on elsewhere")
            #expect(a.party.sessions[member] == nil)
        }
        #expect(Set(a.closes.map(\.client)) == ["h", "g1", "g2"])
        #expect(a.closes.allSatisfy { $0.code == 1012 && $0.reason == "Service restart" })
        #expect(a.party.rooms[room] == nil)
        #expect(a.party.awayCount == 0)
        #expect(a.types("lobby") == ["room_list"])
        #expect(a.inbox("lobby")[0].roomListIDs.isEmpty)
        #expect(a.events.contains(.roomReleased(room: room)))
        #expect(a.events.filter { if case .sessionEnded = $0 { true } else { false } }.count == 3, "their timers go")
        #expect(a.release(room) == nil)
    }

    @Test func theNextOwnerGoesOnFromTheRecord() throws {
        let a = Harness()
        let (room, tokens) = Self.playingRoom(a)
        let record = try #require(a.release(room))
        let b = Harness(start: a.now + 500, tokenPrefix: "b")
        b.login("watcher")
        b.clear()
        #expect(b.adopt(record) == nil)
        let adopted = try #require(b.party.rooms[room])
        #expect(adopted.members == ["h", "g1", "g2"])
        #expect(adopted.away == ["h", "g1", "g2"], "their connections were on the other server")
        #expect(adopted.hostID == "h")
        #expect(b.party.awayCount == 3)
        #expect(b.types("watcher") == ["room_list"])
        #expect(b.inbox("watcher")[0].roomListIDs == [room])
        #expect(b.events.contains(.roomTakenOver(room: room, seats: 3)))
        #expect(Set(b.requested.map(\.key)) == Set(["h", "g1", "g2"].map { TimerKey.resumeGrace(session: $0, awaySince: b.now) }))
        #expect(b.requested.allSatisfy { $0.due == b.now + b.party.rules.resumeGraceMs })

        // The guest resumes with the token the first server gave it: same seat, the room's
        // timeline where it would have been.
        b.connect("fresh")
        b.clear()
        b.send("fresh", "resume", payload: ["token": try #require(tokens["g1"])])
        #expect(b.types("fresh") == ["client_hello", "room_state", "participant_list", "participant_statuses", "player_event"])
        let hello = b.inbox("fresh")[0]
        #expect(hello.string("client_id") == "g1")
        #expect(hello.payload["resumed"] as? Bool == true)
        let state = b.inbox("fresh")[1]
        #expect(state.statePlayState == "playing")
        // The play was anchored at the host's press (t0), where the host started.
        let expected = 100 + Double(b.now - t0) / 1000
        #expect(abs((state.statePosition ?? 0) - expected) < 0.002, "position \(state.statePosition ?? 0), expected \(expected)")
        #expect(b.inbox("fresh")[2].participants.map(\.isHost) == [true, false, false])
        #expect(b.party.rooms[room]?.away == ["h", "g2"])
    }

    @Test func aRetiringTokenMovesWithTheRoom() throws {
        let a = Harness()
        let (room, tokens) = Self.playingRoom(a)
        let first = try #require(tokens["g1"])
        a.disconnect("g1")
        a.connect("g1-again")
        a.send("g1-again", "resume", payload: ["token": first])  // its hello is lost with the handover
        let record = try #require(a.release(room))
        let seat = try #require(record.seats.first { $0.id == "g1" })
        #expect(seat.retiringDigest == a.party.resumeDigest(of: first).hex)
        #expect(seat.retiringUntil == a.now + a.party.rules.resumeGraceMs)
        #expect(seat.resumeDigest != seat.retiringDigest)

        let b = Harness(start: a.now + 500, tokenPrefix: "b")
        #expect(b.adopt(record) == nil)
        b.connect("fresh")
        b.clear()
        b.send("fresh", "resume", payload: ["token": first])
        #expect(b.inbox("fresh").first?.string("client_id") == "g1")
        #expect(b.events.contains(.resume(way: .retiringToken, result: .resumed, client: "g1", carrier: "fresh", room: room)))
    }

    @Test func aPendingPlayIsReleasedOnceByTheNewOwner() throws {
        let a = Harness()
        let room = a.room(guests: ["g1"], ready: false)
        a.send("h", "player_event", room: room, payload: ["action": "play", "position": 40])
        let pending = try #require(a.party.rooms[room]?.pendingPlay, "g1 is not ready: the play waits")
        let record = try #require(a.release(room))
        #expect(record.pendingPlay == pending)
        let b = Harness(start: a.now + 20_000, tokenPrefix: "b")  // long past the barrier's deadline
        #expect(b.adopt(record) == nil)
        let adopted = try #require(b.party.rooms[room])
        #expect(adopted.pendingPlay == nil)
        #expect(adopted.playback.playState == .playing)
        #expect(adopted.playback.position == 40)
        #expect(b.events.filter { if case .barrierReleased = $0 { true } else { false } }.count == 1)
        // The deadline timer of the old owner's generation changes nothing here.
        b.clear()
        b.fire(.readyWait(room: room, generation: pending.generation))
        #expect(b.events.isEmpty)
        #expect(b.party.pendingGeneration >= pending.generation, "a later play here never reuses the generation")
    }

    @Test func aGraceThatRanOutElsewhereEndsAtOnce() throws {
        let a = Harness()
        let (room, _) = Self.playingRoom(a)
        a.disconnect("g2")
        let away = a.now
        let record = try #require(a.release(room))
        let b = Harness(start: away + a.party.rules.resumeGraceMs + 5_000, tokenPrefix: "b")
        #expect(b.adopt(record) == nil)
        let grace = try #require(b.requested.first { $0.key == .resumeGrace(session: "g2", awaySince: away) })
        #expect(grace.due < b.now, "due before the takeover: the shell fires it at once")
        b.advance(by: 0)
        #expect(b.party.rooms[room]?.members == ["h", "g1"])
        #expect(b.events.contains(.graceExpired(client: "g2", room: room, early: false)))
    }

    @Test func anIdentityResumesItsSeatOnTheNewOwner() throws {
        let (a, room) = Self.alicesRoom()
        let record = try #require(a.release(room))
        #expect(record.seats[0].identity == "u-alice")
        let b = Harness(verifier: StubVerifier(), start: a.now + 1_000, tokenPrefix: "b")
        #expect(b.adopt(record) == nil)
        b.signIn("alice-2", token: "good-alice")
        #expect(b.messages("alice-2", "client_hello").last?.string("client_id") == "alice-1")
        #expect(b.party.rooms[room]?.away.isEmpty == true)
        #expect(b.party.rooms[room]?.hostID == "alice-1")
    }

    @Test func aMemberWhoLoggedInBeforeItsRoomArrivedIsResumedByTheTakeover() throws {
        let (a, room) = Self.alicesRoom()
        let record = try #require(a.release(room))
        let b = Harness(verifier: StubVerifier(), start: a.now + 1_000, tokenPrefix: "b")
        b.signIn("alice-2", token: "good-alice")  // its auth found nothing to resume: the room was not here yet
        #expect(b.party.sessions["alice-2"]?.roomID == nil)
        b.clear()
        #expect(b.adopt(record) == nil)
        #expect(b.types("alice-2") == ["client_hello", "room_state", "participant_list", "participant_statuses"])
        #expect(b.inbox("alice-2")[0].string("client_id") == "alice-1")
        #expect(b.party.rooms[room]?.away.isEmpty == true)
    }

    @Test func aSeatWhoseGraceRanOutIsNotResumedByTheTakeover() throws {
        let (a, room) = Self.alicesRoom()
        let record = try #require(a.party.record(of: room))  // its owner died then
        let b = Harness(verifier: StubVerifier(), start: a.now + a.party.rules.resumeGraceMs + 1, tokenPrefix: "b")
        b.signIn("alice-2", token: "good-alice")
        b.clear()
        #expect(b.adopt(record, ownerGoneAt: a.now) == nil)
        #expect(b.messages("alice-2", "client_hello").isEmpty, "too late: the seat departs, it is not handed over")
        b.advance(by: 0)
        #expect(b.party.rooms[room] == nil)
        #expect(b.party.sessions["alice-2"]?.roomID == nil)
    }

    @Test func twoTabsOfTheUserWaitingHereAreNotGuessedBetween() throws {
        let (a, room) = Self.alicesRoom()
        let record = try #require(a.release(room))
        let b = Harness(verifier: StubVerifier(), start: a.now + 1_000, tokenPrefix: "b")
        b.signIn("tab-1", token: "good-alice")
        b.signIn("tab-2", token: "good-alice")
        b.clear()
        #expect(b.adopt(record) == nil)
        #expect(b.messages("tab-1", "client_hello").isEmpty && b.messages("tab-2", "client_hello").isEmpty)
        #expect(b.party.rooms[room]?.away == ["alice-1"], "the seat waits for its member's own resume")
    }

    @Test func gracesRunFromWhenThePreviousOwnerWasLastHeardOf() throws {
        let a = Harness()
        let (room, _) = Self.playingRoom(a)
        let record = try #require(a.party.record(of: room))  // the owner died: no hand-away
        let lastHeard = a.now
        let b = Harness(start: lastHeard + a.party.rules.resumeGraceMs + 60_000, tokenPrefix: "b")
        #expect(b.adopt(record, ownerGoneAt: lastHeard) == nil)
        b.advance(by: 0)
        #expect(b.party.rooms[room] == nil, "nobody came back within the grace: the room closes at once")
        #expect(b.party.sessions.isEmpty)
        let c = Harness(start: lastHeard + 10_000, tokenPrefix: "c")
        #expect(c.adopt(record, ownerGoneAt: lastHeard) == nil)
        #expect(c.requested.allSatisfy { $0.due == lastHeard + c.party.rules.resumeGraceMs }, "the grace counts from the owner's last sign of life")
    }

    @Test func aRecordThatDoesNotFitIsRefused() throws {
        let a = Harness()
        let (room, _) = Self.playingRoom(a)
        let record = try #require(a.party.record(of: room))
        let b = Harness(tokenPrefix: "b")
        var later = record
        later.version = RoomRecord.currentVersion + 1
        #expect(b.adopt(later) == .malformed)
        var hostless = record
        hostless.hostID = "nobody"
        #expect(b.adopt(hostless) == .malformed)
        var seatless = record
        seatless.seats.removeLast()
        #expect(b.adopt(seatless) == .malformed)
        var stray = record
        stray.ready.append("nobody")
        #expect(b.adopt(stray) == .malformed)
        #expect(b.party.rooms.isEmpty && b.party.sessions.isEmpty)
        #expect(a.adopt(record) == .conflict, "the room is still here")
        #expect(b.adopt(record) == nil)
        #expect(b.adopt(record) == .conflict)
    }

    @Test func theAwayBoundHoldsOnATakeover() throws {
        var rules = PartyRules()
        rules.maxAwaySessions = 2
        let a = Harness()
        let (room, _) = Self.playingRoom(a)
        let record = try #require(a.release(room))
        let b = Harness(rules: rules, start: a.now, tokenPrefix: "b")
        #expect(b.adopt(record) == nil)
        #expect(b.party.awayCount == 2)
        #expect(b.party.rooms[room]?.members.count == 2)
        #expect(b.events.contains { if case .graceExpired(_, room, early: true) = $0 { true } else { false } })
    }
}
