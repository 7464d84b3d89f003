import Testing

@testable import WatchPartyCore

/// Sessions outlive connections (PROTOCOL.md §13), with the manual clock: away, the grace,
/// resume by token and by identity, takeover, and what the others see.
@Suite struct SessionResumeTests {
    /// The resume token `connection` was last greeted with.
    static func token(_ h: Harness, _ connection: String) -> String? {
        h.last(connection, "client_hello")?.string("resume_token")
    }

    // MARK: Away

    @Test func aDroppedGuestIsAwayAndTheOthersSeeOnlyItsStatus() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.send("g1", "participant_status", payload: ["status": "playing"])
        h.advance(by: 1_000)
        h.clear()
        h.disconnect("g1")
        #expect(h.types("h") == ["participant_statuses"], "no client_left, no participant_list")
        #expect(h.inbox("h")[0].statuses == [nil, nil, nil])
        #expect(h.types("g2") == ["participant_statuses"])
        #expect(h.party.rooms[room]?.members == ["h", "g1", "g2"], "still a member, still counted")
        #expect(h.party.rooms[room]?.away == ["g1"])
        #expect(h.party.sessions["g1"]?.isAttached == false)
        #expect(h.events.contains(.sessionAway(client: "g1", room: room)))
        #expect(!h.events.contains { if case .memberLeft = $0 { true } else { false } })
        // Nothing is queued for it.
        h.send("h", "chat_message", room: room, payload: ["text": "still there?"])
        #expect(h.undelivered.map(\.session) == ["g1"])
        #expect(h.undelivered.first?.message.type == "chat_message")
    }

    @Test func aDroppedGuestWithoutAStatusIsStillAnnouncedByStatuses() throws {
        let h = Harness()
        _ = h.room(guests: ["g1", "g2"])
        h.disconnect("g1")
        #expect(h.types("h") == ["participant_statuses"], "its absence is told the one way §13 allows")
        #expect(h.inbox("h")[0].statuses == [nil, nil, nil])
        #expect(h.undelivered.isEmpty, "not sent to the away member itself")
    }

    @Test func theGraceEndsAtExactlyResumeGraceSeconds() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.disconnect("g1")
        h.clear()
        h.advance(by: h.party.rules.resumeGraceMs - 1)
        #expect(h.party.rooms[room]?.members.contains("g1") == true, "1 ms before the end it is still away")
        #expect(h.inbox("h").isEmpty)
        h.advance(by: 1)
        #expect(h.now == t0 + 30_000)
        #expect(h.types("h") == ["client_left", "participant_list", "participant_statuses"], "§5's departure, then")
        #expect(h.inbox("h")[0].client == "g1")
        #expect(h.party.rooms[room]?.members == ["h", "g2"])
        #expect(h.party.sessions["g1"] == nil)
        #expect(h.events.contains(.graceExpired(client: "g1", room: room, early: false)))
    }

    @Test func aSessionInNoRoomIsGoneAtOnce() throws {
        let h = Harness()
        h.connect("lobby")
        let token = try #require(Self.token(h, "lobby"))
        h.disconnect("lobby")
        #expect(h.party.sessions["lobby"] == nil)
        h.connect("again")
        h.clear()
        h.send("again", "resume", payload: ["token": token])
        #expect(h.errorCodes("again") == ["RESUME_FAILED"])
    }

    @Test func anAwayHostsRoomStaysOpenAndPlaysOn() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 100])
        h.advance(by: 2_000)  // the play took effect at t0 + 1.5 s
        h.clear()
        h.disconnect("h")
        #expect(h.types("g1") == ["participant_statuses"], "no host_changed, no room_closed")
        #expect(h.party.rooms[room]?.hostID == "h")
        #expect(h.party.rooms[room]?.playback.playState == .playing)
        h.advance(by: 10_000)
        // A guest keeps the control §6 gives it.
        h.send("g1", "player_event", room: room, payload: ["action": "pause"])
        #expect(h.errorCodes("g1").isEmpty)
        #expect(h.party.rooms[room]?.playback.playState == .paused)
        let paused = try #require(h.party.rooms[room]?.playback.position(at: h.now))
        #expect(abs(paused - 112) < 0.01, "played on while the host was away: 100 at the click, 12 s later")
    }

    @Test func anAwayHostResumesToAProjectedPositionAndADuePlay() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 100])
        h.advance(by: 1_500)
        h.disconnect("h")
        h.advance(by: 5_000)
        h.connect("h2")
        let token = try #require(h.party.sessions["h"].map { _ in "token-1" })
        h.clear()
        h.send("h2", "resume", payload: ["token": token])
        #expect(h.types("h2") == ["client_hello", "room_state", "participant_list", "participant_statuses", "player_event"])
        let state = h.inbox("h2")[1]
        #expect(abs((state.statePosition ?? 0) - 106.5) < 0.01, "projected to now: 100 at the click, 6.5 s ago")
        #expect(state.statePlayState == "playing")
        #expect(state.string("host_id") == "h")
        #expect(h.inbox("h2")[2].participants.map(\.isHost) == [true, false])
        #expect(h.types("g1") == ["participant_statuses"], "the others are told only that statuses changed")
    }

    // MARK: Resume by token

    @Test func aResumeBeforeTheCommandTakesEffectCarriesItsTarget() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 20])
        let target = try #require(h.last("g1", "player_event")?.time("target_server_ts"))
        h.advance(by: 200)
        h.disconnect("g1")
        h.advance(by: 300)
        h.connect("g1b")
        h.clear()
        h.send("g1b", "resume", payload: ["token": "token-2"])
        let state = try #require(h.last("g1b", "room_state"))
        #expect(state.time("target_server_ts") == target, "§13: target_server_ts while a command is still ahead")
        #expect(state.serverTs == h.now)
        h.advance(by: 2_000)
        h.disconnect("g1")
        h.connect("g1c")
        h.send("g1c", "resume", payload: ["token": try #require(h.last("g1b", "client_hello")?.string("resume_token"))])
        #expect(h.last("g1c", "room_state")?.isNull("target_server_ts") == true, "and null once it has taken effect")
    }

    @Test func resumeByTokenSendsTheDocumentedSequenceAndRotatesTheToken() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        let first = "token-2"  // g1's greeting token (h got token-1)
        h.disconnect("g1")
        h.advance(by: 3_000)
        h.connect("g1-again")
        h.clear()
        h.send("g1-again", "resume", payload: ["token": first])

        #expect(h.types("g1-again") == ["client_hello", "room_state", "participant_list", "participant_statuses"])
        let hello = h.inbox("g1-again")[0]
        #expect(hello.client == "g1")
        #expect(hello.string("client_id") == "g1", "the session's id, not the connection's first")
        #expect(hello.payload["resumed"] as? Bool == true)
        let rotated = try #require(hello.string("resume_token"))
        #expect(rotated != first)
        #expect(h.inbox("g1-again")[1].room == room)
        #expect(h.inbox("g1-again")[3].statuses.count == 3)
        #expect(h.types("h") == ["participant_statuses"] && h.types("g2") == ["participant_statuses"], "the others see only a status change")
        #expect(h.party.sessions["g1-again"] == nil, "the id the connection was given first is dropped")
        #expect(h.party.sessions["g1"]?.isAttached == true)
        #expect(h.party.rooms[room]?.away.isEmpty == true)
        #expect(h.handovers == [Handover(session: "g1", carrier: "g1-again", tookOver: false)])
        #expect(h.events.contains(.resume(way: .token, result: .resumed, client: "g1", carrier: "g1-again", room: room)))

        // The connection now speaks as g1.
        h.send("g1", "chat_message", room: room, payload: ["text": "back"])
        #expect(h.last("h", "chat_message")?.client == "g1")

        // The new one works after the next drop; then the old one is spent.
        h.disconnect("g1")
        h.connect("g1-third")
        h.send("g1-third", "resume", payload: ["token": rotated])
        #expect(h.last("g1-third", "client_hello")?.client == "g1")
        #expect(h.party.rooms[room]?.members == ["h", "g1", "g2"])
        h.disconnect("g1")
        h.connect("g1-fourth")
        h.send("g1-fourth", "resume", payload: ["token": first])
        #expect(h.errorCodes("g1-fourth") == ["RESUME_FAILED"])
        #expect(h.party.sessions["g1-fourth"] != nil, "a failed resume leaves a fresh session in the lobby")
    }

    /// docs/protocol.md choice 21: the `client_hello` with the new token can be lost with its
    /// connection; the client then holds only the token it presented.
    @Test func aRetiringTokenResumesUntilItsSuccessorIsUsed() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        let first = "token-2"  // g1's greeting token (h got token-1)
        h.disconnect("g1")
        h.connect("c2")
        h.send("c2", "resume", payload: ["token": first])
        let lost = try #require(Self.token(h, "c2"))
        h.disconnect("g1")  // before its hello reached the client

        h.connect("c3")
        h.clear()
        h.send("c3", "resume", payload: ["token": first])
        #expect(h.types("c3") == ["client_hello", "room_state", "participant_list", "participant_statuses"], "a resume like any other")
        #expect(h.events.contains(.resume(way: .retiringToken, result: .resumed, client: "g1", carrier: "c3", room: room)))
        let third = try #require(Self.token(h, "c3"))
        #expect(Set([first, lost, third]).count == 3)
        h.disconnect("g1")

        h.connect("c4")
        h.send("c4", "resume", payload: ["token": lost])
        #expect(h.errorCodes("c4") == ["RESUME_FAILED"], "the token the client never got stops working")
        h.clear()
        h.send("c4", "resume", payload: ["token": third])
        #expect(h.events.contains(.resume(way: .token, result: .resumed, client: "g1", carrier: "c4", room: room)))
        h.disconnect("g1")

        h.connect("c5")
        h.send("c5", "resume", payload: ["token": first])
        #expect(h.errorCodes("c5") == ["RESUME_FAILED"], "spent: its successor was used")
        h.clear()
        h.send("c5", "resume", payload: ["token": third])
        #expect(h.events.contains(.resume(way: .retiringToken, result: .resumed, client: "g1", carrier: "c5", room: room)), "the one that replaced it retires in turn")
        #expect(h.party.rooms[room]?.members == ["h", "g1"] && h.party.rooms[room]?.away.isEmpty == true)
    }

    @Test func aRetiringTokenStopsWorkingAfterTheGrace() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        let first = "token-2"  // g1's greeting token (h got token-1)
        let grace = h.party.rules.resumeGraceMs
        h.connect("phone")
        h.send("phone", "resume", payload: ["token": first])  // rotated now
        h.advance(by: grace - 1)
        h.connect("tablet")
        h.send("tablet", "resume", payload: ["token": first])
        #expect(h.last("tablet", "client_hello")?.client == "g1", "good until the grace after the rotation")
        let newest = try #require(Self.token(h, "tablet"))
        h.advance(by: 1)
        h.disconnect("g1")
        h.connect("late")
        h.send("late", "resume", payload: ["token": first])
        #expect(h.errorCodes("late") == ["RESUME_FAILED"], "a resume with it kept its deadline")
        h.send("late", "resume", payload: ["token": newest])
        #expect(h.last("late", "client_hello")?.client == "g1")
        #expect(h.party.rooms[room]?.away.isEmpty == true)
    }

    @Test func withNoGraceNothingRetires() throws {
        let h = Harness(rules: .immediateDeparture)
        h.room(guests: ["g1"])
        let first = "token-2"  // g1's greeting token (h got token-1)
        h.connect("phone")
        h.send("phone", "resume", payload: ["token": first])
        #expect(h.last("phone", "client_hello")?.client == "g1")
        #expect(h.party.sessions["g1"]?.retiringToken == nil)
        h.connect("tablet")
        h.send("tablet", "resume", payload: ["token": first])
        #expect(h.errorCodes("tablet") == ["RESUME_FAILED"])
    }

    @Test func aResumeThatFindsNothingFailsAndTheConnectionGoesOn() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        for payload: [String: Any]? in [["token": "nope"], ["token": ""], ["token": 7], nil, ["token": String(repeating: "t", count: 5_000)]] {
            h.send("c", "resume", payload: payload)
        }
        #expect(h.errorCodes("c") == Array(repeating: "RESUME_FAILED", count: 5))
        #expect(h.closes.isEmpty)
        h.send("c", "list_rooms")
        #expect(h.last("c", "room_list") != nil)
        #expect(h.events.filter { if case .resume(.token, .refused, _, _, _) = $0 { true } else { false } }.count == 5)
    }

    @Test func aConnectionCannotResumeItself() throws {
        let h = Harness()
        h.room(guests: ["g"])
        h.send("g", "resume", payload: ["token": "token-2"])
        #expect(h.errorCodes("g") == ["RESUME_FAILED"])
    }

    @Test func aTokenOfAnAttachedSessionTakesItsConnectionOver() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.connect("phone")  // g1's phone switched networks; the old socket looks alive
        h.clear()
        h.send("phone", "resume", payload: ["token": "token-2"])
        #expect(h.handovers == [Handover(session: "g1", carrier: "phone", tookOver: true)])
        #expect(h.takenOver == ["g1"], "the old connection is closed (4001) by the shell")
        #expect(h.types("phone").first == "client_hello")
        #expect(h.party.rooms[room]?.members == ["h", "g1"])
        #expect(h.types("h") == ["participant_statuses"])
        #expect(h.events.contains(.resume(way: .token, result: .takenOver, client: "g1", carrier: "phone", room: room)))
        #expect(CloseCause.sessionTakenOver.code == 4001)
        #expect(CloseCause.sessionTakenOver.text == "Session resumed elsewhere")
    }

    @Test func resumingFromInsideAnotherRoomLeavesThatRoomFirst() throws {
        let h = Harness()
        let first = h.room(host: "a", guests: ["b"])
        h.disconnect("b")
        h.login("b2")
        let other = h.createRoom("b2")
        h.clear()
        h.send("b2", "resume", payload: ["token": "token-2"])
        #expect(h.party.rooms[other] == nil, "b2's own room, empty, is gone")
        #expect(h.party.sessions["b"]?.roomID == first)
        #expect(h.types("b2").prefix(2) == ["client_hello", "room_state"])
    }

    @Test func resumeIsRateLimitedLikeEveryMessage() throws {
        let h = Harness()
        h.connect("guesser")
        for attempt in 0...h.party.rules.rateLimitPerSecond {
            h.send("guesser", "resume", payload: ["token": "guess-\(attempt)"])
        }
        #expect(h.closes.map(\.code) == [4002])
    }

    // MARK: JWT mode: identity

    @Test func inJWTModeTheSameSubResumesItsOneAwaySessionOnAuth() throws {
        let h = Harness(verifier: StubVerifier())
        h.connect("alice-1")
        h.send("alice-1", "auth", payload: ["token": "good-alice", "features": ["host_transfer"]])
        let room = h.createRoom("alice-1")
        h.signIn("bob-1", token: "good-bob")
        h.joinRoom("bob-1", room)
        h.disconnect("alice-1")
        h.advance(by: 1_000)
        h.connect("alice-2")
        h.clear()
        // The upstream client: a new socket, auth again, nothing about resuming.
        h.send("alice-2", "auth", payload: ["token": "good-alice"])
        #expect(h.types("alice-2") == ["auth_success", "client_hello", "room_state", "participant_list", "participant_statuses"], "no room_list")
        #expect(h.inbox("alice-2")[1].client == "alice-1")
        #expect(h.inbox("alice-2")[2].string("host_id") == "alice-1", "back as host")
        #expect(h.party.sessions["alice-1"]?.isAttached == true)
        #expect(h.party.sessions["alice-1"]?.features == [.hostTransfer], "declared before, kept when the new auth declares none")
        #expect(h.types("bob-1") == ["participant_statuses"], "only a status change")
        #expect(h.events.contains(.resume(way: .identity, result: .resumed, client: "alice-1", carrier: "alice-2", room: room)))
        // The session's token expiry is the new connection's.
        #expect(h.party.sessions["alice-1"]?.expiresAt == h.now + StubVerifier().lifetimeMs)
    }

    @Test func identityNeverCrossesSubs() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("alice", token: "good-alice")
        let room = h.createRoom("alice")
        h.disconnect("alice")
        h.connect("bob")
        h.clear()
        h.send("bob", "auth", payload: ["token": "good-bob"])
        #expect(h.types("bob") == ["auth_success", "room_list"])
        // Alice's token in Bob's hands does not work either.
        h.send("bob", "resume", payload: ["token": "token-1"])
        #expect(h.errorCodes("bob") == ["RESUME_FAILED"])
        #expect(h.party.rooms[room]?.away == ["alice"])
    }

    @Test func inJWTModeResumeNeedsAnAuthFirst() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("alice", token: "good-alice")
        h.createRoom("alice")
        h.disconnect("alice")
        h.connect("stranger")
        h.clear()
        h.send("stranger", "resume", payload: ["token": "token-1"])
        #expect(h.errorCodes("stranger") == ["AUTHENTICATION_REQUIRED"])
        #expect(h.handovers.isEmpty)
    }

    @Test func twoAwaySessionsOfOneSubAreNotGuessedBetween() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("tab-1", token: "good-alice")
        h.createRoom("tab-1")
        h.signIn("tab-2", token: "good-alice")
        h.settleProbe(of: "tab-1", for: "tab-2", answered: true)  // two live tabs
        h.createRoom("tab-2")
        h.disconnect("tab-1")
        h.disconnect("tab-2")
        h.connect("tab-3")
        h.clear()
        h.send("tab-3", "auth", payload: ["token": "good-alice"])
        #expect(h.types("tab-3") == ["auth_success", "room_list"])
        #expect(h.handovers.isEmpty)
        #expect(h.probes.isEmpty, "two away and none attached: nothing to probe either")
    }

    @Test func anAttachedSessionOfTheSameSubIsProbedAndALiveOneKept() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("tab-1", token: "good-alice")
        let room = h.createRoom("tab-1")
        h.connect("tab-2")
        h.clear()
        h.send("tab-2", "auth", payload: ["token": "good-alice"])
        #expect(h.probes == [ProbeRequest(session: "tab-1", claimant: "tab-2", withinMs: 2_000)])
        #expect(h.types("tab-2") == ["auth_success", "room_list"], "in the lobby while the probe runs")
        h.advance(by: 2_000)
        h.settleProbe(of: "tab-1", for: "tab-2", answered: true)
        #expect(h.handovers.isEmpty, "a live second tab: nothing is taken over")
        #expect(h.party.sessions["tab-2"] != nil && h.party.sessions["tab-1"]?.roomID == room)
        #expect(h.events.contains(.resume(way: .identity, result: .refused, client: "tab-2", carrier: "tab-2", room: nil)))
        // A second settle (a late duplicate) does nothing.
        h.settleProbe(of: "tab-1", for: "tab-2", answered: false)
        #expect(h.handovers.isEmpty)
    }

    @Test func aSilentHalfOpenConnectionIsTakenOverAfterTheProbe() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("wifi", token: "good-alice")
        let room = h.createRoom("wifi")
        h.signIn("cellular", token: "good-alice")
        h.clear()
        h.advance(by: 2_000)
        h.settleProbe(of: "wifi", for: "cellular", answered: false)
        #expect(h.handovers == [Handover(session: "wifi", carrier: "cellular", tookOver: true)])
        #expect(h.takenOver == ["wifi"])
        #expect(h.types("cellular") == ["client_hello", "room_state", "participant_list", "participant_statuses"])
        #expect(h.party.sessions["wifi"]?.roomID == room)
        #expect(h.events.contains(.resume(way: .identity, result: .takenOver, client: "wifi", carrier: "cellular", room: room)))
    }

    @Test func aProbedConnectionThatDroppedMeanwhileIsResumed() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("old", token: "good-alice")
        h.createRoom("old")
        h.signIn("new", token: "good-alice")
        h.disconnect("old")  // the ping made the dead socket fail
        h.settleProbe(of: "old", for: "new", answered: false)
        #expect(h.handovers == [Handover(session: "old", carrier: "new", tookOver: false)])
    }

    // MARK: The barrier

    @Test func anAwayMemberDoesNotHoldTheReadyBarrier() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], ready: false)
        h.send("g1", "ready", room: room)
        h.send("h", "player_event", room: room, payload: ["action": "play", "position": 10])
        #expect(h.party.rooms[room]?.pendingPlay != nil, "waiting on g2")
        h.clear()
        h.disconnect("g2")
        #expect(h.releases.map(\.cause) == [.allReady], "released as g2 went away, not at the timeout")
        #expect(h.last("h", "player_event")?.string("action") == "play")

        // Later plays do not wait for it either.
        h.send("h", "player_event", room: room, payload: ["action": "pause"])
        h.clear()
        h.send("h", "player_event", room: room, payload: ["action": "play"])
        #expect(h.party.rooms[room]?.pendingPlay == nil)
        #expect(h.last("g1", "player_event")?.string("action") == "play")
    }

    @Test func aResumedUnreadyMemberHoldsTheBarrierAgain() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"], ready: false)
        h.disconnect("g1")
        h.connect("g1b")
        h.send("g1b", "resume", payload: ["token": "token-2"])
        h.send("h", "player_event", room: room, payload: ["action": "play"])
        #expect(h.party.rooms[room]?.pendingPlay != nil, "present again and not ready: it is waited for")
    }

    // MARK: Grace timers, departures, the old rule

    @Test func aStaleGraceDoesNotEndALaterAbsence() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.disconnect("g1")
        h.advance(by: 20_000)
        h.connect("g1b")
        h.send("g1b", "resume", payload: ["token": "token-2"])
        h.advance(by: 5_000)
        h.disconnect("g1")
        h.advance(by: 10_000)  // the first grace's end passed
        #expect(h.party.rooms[room]?.members.contains("g1") == true)
        h.advance(by: 20_000)  // the second one's
        #expect(h.party.rooms[room]?.members.contains("g1") == false)
    }

    @Test func whenTheLastPresentMemberLeavesTheAwayOnesGoWithTheRoom() throws {
        let h = Harness()
        let room = h.room(guests: ["g1"])
        h.disconnect("g1")
        h.send("h", "leave_room")
        #expect(h.party.rooms[room] == nil, "host left: §5 closes the room")
        #expect(h.party.sessions["g1"] == nil, "an away member of a closed room has nothing to resume")
        h.connect("g1b")
        h.send("g1b", "resume", payload: ["token": "token-2"])
        #expect(h.errorCodes("g1b") == ["RESUME_FAILED"])
    }

    @Test func anAwayMemberIsNeverTheHeir() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"], guestFeatures: ["g1": ["host_transfer"], "g2": ["host_transfer"]])
        h.disconnect("g1")
        h.send("h", "leave_room")
        #expect(h.party.rooms[room]?.hostID == "g2")
    }

    @Test func awaySessionsAreBoundedAndTheOldestGoesFirst() throws {
        var rules = PartyRules()
        rules.maxAwaySessions = 2
        let h = Harness(rules: rules)
        let room = h.room(guests: ["g1", "g2", "g3"])
        h.disconnect("g1")
        h.advance(by: 10)
        h.disconnect("g2")
        h.advance(by: 10)
        // g1 came back and went again: it is now the newest, not the oldest.
        h.connect("g1b")
        h.send("g1b", "resume", payload: ["token": "token-2"])
        h.disconnect("g1")
        #expect(h.party.awayCount == 2)
        h.clear()
        h.disconnect("g3")
        #expect(h.party.awayCount == 2, "the bound holds")
        #expect(h.events.contains(.graceExpired(client: "g2", room: room, early: true)), "g2 is the one away longest")
        #expect(h.party.rooms[room]?.members == ["h", "g1", "g3"])
        #expect(h.types("h").first == "client_left")
    }

    @Test func anEvictionThatClosesTheLeaversOwnRoomLeavesNothingBehind() throws {
        var rules = PartyRules()
        rules.maxAwaySessions = 1
        let h = Harness(rules: rules)
        let room = h.room(guests: ["g"])  // no host_transfer: the host's departure closes the room
        h.disconnect("h")
        h.disconnect("g")  // evicts h, which closes the room g was leaving
        #expect(h.party.rooms[room] == nil)
        #expect(h.party.sessions["g"] == nil, "no away seat in no room")
        #expect(h.party.awayCount == 0)
        #expect(h.events.contains(.sessionEnded(client: "g")))
    }

    @Test func aKickedSeatCannotBeResumed() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("alice", token: "good-alice")
        let room = h.createRoom("alice")
        h.signIn("bob", token: "good-bob")
        h.joinRoom("bob", room)
        let kick = try #require(h.disconnectByOperator("bob"))
        #expect(kick.closes.map(\.code) == [4007])
        #expect(h.party.rooms[room]?.members == ["alice"], "departed at once, before its socket is even closed")
        // Bob's client, ignoring the close, comes back by token and by identity: nothing to resume.
        h.signIn("bob-2", token: "good-bob")
        h.send("bob-2", "resume", payload: ["token": "token-2"])
        #expect(h.errorCodes("bob-2") == ["RESUME_FAILED"])
        #expect(h.probes.isEmpty && h.handovers.isEmpty)
        #expect(h.party.rooms[room]?.members == ["alice"])
    }

    @Test func aProbeVerdictIsVoidOnceAnotherConnectionCarriesTheSeat() throws {
        let h = Harness(verifier: StubVerifier())
        h.signIn("phone", token: "good-alice")
        let room = h.createRoom("phone")
        for claimant in ["tab-b", "tab-d"] {
            h.signIn(claimant, token: "good-alice")
        }
        #expect(h.probes.map(\.claimant) == ["tab-b", "tab-d"], "both probe the silent phone")
        h.settleProbe(of: "phone", for: "tab-b", answered: false)
        #expect(h.handovers.map(\.carrier) == ["tab-b"])
        h.settleProbe(of: "phone", for: "tab-d", answered: false)
        #expect(h.handovers.count == 1, "tab-d's silence was the phone's, not tab-b's: tab-b keeps the seat")
        #expect(h.takenOver == ["phone"])
        #expect(h.party.sessions["phone"]?.roomID == room)
    }

    @Test func aResumeWhoseOwnDepartureClosesTheSeatsRoomFails() throws {
        let h = Harness()
        let room = h.room(host: "c", guests: ["t"])  // c hosts, no heir
        h.disconnect("t")
        h.clear()
        h.send("c", "resume", payload: ["token": "token-2"])  // t's greeting token
        #expect(h.party.rooms[room] == nil, "c left its room, which closed with t in it")
        #expect(h.errorCodes("c") == ["RESUME_FAILED"])
        #expect(h.types("c").contains("room_list"), "c is in the lobby and is shown it")
        #expect(h.handovers.isEmpty)
        #expect(h.party.sessions["t"] == nil && h.party.awayCount == 0)
    }

    @Test func anOperatorDisconnectDepartsAtOnce() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        let kick = try #require(h.disconnectByOperator("g1"))
        #expect(kick.closes.map(\.code) == [4007])
        #expect(h.party.rooms[room]?.members == ["h", "g2"], "no grace for a kicked member")
        h.disconnect("g1")  // its socket closes afterwards: nothing more happens
        #expect(h.party.rooms[room]?.members == ["h", "g2"])
        // An away member can be removed too.
        h.disconnect("g2")
        #expect(h.disconnectByOperator("g2") != nil)
        #expect(h.party.rooms[room]?.members == ["h"])
        #expect(h.disconnectByOperator("nobody") == nil)
    }

    @Test func withNoGraceADropIsADepartureAsBefore() throws {
        let h = Harness(rules: .immediateDeparture, verifier: StubVerifier())
        h.signIn("alice", token: "good-alice")
        let room = h.createRoom("alice")
        h.signIn("bob", token: "good-bob")
        h.joinRoom("bob", room)
        h.clear()
        h.disconnect("bob")
        #expect(h.types("alice") == ["client_left", "participant_list", "participant_statuses"])
        h.signIn("bob-again", token: "good-bob")
        #expect(h.types("bob-again") == ["client_hello", "auth_success", "room_list"], "a stranger in the lobby, as before")
        #expect(h.probes.isEmpty)
    }

    // MARK: Open mode

    @Test func openModeNeverResumesByAnUnverifiedUserIDUnlessAsked() throws {
        for byUserID in [false, true] {
            var rules = PartyRules()
            rules.resumeByUserID = byUserID
            let h = Harness(rules: rules)
            h.connect("a")
            h.send("a", "auth", payload: ["user_id": "jellyfin-user-7", "user_name": "Ann"])
            let room = h.createRoom("a")
            h.disconnect("a")
            h.connect("a2")
            h.clear()
            h.send("a2", "auth", payload: ["user_id": "jellyfin-user-7", "user_name": "Ann"])
            #expect(h.party.sessions["a"]?.isAttached == byUserID, "RESUME_BY_USER_ID=\(byUserID)")
            if byUserID {
                #expect(h.types("a2") == ["auth_success", "client_hello", "room_state", "participant_list", "participant_statuses"])
                #expect(h.party.rooms[room]?.away.isEmpty == true)
            } else {
                #expect(h.types("a2") == ["auth_success"])
            }
        }
    }

    @Test func openModeWithResumeByUserIDIgnoresTheAnonymousDefault() throws {
        var rules = PartyRules()
        rules.resumeByUserID = true
        let h = Harness(rules: rules)
        h.room(guests: ["g"])  // "anonymous" users, no user_id claimed
        h.disconnect("g")
        h.connect("other")
        h.send("other", "auth", payload: ["user_name": "Someone"])
        #expect(h.handovers.isEmpty)
    }
}
