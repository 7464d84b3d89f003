import Testing

@testable import App

/// A pong's round trip reaches the core without the pong taking the party's lock: it waits
/// and is handed over at the next input or inspection (SessionGateway.recordRoundTrip).
@Suite struct RoundTripTests {
    @Test func aMeasuredRoundTripReachesTheCoreWithoutAnyFurtherMessage() async throws {
        try await withLiveServer({
            // Long enough that setting up the room never takes longer, even on a busy machine.
            $0.transport.firstPingDelay = .seconds(2)
        }) { port, server, _ in
            let host = try await LiveClient(port: port)
            _ = try await host.next("room_list")
            try await host.send(["type": "create_room", "payload": ["name": "Film night"]])
            _ = try await host.next("room_state")
            #expect(server.gateway.inspect().first?.members.first?.rttMs == nil, "no ping answered yet")
            // The server pings 2 s after connect; the client's library answers with a pong.
            #expect(try await eventually { server.gateway.inspect().first?.members.first?.rttMs != nil })
            try await host.close()
        }
    }

    @Test func waitingSamplesAreBoundedPerClient() {
        var pending = PendingRoundTrips()
        for rtt in UInt64(1)...100 { pending.add(rtt, for: "c") }
        pending.add(7, for: "d")
        let taken = pending.take()
        #expect(taken["c"] == Array(93...100), "the newest, as many as the core keeps")
        #expect(taken["d"] == [7])
        #expect(pending.take().isEmpty)
    }
}
