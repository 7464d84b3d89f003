import Testing

@testable import App

/// The opening handshake over a real socket (RFC 6455 §4, RFC 7692 §5): a broken request
/// gets its status and is counted, an extension offer is answered or declined, never
/// refused with an error status.
@Suite struct HandshakeLiveTests {
    static let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="

    func response(port: Int, _ request: String) async throws -> String {
        let socket = try RawSocket(port: port)
        return try await offPool { try socket.request(request) }
    }

    @Test func brokenHandshakesGetTheirStatusAndAreCounted() async throws {
        try await withLiveServer { port, server, _ in
            let base = "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            let post = try await response(port: port, "POST /ws HTTP/1.1\r\n\(base)\(Self.key)\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n")
            let http10 = try await response(port: port, "GET /ws HTTP/1.0\r\n\(base)\(Self.key)\r\nSec-WebSocket-Version: 13\r\n\r\n")
            let badKey = try await response(port: port, "GET /ws HTTP/1.1\r\n\(base)Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n")
            let version = try await response(port: port, "GET /ws HTTP/1.1\r\n\(base)\(Self.key)\r\nSec-WebSocket-Version: 8\r\n\r\n")
            #expect(post.hasPrefix("HTTP/1.1 400"))
            #expect(http10.hasPrefix("HTTP/1.1 400"))
            #expect(badKey.hasPrefix("HTTP/1.1 400"))
            #expect(version.hasPrefix("HTTP/1.1 426"))
            #expect(version.lowercased().contains("sec-websocket-version: 13"), "426 names the version spoken here")
            let metrics = server.metrics.exposition(server.gateway.metricsSnapshot())
            #expect(metrics.contains(#"owp_connections_rejected_total{reason="bad_handshake"} 3"#))
            #expect(metrics.contains(#"owp_connections_rejected_total{reason="websocket_version"} 1"#))
            #expect(server.transport.openConnections == 0, "nothing was reserved for them")
        }
    }

    @Test func anUpgradeDeclaringABodyItNeverSendsIsRefusedAndDroppedNotHeld() async throws {
        try await withLiveServer({ $0.transport.requestHeadTimeout = .seconds(1) }) { port, server, _ in
            let socket = try RawSocket(port: port)
            let started = ContinuousClock.now
            let answer = try await offPool { () -> String in
                try socket.write(Array("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\(Self.key)\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\n".utf8))
                var received: [UInt8] = []
                while let byte = try? socket.read(count: 1), !byte.isEmpty { received += byte }
                return String(decoding: received, as: UTF8.self)
            }
            #expect(ContinuousClock.now - started < .seconds(5), "dropped after the head timeout (1 s), not held")
            #expect(!answer.contains("101"))
            let metrics = server.metrics.exposition(server.gateway.metricsSnapshot())
            #expect(metrics.contains(#"owp_connections_rejected_total{reason="bad_handshake"} 1"#))
            #expect(server.transport.openConnections == 0)
        }
    }

    @Test func theServerAlwaysAsksForNoContextTakeoverAndReadsEveryOffer() async throws {
        try await withLiveServer { port, _, _ in
            let chromium = try await RawSocket(port: port).upgradeOffPool(["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
            let second = try await RawSocket(port: port).upgradeOffPool(["Sec-WebSocket-Extensions: x-foo, permessage-deflate"])
            let declined = try await RawSocket(port: port).upgradeOffPool(["Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8"])
            let answer = "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            #expect(chromium.hasPrefix("HTTP/1.1 101") && chromium.lowercased().contains(answer))
            #expect(second.hasPrefix("HTTP/1.1 101") && second.lowercased().contains(answer))
            #expect(declined.hasPrefix("HTTP/1.1 101"), "an offer that cannot be taken is declined, not refused")
            #expect(!declined.lowercased().contains("sec-websocket-extensions"))
        }
    }
}

extension RawSocket {
    func upgradeOffPool(_ headers: [String]) async throws -> String {
        try await offPool { try self.upgrade(extraHeaders: headers) }
    }
}

/// A plain HTTP request may not stream a body without bound on the main port.
@Suite struct RequestBodyBoundTests {
    @Test func aBodyPastTheBoundClosesTheConnectionAndIsCounted() async throws {
        try await withLiveServer { port, server, _ in
            let socket = try RawSocket(port: port)
            let body = [UInt8](repeating: 0x61, count: 200_000)
            let answer = try await offPool { () -> [UInt8] in
                try socket.write(Array("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n".utf8))
                // The server may close (even reset) before all of it is written: that is the point.
                try? socket.write(body)
                var received: [UInt8] = []
                while let byte = try? socket.read(count: 1), !byte.isEmpty { received += byte }
                return received
            }
            #expect(!String(decoding: answer, as: UTF8.self).contains("200"), "never served")
            #expect(try await eventually { server.transport.budget.bodyTooLargeCount == 1 })
            // A request within the bound is served as before.
            let healthy = try RawSocket(port: port)
            let head = try await offPool { try healthy.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }
            #expect(head.hasPrefix("HTTP/1.1 200"))
        }
    }
}
