import Foundation
import Observability
import Testing
@testable import App

/// Idle TCP connections cannot exhaust the descriptors (issue 11's crash: before the bound, idle
/// plain-TCP connections took the process down). The real binary, under `ulimit -n 256`.
@Suite(.serialized) struct ConnectionBoundTests {
    static func openDescriptors(of pid: Int32) -> Int {
        ProcessStats.openDescriptors(process: String(pid)) ?? -1
    }

    @Test func moreIdleConnectionsThanTheBoundLeaveTheServerAlive() async throws {
        let limit = 256
        let bound = 192  // 256 - 64 kept (TCPConnectionBudget.limit(forDescriptorLimit:))
        let server = try ServerProcess(arguments: ["--request-head-timeout-seconds", "2"], descriptorLimit: limit)
        try await server.waitUntilListening()
        #expect(server.logText.contains("descriptor_limit=\(limit)"), "the bound is derived from RLIMIT_NOFILE: \(server.logText)")
        #expect(server.logText.contains("tcp_connection_limit=\(bound)"))
        let pid = server.process.processIdentifier

        // Twice the descriptor limit of idle sockets that never send a byte.
        let port = server.port
        let idle = try await offPool { try (0..<(2 * limit)).map { _ in try RawSocket(port: port) } }
        try await Task.sleep(for: .milliseconds(500))
        #expect(server.process.isRunning, "alive with \(idle.count) idle connections")
        let held = Self.openDescriptors(of: pid)
        #expect(held > bound / 2 && held < limit, "descriptors held: \(held), bound \(bound), limit \(limit)")

        // The idle ones are closed when their head does not come; then the server answers again.
        let deadline = ContinuousClock.now + .seconds(20)
        var status = 0
        while ContinuousClock.now < deadline && status != 200 {
            status = (try? await server.httpStatus("/healthz")) ?? 0
            if status != 200 { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(status == 200, "/healthz answers once idle connections time out")
        #expect(server.process.isRunning)
        let metrics = try await server.httpResponse("/metrics")
        #expect(metrics.contains("owp_tcp_connection_limit \(bound)"))
        let timeouts = metrics.split(separator: "\n").first { $0.hasPrefix("owp_request_head_timeouts_total ") }
        #expect((timeouts.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0) >= Double(bound), "the idle ones were timed out: \(timeouts ?? "none")")
        let pauses = metrics.split(separator: "\n").first { $0.hasPrefix("owp_tcp_accept_pauses_total ") }
        #expect((pauses.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0) >= 1, "the bound stopped the listener")
        #expect(server.logText.contains("TCP connection bound reached"))
        withExtendedLifetime(idle) {}
        server.signal(SIGTERM)
        #expect(try await server.exitStatus(within: .seconds(10)) == 0)
    }

    @Test func aTrickledRequestHeadIsCutOff() async throws {
        let server = try ServerProcess(arguments: ["--request-head-timeout-seconds", "1"])
        try await server.waitUntilListening()
        let port = server.port
        let started = ContinuousClock.now
        let closedAfter = try await offPool { () -> Duration in
            let socket = try RawSocket(port: port)
            // One header byte every 200 ms: each read resets an idle timer, not this deadline.
            for byte in Array("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) {
                guard (try? socket.write([byte])) != nil else { break }
                Thread.sleep(forTimeInterval: 0.2)
                if ContinuousClock.now - started > .seconds(5) { break }
            }
            return ContinuousClock.now - started
        }
        #expect(closedAfter < .seconds(3), "closed at the 1 s head deadline (took \(closedAfter))")
        #expect(try await server.httpStatus("/healthz") == 200, "a complete head is answered")
    }

    @Test func anIdleKeepAliveConnectionIsClosedToo() async throws {
        let server = try ServerProcess(arguments: ["--request-head-timeout-seconds", "1"])
        try await server.waitUntilListening()
        let port = server.port
        let (answer, closedAfter) = try await offPool { () -> (String, Duration) in
            let socket = try RawSocket(port: port)
            let head = try socket.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  // keep-alive
            let started = ContinuousClock.now
            _ = try? socket.read(count: 1 << 16)  // the body, then EOF when the server closes
            return (head, ContinuousClock.now - started)
        }
        #expect(answer.hasPrefix("HTTP/1.1 200"))
        #expect(closedAfter < .seconds(4), "closed about 1 s after the response (took \(closedAfter))")
    }
}
