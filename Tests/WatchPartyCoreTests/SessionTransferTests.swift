import Foundation
import Testing

@testable import WatchPartyCore

/// A session in no room moving, as one value, to the server that owns the room it asks for
/// (PROTOCOL.md §14): what it keeps, what it may not be, and that its token still resumes it.
struct SessionTransferTests {
    @Test func aLobbySessionMovesWithItsIdentityAndToken() throws {
        let relay = Harness(verifier: StubVerifier(), tokenPrefix: "relay")
        relay.signIn("alice-1", token: "good-alice")
        let greeting = try #require(relay.messages("alice-1", "client_hello").first?.string("resume_token"), "greeted with its token")
        let transfer = try #require(relay.transferOut("alice-1"))
        #expect(transfer.seat.userID == "u-alice" && transfer.seat.name == "Alice" && transfer.seat.verifiedUserID)
        #expect(transfer.expiresAt == relay.now + StubVerifier().lifetimeMs)
        #expect(relay.party.sessions["alice-1"] == nil, "gone from the relay")
        #expect(relay.events.contains(.sessionEnded(client: "alice-1")), "its timers there go too")
        #expect(!relay.party.resumes(relay.party.resumeDigest(of: greeting)), "its token no longer resumes it there")
        #expect(!String(decoding: try JSONEncoder().encode(transfer), as: UTF8.self).contains(greeting), "a digest travels, never the token")

        // The same digest function on both sides, as on every replica; tokens minted apart (prefixes) never collide.
        let owner = Harness(verifier: StubVerifier())
        owner.signIn("bob-1", token: "good-bob")
        let room = owner.createRoom("bob-1")
        owner.clear()
        #expect(owner.transferIn(transfer) == nil)
        #expect(owner.inbox("alice-1").isEmpty, "not greeted again: its connection was, by its relay")
        let session = try #require(owner.party.sessions["alice-1"])
        #expect(session.authenticated && session.isAttached && session.roomID == nil && session.identity == "u-alice")
        #expect(owner.lastOutcome.timers.contains { $0.key == .sessionExpiry(client: "alice-1", expiresAt: transfer.expiresAt!) }, "its token's expiry holds here")
        #expect(owner.party.resumes(owner.party.resumeDigest(of: greeting)), "the token it was greeted with resumes it here")

        owner.joinRoom("alice-1", room)
        #expect(owner.types("alice-1").contains("room_state"), "served like any session of the owner's")
        #expect(owner.types("bob-1").contains("participant_list"), "the owner's own members see it join")
    }

    @Test func onlyAnAuthenticatedSessionInNoRoomMoves() {
        let relay = Harness(verifier: StubVerifier(), tokenPrefix: "relay")
        relay.connect("anon")
        #expect(relay.transferOut("anon") == nil, "not authenticated (JWT mode): served here, where its auth must come")
        relay.signIn("alice-1", token: "good-alice")
        relay.createRoom("alice-1")
        #expect(relay.transferOut("alice-1") == nil, "in a room: its seat is this server's")
        #expect(relay.transferOut("nobody") == nil)
    }

    @Test func aSessionThatIsHereAlreadyIsRefused() throws {
        let relay = Harness(verifier: StubVerifier(), tokenPrefix: "relay")
        relay.signIn("alice-1", token: "good-alice")
        let transfer = try #require(relay.transferOut("alice-1"))
        let owner = Harness(verifier: StubVerifier())
        #expect(owner.transferIn(transfer) == nil)
        #expect(owner.transferIn(transfer) == .conflict, "by id")
        var sameToken = transfer
        sameToken.seat.id = "alice-2"
        #expect(owner.transferIn(sameToken) == .conflict, "by token")
        var badDigest = transfer
        badDigest.seat.id = "alice-3"
        badDigest.seat.resumeDigest = "not hex"
        #expect(owner.transferIn(badDigest) == .malformed)
    }

    @Test func aMovedSessionDisconnectedInARoomIsAwayAndResumable() throws {
        let relay = Harness(tokenPrefix: "relay")
        relay.login("g", name: "Gus")
        let token = try #require(relay.messages("g", "client_hello").first?.string("resume_token"))
        let transfer = try #require(relay.transferOut("g"))
        let owner = Harness()
        let room = owner.room(host: "h", guests: [])
        owner.transferIn(transfer)
        owner.joinRoom("g", room)
        #expect(owner.types("g").contains("room_state"), "\(owner.types("g")) \(owner.errorCodes("g"))")
        owner.disconnect("g")
        #expect(owner.party.sessions["g"]?.awaySince == owner.now, "away, its seat kept for a resume")
        owner.connect("g2")
        owner.send("g2", "resume", payload: ["token": token])
        #expect(owner.handovers.contains { $0.session == "g" && $0.carrier == "g2" }, "resumed by the token its relay gave it")
    }
}

/// The upstream clients come back by `auth`, through whichever replica: their session moves
/// to the owner of their seat and takes it there.
struct IdentityTransferTests {
    @Test func aMovedSessionTakesItsUsersAwaySeat() throws {
        let owner = Harness(verifier: StubVerifier())
        owner.signIn("bob-1", token: "good-bob")
        let room = owner.createRoom("bob-1")
        owner.signIn("alice-1", token: "good-alice")
        owner.joinRoom("alice-1", room)
        owner.disconnect("alice-1")
        let relay = Harness(verifier: StubVerifier(), tokenPrefix: "relay")
        relay.signIn("alice-2", token: "good-alice")
        let transfer = try #require(relay.transferOut("alice-2"))
        owner.clear()
        let outcome = try owner.party.transferIn(transfer, now: owner.now, resumingIdentity: true).get()
        #expect(outcome.handovers.map { [$0.session, $0.carrier] } == [["alice-1", "alice-2"]], "the seat is the new connection's, as an auth here would have made it")
        #expect(outcome.handovers.first?.tookOver == false, "it was away")
    }

    @Test func withoutAnAwaySeatNothingIsTaken() throws {
        let owner = Harness(verifier: StubVerifier())
        let relay = Harness(verifier: StubVerifier(), tokenPrefix: "relay")
        relay.signIn("alice-2", token: "good-alice")
        let transfer = try #require(relay.transferOut("alice-2"))
        let outcome = try owner.party.transferIn(transfer, now: owner.now, resumingIdentity: true).get()
        #expect(outcome.handovers.isEmpty && outcome.probes.isEmpty)
        #expect(owner.party.sessions["alice-2"]?.roomID == nil, "served in the lobby")
    }
}

/// `room_list` is global with several replicas (PROTOCOL.md §14): rooms other servers own are
/// listed with this one's, in creation order, and the lobby is told when they change.
struct RoomsElsewhereTests {
    static func listed(_ id: String, at createdAt: ServerTime, count: Int = 2) -> ListedRoom {
        ListedRoom(summary: RoomSummary(id: id, name: "Room \(id)", count: count, mediaID: nil), createdAt: createdAt)
    }

    /// A room here (its host "host") and a lobby connection "l"; inboxes cleared.
    static func roomAndLobby() -> (h: Harness, here: RoomID) {
        let h = Harness()
        h.login("host", name: "Hannah")
        let here = h.createRoom("host")
        h.login("l")
        h.clear()
        return (h, here)
    }

    @Test func roomsElsewhereAreListedInCreationOrderAndTheLobbyIsTold() throws {
        let (h, here) = Self.roomAndLobby()
        let made = try #require(h.party.rooms[here]?.createdAt)
        h.listRoomsElsewhere([Self.listed("far-1", at: made - 10), Self.listed("far-2", at: made + 10, count: 5)])
        let list = try #require(h.last("l", "room_list")?.roomList)
        #expect(list.map { $0["id"] as? String } == ["far-1", here, "far-2"], "one list, oldest first")
        #expect(list.last?["count"] as? Int == 5)
        #expect(h.types("host").isEmpty, "members of a room are not sent the lobby's list")
        h.clear()
        h.listRoomsElsewhere([Self.listed("far-1", at: made - 10), Self.listed("far-2", at: made + 10, count: 5)])
        #expect(h.types("l").isEmpty, "nothing changed: nothing sent")
    }

    @Test func aRoomHereIsListedAsItIsHere() throws {
        let (h, here) = Self.roomAndLobby()
        // Taken over meanwhile: the database still names another owner until the next read.
        h.listRoomsElsewhere([Self.listed(here, at: 0, count: 9)])
        h.send("l", "list_rooms")
        let list = try #require(h.last("l", "room_list")?.roomList)
        #expect(list.count == 1 && list.first?["count"] as? Int == 1, "listed once, with the count here")
    }
}
