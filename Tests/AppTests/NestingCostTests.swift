import Foundation
import Observability
import Testing
@testable import App

/// What deep nesting costs the real server (issue 10): measured in the server process's own
/// CPU time, from /proc. Before the strict decoder one 1 KB ping nested 500 deep cost ~0.7 s.
@Suite(.serialized) struct NestingCostTests {
    /// utime + stime of `pid`, in seconds.
    static func cpuSeconds(of pid: Int32) throws -> Double {
        guard let seconds = ProcessStats.cpuSeconds(process: String(pid)) else { throw TestFailure("no /proc/\(pid)/stat") }
        return seconds
    }

    static func ping(depth: Int) -> String {
        #"{"type":"ping","ts":1,"payload":"# + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}"
    }

    /// Sends `count` copies of `text` and waits for as many replies; returns the server CPU spent and the replies' codes.
    static func flood(_ server: ServerProcess, _ client: LiveClient, _ text: String, count: Int) async throws -> (cpu: Double, codes: Set<String>) {
        let before = try cpuSeconds(of: server.process.processIdentifier)
        var codes: Set<String> = []
        // In batches well under the outbound queue (100), each answered before the next: the
        // client stays a fast reader however loaded the machine is.
        let batch = 25
        for _ in stride(from: 0, to: count, by: batch) {
            for _ in 0..<batch { try await client.sendRaw(text) }
            for _ in 0..<batch {
                let reply = try await client.next(timeout: .seconds(30))
                codes.insert((reply["payload"] as? [String: Any])?["code"] as? String ?? reply["type"] as? String ?? "?")
            }
        }
        return (try cpuSeconds(of: server.process.processIdentifier) - before, codes)
    }

    @Test func depthOneHundredAndOneThousandCostTheSameAndAreRefused() async throws {
        let server = try ServerProcess(arguments: ["--rate-limit-per-second", "100000"])
        try await server.waitUntilListening()
        let client = try await LiveClient(port: server.port)
        _ = try await client.next("room_list")
        _ = try await Self.flood(server, client, Self.ping(depth: 2), count: 50)  // warm-up

        let count = 500
        let shallow = try await Self.flood(server, client, Self.ping(depth: 100), count: count)
        let deep = try await Self.flood(server, client, Self.ping(depth: 1_000), count: count)
        let flat = try await Self.flood(server, client, Self.ping(depth: 30), count: count)
        print("nesting: \(count) pings each, server CPU depth 30 (accepted) \(flat.cpu) s, depth 100 \(shallow.cpu) s, depth 1000 \(deep.cpu) s")

        #expect(shallow.codes == ["INVALID_JSON"])
        #expect(deep.codes == ["INVALID_JSON"])
        #expect(flat.codes == ["pong"], "depth 30 is within the cap of \(32)")
        // Refused at the cap: ten times the depth is not ten times the work (generous slack: 10 ms ticks, a loaded machine).
        #expect(deep.cpu <= 3 * shallow.cpu + 0.1)
        // Absolute: 500 messages of depth 1 000 take well under a second (before: seconds each).
        #expect(deep.cpu < 1.0)

        let start = ContinuousClock.now
        #expect(try await server.httpStatus("/healthz") == 200)
        #expect(ContinuousClock.now - start < .seconds(1), "health stays responsive")
        _ = try await client.close()
    }
}
