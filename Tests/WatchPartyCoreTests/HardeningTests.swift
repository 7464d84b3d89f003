import Testing

@testable import WatchPartyCore

/// Rate limit, auth deadline and session expiry (PROTOCOL.md §4, §9), with the manual clock.
@Suite struct RateLimitTests {
    @Test func thirtyFirstMessageInOneSecondIsRateLimitedAndClosed() {
        let h = Harness()
        h.connect("c")
        h.clear()
        for _ in 0..<30 {
            h.send("c", "ping")
            h.advance(by: 30)  // 30 messages within 900 ms
        }
        #expect(h.types("c") == Array(repeating: "pong", count: 30))
        #expect(h.closes.isEmpty)
        h.send("c", "ping")
        #expect(h.errorCodes("c") == ["RATE_LIMITED"])
        #expect(h.closes.map(\.client) == ["c"])
        #expect(h.closes.first?.code == 4002)
        #expect(h.closes.first?.reason == "Rate limit exceeded")
        h.clear()
        h.send("c", "ping")
        #expect(h.inbox("c").isEmpty, "a connection being closed is no longer served")
    }

    /// A server that fell behind handles two seconds of a well-behaved client's messages at
    /// once: they are counted when they arrived, so the client is not limited; and 31 that
    /// arrived within one second are, however spread out their handling.
    @Test func messagesAreCountedWhenTheyArrivedNotWhenTheyWereHandled() {
        let h = Harness()
        h.connect("c")
        h.advance(by: 1_000)  // past the window the connect opened
        let start = h.now
        h.advance(by: 2_500)  // the server was busy: nothing handled until now
        h.clear()
        for index in 0..<60 {
            h.send("c", "ping", arrivedAt: start + 1_000 * UInt64(index / 30) + UInt64(index % 30) * 30)
        }
        #expect(h.types("c") == Array(repeating: "pong", count: 60), "30 a second, as they arrived")
        #expect(h.closes.isEmpty)

        let late = Harness()
        late.connect("c")
        late.advance(by: 1_000)
        let first = late.now
        for index in 0..<31 {
            late.send("c", "ping", arrivedAt: first + UInt64(index) * 30)
            late.advance(by: 100)  // handled 100 ms apart: 3.1 s of handling for 0.9 s of arrivals
        }
        #expect(late.errorCodes("c") == ["RATE_LIMITED"])
        #expect(late.closes.map(\.code) == [4002])
    }

    /// A busy server that could not read a client for 1.5 s reads its 37 waiting messages at
    /// once. Counted at the read, 25 messages a second would be limited; given the time the
    /// server could not read (choice 22), they are spread back over it at the limit's pace.
    @Test func aClumpABusyServerReadAtOnceIsSpreadOverTheTimeItCouldNotRead() {
        for (waited, limited) in [(ServerTime(1_550), false), (0, true)] {
            let h = Harness()
            h.connect("c")
            h.advance(by: 1_000)
            for _ in 0..<25 {  // 25 a second, read as they come
                h.send("c", "ping")
                h.advance(by: 40)
            }
            h.advance(by: 1_500)  // then nothing read for 1.5 s
            h.clear()
            for _ in 0..<37 { h.send("c", "ping", mayHaveWaited: waited) }  // 1.5 s of them in one read
            #expect(h.closes.map(\.code) == (limited ? [4002] : []), "waited \(waited) ms")
            #expect(h.types("c").filter { $0 == "pong" }.count == (limited ? 30 : 37))
        }
    }

    /// The doubt never covers more than the wait explains: 100 messages read at once after
    /// 2 s unread are more than 2 s at 30 a second, and a client flooding 60 a second stays
    /// limited however long each of its reads may have waited.
    @Test func aFloodIsLimitedHoweverLongItMayHaveWaited() {
        let burst = Harness()
        burst.connect("c")
        burst.advance(by: 3_000)
        for _ in 0..<100 { burst.send("c", "ping", mayHaveWaited: 2_000) }
        #expect(burst.closes.map(\.code) == [4002])
        #expect(burst.types("c").filter { $0 == "pong" }.count < 100)

        // Every 500 ms, the messages of that half second in one read that may have waited 1 s.
        for (perSecond, limited) in [(25, false), (60, true)] {
            let h = Harness()
            h.connect("c")
            h.advance(by: 1_000)
            var reads = 0
            while h.closes.isEmpty && reads < 20 {
                h.advance(by: 500)
                for _ in 0..<(perSecond / 2 + (reads % 2) * (perSecond % 2)) { h.send("c", "ping", mayHaveWaited: 1_000) }
                reads += 1
            }
            #expect(h.closes.map(\.code) == (limited ? [4002] : []), "\(perSecond) a second")
            if limited { #expect(reads <= 3, "limited within 1.5 s of a 60/s flood, not after \(reads) reads") }
        }
    }

    /// An arrival stamped before the window's start does not open a new window: it would
    /// otherwise grant 30 more messages each time the stamps jitter.
    @Test func anArrivalBeforeTheWindowsStartCountsInIt() {
        let h = Harness()
        h.connect("c")
        h.advance(by: 1_000)
        let start = h.now
        for _ in 0..<30 { h.send("c", "ping") }
        h.send("c", "ping", arrivedAt: start - 1)
        #expect(h.errorCodes("c") == ["RATE_LIMITED"])
        #expect(h.closes.map(\.code) == [4002])
    }

    @Test func theWindowStartsAgainAfterOneSecond() {
        let h = Harness()
        h.connect("c")
        for _ in 0..<30 { h.send("c", "ping") }
        h.advance(by: 1000)
        h.clear()
        for _ in 0..<30 { h.send("c", "ping") }
        #expect(h.errorCodes("c").isEmpty)
        #expect(h.closes.isEmpty)
    }

    @Test func clientLogDoesNotCountButBadInputDoes() {
        let h = Harness()
        h.connect("c")
        for _ in 0..<200 { h.send("c", "client_log", payload: ["category": "player", "message": "tick"]) }
        #expect(h.closes.isEmpty)
        for _ in 0..<30 { h.sendText("c", "not json") }
        #expect(h.closes.isEmpty)
        h.sendText("c", "not json")
        #expect(h.errorCodes("c").last == "RATE_LIMITED")
        #expect(h.closes.count == 1)
    }

    @Test func aFloodingMemberDoesNotDisturbItsRoom() {
        let h = Harness()
        h.connect("host")
        h.connect("guest")
        let room = h.createRoom("host")
        h.joinRoom("guest", room, ready: true)
        h.advance(by: 1_000)  // a fresh window: join and ready counted in the last one
        h.clear()
        for _ in 0..<40 { h.send("guest", "chat_message", room: room, payload: ["text": "spam"]) }
        #expect(h.messages("host", "chat_message").count == 30)
        h.send("host", "chat_message", room: room, payload: ["text": "still here"])
        #expect(h.last("host", "chat_message")?.string("text") == "still here")
    }
}

@Suite struct SessionLifetimeTests {
    @Test func noAuthWithinTheTimeoutClosesWithAuthenticationTimeout() {
        var rules = PartyRules()
        rules.authTimeoutMs = 10_000
        let h = Harness(rules: rules, verifier: StubVerifier())
        h.connect("c")
        h.send("c", "auth", payload: ["token": "forged"])
        #expect(h.errorCodes("c") == ["AUTHENTICATION_FAILED"])
        #expect(h.closes.isEmpty, "a failed auth may be retried")
        h.advance(by: 9_999)
        #expect(h.closes.isEmpty)
        h.advance(by: 1)
        #expect(h.errorCodes("c").last == "AUTHENTICATION_TIMEOUT")
        #expect(h.closes.map(\.code) == [4004])
        #expect(h.closes.first?.reason == "Authentication timeout")
    }

    @Test func authenticatingInTimeCancelsTheDeadline() {
        let h = Harness(verifier: StubVerifier())
        h.connect("c")
        h.advance(by: 5_000)
        h.send("c", "auth", payload: ["token": "good-alice"])
        h.advance(by: 20_000)
        #expect(!h.errorCodes("c").contains("AUTHENTICATION_TIMEOUT"))
        #expect(h.closes.isEmpty)
    }

    @Test func anExpiredSessionIsClosedAndARefreshExtendsIt() {
        var verifier = StubVerifier()
        verifier.lifetimeMs = 60_000
        let h = Harness(verifier: verifier)
        h.connect("c")
        h.send("c", "auth", payload: ["token": "good-alice"])
        h.advance(by: 50_000)
        h.send("c", "auth", payload: ["token": "good-alice"])  // refreshed: now ends at 110 000
        h.advance(by: 50_000)
        #expect(h.closes.isEmpty, "the first token's expiry no longer applies")
        h.advance(by: 10_000)
        #expect(h.errorCodes("c").last == "AUTHENTICATION_EXPIRED")
        #expect(h.closes.map(\.code) == [4005])
        #expect(h.closes.first?.reason == "Authentication expired")
    }

    @Test func anExpiredHostLeavesItsRoomOnlyWhenDisconnected() {
        var verifier = StubVerifier()
        verifier.lifetimeMs = 1_000
        let h = Harness(rules: .immediateDeparture, verifier: verifier)
        h.connect("host")
        h.send("host", "auth", payload: ["token": "good-alice"])
        let room = h.createRoom("host")
        h.advance(by: 1_000)
        #expect(h.closes.map(\.client) == ["host"])
        #expect(h.party.rooms[room] != nil, "the room goes when the socket does")
        h.disconnect("host")
        #expect(h.party.rooms[room] == nil)
    }

    @Test func inJWTModeTheNameComesFromTheToken() {
        let h = Harness(verifier: StubVerifier())
        h.connect("c")
        h.send("c", "auth", payload: ["token": "good-alice"])
        _ = h.createRoom("c", payload: ["user_name": "Mallory"])
        #expect(h.party.sessions["c"]?.name == "Alice")
    }
}
