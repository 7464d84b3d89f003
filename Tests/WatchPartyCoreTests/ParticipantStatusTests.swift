import Foundation
import Testing

@testable import WatchPartyCore

/// `participant_status` and its 250 ms coalescing (PROTOCOL.md §9).
@Suite struct ParticipantStatusTests {
    func status(_ h: Harness, _ client: ClientID, _ value: Any, room: RoomID? = nil) {
        h.send(client, "participant_status", room: room, payload: ["status": value])
    }

    @Test func firstChangeIsBroadcastAtOnce() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.connect("l")
        h.clear()
        status(h, "g1", "buffering")
        for member in ["h", "g1", "g2"] {
            let message = try #require(h.only(member))
            #expect(message.type == "participant_statuses")
            #expect(message.room == room)
            #expect(message.client == nil)
            #expect(message.ts == t0)
            #expect(message.payloadKeys == ["statuses"])
            #expect(message.statuses == [nil, "buffering", nil])
        }
        #expect(h.inbox("l").isEmpty)
        #expect(h.events == [.participantStatus(.buffering)])
    }

    @Test func laterChangesInTheWindowAreMergedAtItsEnd() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        status(h, "g", "loading")  // at t0: broadcast, window to t0+250
        h.clear()
        h.advance(by: 100)
        status(h, "h", "playing")
        #expect(h.inboxes.isEmpty)
        #expect(h.lastOutcome.timers == [TimerRequest(key: .statusFlush(room: room), due: t0 + 250)])
        h.advance(by: 100)
        status(h, "g", "in_sync")
        #expect(h.inboxes.isEmpty)
        #expect(h.lastOutcome.timers.isEmpty, "one flush per window")
        h.advance(by: 49)
        #expect(h.inboxes.isEmpty)
        h.advance(by: 1)  // t0+250: the window ends
        for member in ["h", "g"] {
            let merged = try #require(h.only(member))
            #expect(merged.type == "participant_statuses")
            #expect(merged.ts == t0 + 250)
            #expect(merged.statuses == ["playing", "in_sync"])
        }
        #expect(h.events == [.participantStatus(.playing), .participantStatus(.inSync)])

        // A flush opens a new window: a change right after it waits for that window's end.
        h.clear()
        h.advance(by: 100)  // t0+350
        status(h, "h", "paused")
        #expect(h.inboxes.isEmpty)
        #expect(h.lastOutcome.timers.first?.due == t0 + 500)
        h.advance(by: 150)
        #expect(h.only("g")?.statuses == ["paused", "in_sync"])

        // Once a window has passed quietly, the next change goes out at once.
        h.clear()
        h.advance(by: 1000)
        status(h, "g", "blocked")
        #expect(h.only("h")?.statuses == ["paused", "blocked"])
        #expect(h.lastOutcome.timers.isEmpty)
    }

    @Test func flushTimerWithNothingPendingIsQuiet() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.fire(.statusFlush(room: room))
        h.fire(.statusFlush(room: "room-404"))
        #expect(h.inboxes.isEmpty)
    }

    @Test func unchangedInvalidAndRoomlessStatusesAreIgnored() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        status(h, "g", "paused")
        h.advance(by: 1000)
        h.clear()
        status(h, "g", "paused")  // unchanged
        status(h, "g", "dancing")
        status(h, "g", "PAUSED")
        status(h, "g", 3)
        h.send("g", "participant_status", payload: ["state": "playing"])
        h.send("g", "participant_status")
        status(h, "g", "playing", room: "room-404")  // not its room
        h.connect("l")
        status(h, "l", "playing")  // outside a room
        status(h, "l", "playing", room: room)  // not a member
        h.advance(by: 1000)
        #expect(h.messages("h", "participant_statuses").isEmpty)
        #expect(h.messages("g", "participant_statuses").isEmpty)
        #expect(h.errorCodes("g").isEmpty, "ignored, not refused")
        #expect(h.errorCodes("l").isEmpty)
        #expect(h.events.isEmpty)
        #expect(h.party.rooms[room]?.statuses == ["g": .paused])
    }

    @Test func statusWithItsOwnRoomIsAccepted() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        status(h, "g", "catching_up", room: room)
        #expect(h.only("h")?.statuses == [nil, "catching_up"])
    }

    @Test("every documented status is accepted", arguments: ParticipantStatus.allCases)
    func everyStatus(value: ParticipantStatus) throws {
        let h = Harness()
        h.room(guests: ["g"])
        status(h, "g", value.rawValue)
        #expect(h.only("h")?.statuses == [nil, value.rawValue])
    }

    @Test func documentedStatusVocabulary() {
        #expect(
            Set(ParticipantStatus.allCases.map(\.rawValue)) == [
                "playing", "paused", "in_sync", "catching_up", "buffering", "loading", "blocked", "not_watching",
            ])
    }

    @Test func statusesStayIndexForIndexWithParticipants() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        status(h, "g2", "loading")
        h.advance(by: 300)
        status(h, "h", "in_sync")
        h.clear()
        h.send("g1", "leave_room")
        let list = try #require(h.last("h", "participant_list"))
        let statuses = try #require(h.last("h", "participant_statuses"))
        #expect(list.participants.map(\.name) == ["Hannah", "G2"])
        #expect(statuses.statuses == ["in_sync", "loading"])

        h.clear()
        h.login("g3", name: "G3")
        h.joinRoom("g3", room)
        #expect(h.last("g3", "participant_list")?.participants.map(\.name) == ["Hannah", "G2", "G3"])
        #expect(h.last("g3", "participant_statuses")?.statuses == ["in_sync", "loading", nil])

        // A departed member's status is forgotten.
        h.send("g2", "leave_room")
        h.joinRoom("g2", room)
        #expect(h.last("g2", "participant_statuses")?.statuses == ["in_sync", nil, nil])
        #expect(h.last("g2", "participant_list")?.participants.map(\.name) == ["Hannah", "G3", "G2"])
    }
}
