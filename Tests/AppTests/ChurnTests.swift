import Foundation
import Observability
import Testing
@testable import App

/// 1 000 connect → create/join → disconnect cycles over real sockets leave nothing behind.
@Suite struct ChurnTests {
    @Test func thousandCyclesLeaveNoConnectionsNoRoomsAndNoMemoryGrowth() async throws {
        try await withLiveServer({
            $0.rules.rateLimitPerSecond = 1_000
            $0.rules.resumeGraceMs = 0  // §5's immediate departures: a closed host takes its room with it
        }) { port, server, _ in
            func cycle() async throws {
                let host = try await LiveClient(port: port)
                try await host.send(["type": "create_room", "payload": ["name": "churn"]])
                let roomID = try #require(try await host.next("room_state")["room"] as? String)
                let guest = try await LiveClient(port: port)
                try await guest.send(["type": "join_room", "room": roomID])
                _ = try await guest.next("room_state")
                try await guest.close()
                try await host.close()
            }
            for _ in 0..<100 { try await cycle() }  // warm-up: pools, caches, lazily built state
            #expect(try await eventually { server.gateway.connectionCount == 0 })
            let before = ProcessStats.read().residentBytes

            for _ in 0..<1_000 { try await cycle() }
            #expect(try await eventually { server.gateway.connectionCount == 0 && server.transport.openConnections == 0 })
            #expect(server.gateway.roomCount == 0)
            let after = ProcessStats.read().residentBytes
            let growth = after - before
            print("churn: 1000 cycles (2000 connections), rooms 0, connections 0, RSS \(before / 1024) KiB → \(after / 1024) KiB (\(growth / 1024) KiB)")
            // The test process holds the clients too; 16 MiB is far above noise and far below a leak of
            // a few KiB per connection (2 000 connections × 8 KiB = 16 MiB).
            #expect(growth < 16 << 20)
        }
    }
}
