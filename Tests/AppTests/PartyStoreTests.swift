import SyncSimulator
import Testing
import WatchPartyCore

@testable import App

/// The store every change passes through: one input at a time, and each update saying what it touched.
@Suite struct PartyStoreTests {
    static func store() -> InMemoryPartyStore {
        InMemoryPartyStore(Party(roomIDs: RandomRoomIDs(), tokens: CountingResumeTokens()))
    }

    @Test func concurrentUpdatesAreAppliedOneAtATime() async {
        let store = Self.store()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<250 {
                        _ = store.update { party in (party.connect("c-\(task)-\(index)", now: 1), ()) }
                    }
                }
            }
        }
        #expect(store.read { $0.sessions.count } == 2_000, "no update lost to another")
        // Every greeting got its own token (the minter is part of the state, advanced once per connect).
        #expect(store.read { Set($0.sessions.values.compactMap(\.resumeDigest)).count } == 2_000)
    }

    @Test func eachUpdateReportsWhatItTouched() {
        let store = Self.store()
        let connected = store.update { party in (party.connect("host", now: 1), ()) }.outcome
        #expect(connected.changes == StateChanges(sessions: ["host"]))
        let created = store.update { party in (party.receive(ClientMessage(type: .createRoom, ts: 1), from: "host", now: 2), ()) }.outcome
        let room = try? #require(store.read { $0.sessions["host"]?.roomID })
        #expect(created.changes.rooms == Set([room].compactMap { $0 }))
        #expect(created.changes.sessions == ["host"])
        let pinged = store.update { party in (party.receive(ClientMessage(type: .ping, ts: 1), from: "host", now: 3), ()) }.outcome
        #expect(pinged.changes.rooms.isEmpty, "a ping touches no room")
        let gone = store.update { party in (party.fire(.resumeGrace(session: "nobody", awaySince: 0), now: 4), ()) }.outcome
        #expect(gone.changes.isEmpty, "a stale timer touches nothing")
    }
}
