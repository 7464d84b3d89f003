import SyncSimulator
import Testing

@testable import WatchPartyCore

/// What the fuzzer drives: the party whole, or cut along its rooms as the shell runs it.
protocol FuzzedParty {
    /// The whole state as one party (for the fuzzer's choices and invariant checks).
    var view: Party { get }
    /// How inputs were routed, by kind (empty for the whole party).
    var routed: [String: Int] { get }
    mutating func connect(_ client: ClientID, now: ServerTime) -> Outcome
    mutating func disconnect(_ client: ClientID, now: ServerTime) -> Outcome
    mutating func receive(_ message: ClientMessage, from client: ClientID, now: ServerTime) -> Outcome
    mutating func reject(_ client: ClientID, _ code: ErrorCode, now: ServerTime) -> Outcome
    mutating func fire(_ key: TimerKey, now: ServerTime) -> Outcome
    mutating func settleProbe(of session: ClientID, for claimant: ClientID, answered: Bool, now: ServerTime) -> Outcome
}

/// The party as one value: every input applied to it.
struct WholeParty: FuzzedParty {
    var party: Party
    var view: Party { party }
    var routed: [String: Int] { [:] }
    mutating func connect(_ client: ClientID, now: ServerTime) -> Outcome { party.connect(client, now: now) }
    mutating func disconnect(_ client: ClientID, now: ServerTime) -> Outcome { party.disconnect(client, now: now) }
    mutating func receive(_ message: ClientMessage, from client: ClientID, now: ServerTime) -> Outcome { party.receive(message, from: client, now: now) }
    mutating func reject(_ client: ClientID, _ code: ErrorCode, now: ServerTime) -> Outcome { party.reject(client, code, now: now) }
    mutating func fire(_ key: TimerKey, now: ServerTime) -> Outcome { party.fire(key, now: now) }
    mutating func settleProbe(of session: ClientID, for claimant: ClientID, answered: Bool, now: ServerTime) -> Outcome {
        party.settleProbe(of: session, for: claimant, answered: answered, now: now)
    }
}

/// The party cut along its rooms, routed as the shell routes it (`SessionGateway`): between two
/// inputs every room is in a part of its own; an input a part answers alone goes to it, any other
/// to the whole with the parts it involves attached, and every room is cut out again after it.
struct CutParty: FuzzedParty {
    var whole: Party
    var parts: [RoomID: Party] = [:]
    private(set) var routed: [String: Int] = [:]

    init(_ party: Party) {
        whole = party
        cutEveryRoom()
    }

    var view: Party {
        var assembled = whole
        for part in parts.values { assembled.attachRoom(part) }
        return assembled
    }

    private mutating func cutEveryRoom() {
        for id in whole.rooms.keys {
            parts[id] = whole.detachRoom(id)
        }
    }

    /// An input to the whole, with `involved` attached for it.
    private mutating func inWhole(_ involved: Set<RoomID>, _ body: (inout Party) -> Outcome) -> Outcome {
        routed[involved.isEmpty ? "whole" : "whole with \(min(involved.count, 2)) parts", default: 0] += 1
        for id in involved {
            whole.attachRoom(parts.removeValue(forKey: id)!)
        }
        let outcome = body(&whole)
        cutEveryRoom()
        return outcome
    }

    /// The part that alone answers a message from `client`, if one does.
    private func servingPart(_ type: ClientMessageType?, naming room: RoomID?, from client: ClientID) -> RoomID? {
        guard let own = whole.sessions[client]?.roomID, parts[own]?.servesInRoom(type, naming: room, from: client) == true else { return nil }
        return own
    }

    private mutating func inPart(_ id: RoomID, _ body: (inout Party) -> Outcome) -> Outcome {
        routed["part", default: 0] += 1
        return body(&parts[id]!)
    }

    mutating func connect(_ client: ClientID, now: ServerTime) -> Outcome {
        inWhole([]) { $0.connect(client, now: now) }
    }

    mutating func disconnect(_ client: ClientID, now: ServerTime) -> Outcome {
        let involved = whole.roomsInvolved(disconnecting: client)
        if whole.awayCount >= whole.rules.maxAwaySessions, involved.count > 1 { routed["eviction elsewhere", default: 0] += 1 }
        return inWhole(involved) { $0.disconnect(client, now: now) }
    }

    mutating func receive(_ message: ClientMessage, from client: ClientID, now: ServerTime) -> Outcome {
        if let id = servingPart(message.type, naming: message.room, from: client) {
            return inPart(id) { $0.receive(message, from: client, now: now) }
        }
        return inWhole(whole.roomsInvolved(receiving: message, from: client, verdict: nil)) { $0.receive(message, from: client, now: now) }
    }

    mutating func reject(_ client: ClientID, _ code: ErrorCode, now: ServerTime) -> Outcome {
        if let id = servingPart(nil, naming: nil, from: client) {
            return inPart(id) { $0.reject(client, code, now: now) }
        }
        return inWhole(whole.roomsInvolved(receiving: nil, from: client, verdict: nil)) { $0.reject(client, code, now: now) }
    }

    mutating func fire(_ key: TimerKey, now: ServerTime) -> Outcome {
        if let id = Party.roomOfTimer(key), parts[id] != nil {
            return inPart(id) { $0.fire(key, now: now) }
        }
        return inWhole(whole.roomsInvolved(firing: key)) { $0.fire(key, now: now) }
    }

    mutating func settleProbe(of session: ClientID, for claimant: ClientID, answered: Bool, now: ServerTime) -> Outcome {
        inWhole(whole.roomsInvolved(clients: [session, claimant])) { $0.settleProbe(of: session, for: claimant, answered: answered, now: now) }
    }
}

@Suite struct PartitionTests {
    /// The fuzzer's inputs (resumes, takeovers, probes, evictions of another room's away seat,
    /// hosts leaving, rooms closing) through the whole party and through the party cut along its
    /// rooms: the same messages to the same recipients, the same closes and handovers, in order.
    @Test func theCutPartyAnswersEveryInputAsTheWholeDoes() async throws {
        let (whole, cut, other) = try await onItsOwnThread {
            (
                try FuzzTests.run(seed: 0x5EED_CA8, steps: 12_000) { WholeParty(party: $0) },
                try FuzzTests.run(seed: 0x5EED_CA8, steps: 12_000) { CutParty($0) },
                try FuzzTests.run(seed: 0xCA7_5EED, steps: 1_000) { CutParty($0) }
            )
        }
        print("partition routes: \(cut.routed)")
        #expect(cut.digest == whole.digest, "the cut party answered differently: \(cut.routed)")
        #expect(cut.sent == whole.sent && cut.errors == whole.errors && cut.handovers == whole.handovers)
        #expect(other.digest != cut.digest)
        // Every route was taken, the ones that need the router's care many times.
        #expect(cut.routed["part", default: 0] > 1_500, "\(cut.routed)")
        #expect(cut.routed["whole with 2 parts", default: 0] > 100, "\(cut.routed)")
        #expect(cut.routed["eviction elsewhere", default: 0] > 1, "\(cut.routed)")
    }

    @Test func aDetachedRoomIsListedAndComesBackWhole() throws {
        var party = Party(roomIDs: SequentialRoomIDs(), tokens: CountingResumeTokens())
        _ = party.connect("host", now: t0)
        _ = party.connect("guest", now: t0)
        _ = party.connect("lobby", now: t0)
        _ = party.receive(.create(name: "Film"), from: "host", now: t0)
        let roomID = try #require(party.sessions["host"]?.roomID)
        _ = party.receive(.join(roomID), from: "guest", now: t0)
        let listed = party.roomSummaries()
        let before = party

        let cut = party.detachRoom(roomID)
        var part = try #require(cut)
        #expect(party.rooms[roomID] == nil && party.roomCount == 1 && party.detachedRooms == [roomID])
        #expect(party.roomSummaries() == listed, "the lobby lists the room as it was cut")
        #expect(Set(part.sessions.keys) == ["host", "guest"] && part.rooms.keys.elementsEqual([roomID]))
        #expect(party.sessions["guest"] == before.sessions["guest"], "the whole keeps a shadow of each member")
        #expect(party.detachRoom(roomID) == nil && part.detachRoom(roomID) == nil, "a room is cut once; a part is not cut further")

        // A chat in the part; the whole, with it back, is the whole that handled the chat itself.
        let inPart = part.receive(.chat("hello", room: roomID), from: "guest", now: t0 + 10)
        var uncut = before
        let inWhole = uncut.receive(.chat("hello", room: roomID), from: "guest", now: t0 + 10)
        #expect(inPart.deliveries == inWhole.deliveries)
        party.attachRoom(part)
        #expect(party.rooms.storage == uncut.rooms.storage && party.sessions.storage == uncut.sessions.storage)
        #expect(party.detachedRooms.isEmpty && party.roomCount == 1)
    }

    @Test func aPartServesOnlyItsMembersMessagesAboutTheirOwnRoom() throws {
        var party = Party(roomIDs: SequentialRoomIDs(), tokens: CountingResumeTokens())
        _ = party.connect("host", now: t0)
        _ = party.connect("lobby", now: t0)
        _ = party.receive(.create(name: "Film"), from: "host", now: t0)
        let roomID = try #require(party.sessions["host"]?.roomID)
        let cut = party.detachRoom(roomID)
        let part = try #require(cut)

        #expect(part.servesInRoom(.chatMessage, naming: roomID, from: "host"))
        #expect(part.servesInRoom(.ping, naming: nil, from: "host"))
        #expect(part.servesInRoom(nil, naming: nil, from: "host"), "an undecodable frame: the rate limit and an error")
        #expect(!part.servesInRoom(.chatMessage, naming: "elsewhere", from: "host"), "another room's answer is the whole's")
        #expect(!part.servesInRoom(.leaveRoom, naming: nil, from: "host"), "leaving changes the lobby")
        #expect(!part.servesInRoom(.ping, naming: nil, from: "lobby"), "not a member")
        #expect(!party.servesInRoom(.ping, naming: nil, from: "host"), "the whole is no part")
        #expect(Party.roomOfTimer(.statusFlush(room: roomID)) == roomID && Party.roomOfTimer(.resumeGrace(session: "host", awaySince: 1)) == nil)
    }

    /// At the away bound a disconnect evicts the oldest away seat, whichever room it is in: that
    /// room is involved, or the eviction would act on a room the whole does not hold.
    @Test func aDisconnectAtTheAwayBoundInvolvesTheEvictedSeatsRoom() throws {
        var rules = PartyRules()
        rules.maxAwaySessions = 1
        var party = Party(rules: rules, roomIDs: SequentialRoomIDs(), tokens: CountingResumeTokens())
        for client in ["a-host", "a-guest", "b-host", "b-guest"] { _ = party.connect(client, now: t0) }
        _ = party.receive(.create(name: "A"), from: "a-host", now: t0)
        _ = party.receive(.create(name: "B"), from: "b-host", now: t0)
        let a = try #require(party.sessions["a-host"]?.roomID)
        let b = try #require(party.sessions["b-host"]?.roomID)
        _ = party.receive(.join(a), from: "a-guest", now: t0)
        _ = party.receive(.join(b), from: "b-guest", now: t0)
        _ = party.disconnect("a-guest", now: t0 + 1)  // away in A: the bound is reached
        let (cutA, cutB) = (party.detachRoom(a), party.detachRoom(b))
        let partA = try #require(cutA)
        let partB = try #require(cutB)

        #expect(party.roomsInvolved(disconnecting: "b-guest") == [a, b])
        #expect(party.roomsInvolved(disconnecting: "lobby-nobody") == [a], "the eviction happens even if the seat itself is in no room")
        party.attachRoom(partA)
        party.attachRoom(partB)
        let outcome = party.disconnect("b-guest", now: t0 + 2)
        #expect(outcome.events.contains(.graceExpired(client: "a-guest", room: a, early: true)))
    }

    @Test func aResumeInvolvesTheTokensSeatAndAnAuthItsIdentitysSeats() throws {
        var rules = PartyRules()
        rules.resumeByUserID = true
        var party = Party(rules: rules, roomIDs: SequentialRoomIDs(), tokens: CountingResumeTokens())
        let hello = party.connect("seat", now: t0)
        _ = party.connect("newcomer", now: t0)
        _ = party.receive(.auth(userID: "alice"), from: "seat", now: t0)
        _ = party.receive(.create(name: "Film"), from: "seat", now: t0)
        let roomID = try #require(party.sessions["seat"]?.roomID)
        _ = party.detachRoom(roomID)
        guard case .clientHello(_, let token?, _) = try #require(hello.deliveries.first).message.payload else {
            Issue.record("no token")
            return
        }
        #expect(party.roomsInvolved(receiving: .resume(token: token), from: "newcomer", verdict: nil) == [roomID])
        #expect(party.roomsInvolved(receiving: .resume(token: "not-ours"), from: "newcomer", verdict: nil).isEmpty)
        #expect(party.roomsInvolved(receiving: .auth(userID: "alice"), from: "newcomer", verdict: nil) == [roomID])
        #expect(party.roomsInvolved(receiving: .auth(userID: "bob"), from: "newcomer", verdict: nil).isEmpty)
        #expect(party.roomsInvolved(receiving: .join(roomID), from: "newcomer", verdict: nil) == [roomID])
        #expect(party.roomsInvolved(receiving: nil, from: "seat", verdict: nil) == [roomID])
    }
}

extension ClientMessage {
    fileprivate static func create(name: String) -> ClientMessage {
        ClientMessage(type: .createRoom, payload: .object(["name": .string(name)]), ts: 1)
    }
    fileprivate static func join(_ room: RoomID) -> ClientMessage { ClientMessage(type: .joinRoom, room: room, ts: 1) }
    fileprivate static func chat(_ text: String, room: RoomID) -> ClientMessage {
        ClientMessage(type: .chatMessage, room: room, payload: .object(["text": .string(text)]), ts: 1)
    }
    fileprivate static func auth(userID: String) -> ClientMessage {
        ClientMessage(type: .auth, payload: .object(["user_id": .string(userID), "user_name": .string(userID)]), ts: 1)
    }
    fileprivate static func resume(token: String) -> ClientMessage { ClientMessage(type: .resume, payload: .object(["token": .string(token)]), ts: 1) }
}
