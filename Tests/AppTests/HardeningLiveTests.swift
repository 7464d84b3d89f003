import Foundation
import NIOWebSocket
import Testing
import Transport
@testable import App

/// JWT mode, admission limits, the rate limit and liveness, over real sockets.
@Suite struct AuthFlowTests {
    /// Short, but longer than a connection waits for its token check when the whole suite runs
    /// on two busy cores (1.5 s was not).
    static let authTimeoutMs = 4_000

    static func jwtMode(_ settings: inout ServerSettings) {
        settings.jwt = JWTSettings(secret: Secret(TestTokens.secret))
        settings.rules.authTimeoutMs = UInt64(authTimeoutMs)
    }

    @Test func validAuthGetsSuccessThenTheLobbyAndHealthSaysAuthEnabled() async throws {
        try await withLiveServer(Self.jwtMode) { port, _, http in
            let client = try await LiveClient(port: port)
            #expect(try await client.next()["type"] as? String == "client_hello")
            try await client.send(["type": "list_rooms"])
            let refused = try await client.next()
            #expect((refused["payload"] as? [String: Any])?["code"] as? String == "AUTHENTICATION_REQUIRED")
            try await client.send([
                "type": "auth", "payload": ["token": TestTokens.token(), "protocol_version": 1, "features": ["host_transfer", "telepathy"]],
            ])
            let success = try await client.next()
            #expect(success["type"] as? String == "auth_success")
            let payload = try #require(success["payload"] as? [String: Any])
            #expect(payload["user_name"] as? String == "Alice")
            #expect(payload["protocol_version"] as? Int == 1)
            #expect(payload["features"] as? [String] == ["host_transfer"])
            #expect(try await client.next()["type"] as? String == "room_list")
            try await Task.sleep(for: .milliseconds(Self.authTimeoutMs + 300))
            try await client.send(["type": "ping"])
            #expect(try await client.next()["type"] as? String == "pong", "authenticated in time: no auth timeout")
            try await client.close()

            try await http.execute(uri: "/healthz", method: .get) { response in
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(body?["auth_enabled"] as? Bool == true)
            }
        }
    }

    @Test func badTokenMayBeRetriedButTheTimeoutCloses4004() async throws {
        try await withLiveServer(Self.jwtMode) { port, server, _ in
            let client = try await LiveClient(port: port)
            _ = try await client.next("client_hello")
            try await client.send(["type": "auth", "payload": ["token": TestTokens.token(alg: "none")]])
            let failed = try await client.next("error")
            #expect((failed["payload"] as? [String: Any])?["code"] as? String == "AUTHENTICATION_FAILED")
            let timeout = try await client.next("error", timeout: .milliseconds(Self.authTimeoutMs + 2_000))
            #expect((timeout["payload"] as? [String: Any])?["code"] as? String == "AUTHENTICATION_TIMEOUT")
            let frame = try await client.closeFrame()
            #expect(frame?.closeCode == .unknown(4004))
            #expect(frame?.reason == "Authentication timeout")
            #expect(try await eventually { server.gateway.connectionCount == 0 })
        }
    }

    @Test func unsupportedProtocolVersionCloses4006() async throws {
        try await withLiveServer(Self.jwtMode) { port, _, _ in
            let client = try await LiveClient(port: port)
            _ = try await client.next("client_hello")
            try await client.send(["type": "auth", "payload": ["token": TestTokens.token(), "protocol_version": 2]])
            let error = try await client.next("error")
            #expect((error["payload"] as? [String: Any])?["code"] as? String == "PROTOCOL_VERSION_UNSUPPORTED")
            #expect(try await client.closeFrame()?.closeCode == .unknown(4006))
        }
    }

    @Test func anExpiringTokenEndsTheSessionAndARefreshExtendsIt() async throws {
        try await withLiveServer({ settings in
            Self.jwtMode(&settings)
            settings.jwt?.leewaySeconds = 0
        }) { port, _, _ in
            let client = try await LiveClient(port: port)
            _ = try await client.next("client_hello")
            // Seconds of margin on each side: on two starved cores the refresh has been handled
            // more than two seconds after the first token was issued.
            let now = Date().timeIntervalSince1970
            let firstExpiry = Int(now) + 5
            let refreshedExpiry = firstExpiry + 4
            try await client.send(["type": "auth", "payload": ["token": TestTokens.token(claims: TestTokens.claims(now: now, ["exp": firstExpiry]))]])
            _ = try await client.next("auth_success")
            try await client.send(["type": "auth", "payload": ["token": TestTokens.token(claims: TestTokens.claims(now: now, ["exp": refreshedExpiry]))]])
            _ = try await client.next("auth_success")
            let pastFirstExpiry = Double(firstExpiry) + 0.6 - Date().timeIntervalSince1970
            try await Task.sleep(for: .milliseconds(Int(pastFirstExpiry * 1_000)))
            try await client.send(["type": "ping"])
            #expect(try await client.next("pong")["type"] as? String == "pong", "the refreshed session outlives the first token")
            let expired = try await client.next("error", timeout: .seconds(8))
            #expect((expired["payload"] as? [String: Any])?["code"] as? String == "AUTHENTICATION_EXPIRED")
            #expect(try await client.closeFrame()?.closeCode == .unknown(4005))
        }
    }
}

@Suite struct AdmissionTests {
    static let upgradeHeaders = ["Sec-WebSocket-Version: 13"]

    func status(port: Int, headers: [String]) async throws -> (RawSocket, String) {
        let socket = try RawSocket(port: port)
        let head = try await offPool { try socket.upgrade(extraHeaders: headers) }
        return (socket, String(head.split(separator: " ").dropFirst().first ?? ""))
    }

    @Test func originIsCheckedWhenPresent() async throws {
        try await withLiveServer({ $0.admission = AdmissionPolicy() }) { port, _, _ in
            let allowed = try await status(port: port, headers: ["Origin: http://localhost:8096"])
            let refused = try await status(port: port, headers: ["Origin: https://evil.example"])
            let absent = try await status(port: port, headers: [])
            #expect(allowed.1 == "101")
            #expect(refused.1 == "403")
            #expect(absent.1 == "101", "no Origin: a non-browser client")
        }
    }

    @Test func totalAndPerAddressLimitsAnswer429() async throws {
        try await withLiveServer({ $0.admission.maxConnections = 2 }) { port, server, _ in
            let first = try await status(port: port, headers: [])
            let second = try await status(port: port, headers: [])
            #expect([first.1, second.1] == ["101", "101"])
            let third = try await status(port: port, headers: [])
            #expect(third.1 == "429")
            // Closing one frees its slot.
            first.0.hangUp()
            #expect(try await eventually { server.transport.openConnections == 1 })
            let fourth = try await status(port: port, headers: [])
            #expect(fourth.1 == "101")
            _ = second.0
        }
    }

    @Test func forwardedForCountsOnlyBehindATrustedProxy() async throws {
        try await withLiveServer({
            $0.admission.maxConnectionsPerIP = 1
            $0.admission.trustedProxies = [CIDR("127.0.0.0/8")!]
        }) { port, _, _ in
            let a = try await status(port: port, headers: ["X-Forwarded-For: 203.0.113.7, 127.0.0.1"])
            let b = try await status(port: port, headers: ["X-Forwarded-For: 203.0.113.7"])
            let c = try await status(port: port, headers: ["X-Forwarded-For: 198.51.100.9"])
            #expect([a.1, b.1, c.1] == ["101", "429", "101"])
        }
        try await withLiveServer({ $0.admission.maxConnectionsPerIP = 1 }) { port, _, _ in
            let a = try await status(port: port, headers: ["X-Forwarded-For: 203.0.113.7"])
            let b = try await status(port: port, headers: ["X-Forwarded-For: 198.51.100.9"])
            #expect([a.1, b.1] == ["101", "429"], "an untrusted peer's X-Forwarded-For is ignored")
        }
    }
}

@Suite struct RateAndLivenessTests {
    @Test func thirtyFirstMessageInASecondIsRateLimitedThenClosed() async throws {
        try await withLiveServer { port, _, _ in
            let client = try await LiveClient(port: port)
            _ = try await client.next("room_list")
            for _ in 0..<31 { try await client.send(["type": "ping"]) }
            for _ in 0..<30 { #expect(try await client.next()["type"] as? String == "pong") }
            let limited = try await client.next()
            #expect((limited["payload"] as? [String: Any])?["code"] as? String == "RATE_LIMITED")
            let frame = try await client.closeFrame()
            #expect(frame?.closeCode == .unknown(4002))
            #expect(frame?.reason == "Rate limit exceeded")
        }
    }

    @Test func silentClientIsClosed4000AndLeavesItsRoom() async throws {
        try await withLiveServer({
            // Short, but not so short that a busy machine (the suite runs in parallel) starves
            // the answering client's pongs.
            $0.transport.pingInterval = .milliseconds(250)
            $0.transport.idleTimeout = .seconds(2)
            $0.rules.resumeGraceMs = 0  // §5: an idle close is a departure at once
        }) { port, server, _ in
            let answering = try await LiveClient(port: port)  // answers pings automatically
            let silent = try RawSocket(port: port)
            _ = try await offPool { try silent.upgrade() }
            try silent.sendText(#"{"type":"create_room","ts":1}"#)
            #expect(try await eventually { server.gateway.roomCount == 1 })
            let frames = try await offPool { try silent.readFramesUntilClosed() }
            #expect(frames.contains { $0.opcode == 0x9 }, "the server pinged")
            let close = try #require(frames.last)
            #expect(close.opcode == 0x8)
            #expect(close.payload.count >= 2 && (Int(close.payload[0]) << 8 | Int(close.payload[1])) == 4000)
            #expect(String(decoding: close.payload.dropFirst(2), as: UTF8.self) == "Connection idle")
            #expect(try await eventually { server.gateway.roomCount == 0 }, "cleaned up like a disconnect")
            try await answering.send(["type": "ping"])
            #expect(try await answering.next("pong")["type"] as? String == "pong", "a client that answers pings stays")
            try await answering.close()
        }
    }
}

@Suite struct TimerLifetimeTests {
    /// In JWT mode every connection arms an auth deadline and, once authenticated, its token's
    /// expiry (an hour away): a connection that goes leaves neither sleeping behind.
    @Test func aClosedConnectionLeavesNoTimerBehind() async throws {
        try await withLiveServer({ $0.jwt = JWTSettings(secret: Secret(TestTokens.secret)) }) { port, server, _ in
            var clients: [LiveClient] = []
            for _ in 0..<5 {
                let client = try await LiveClient(port: port)
                _ = try await client.next("client_hello")
                clients.append(client)
            }
            for client in clients.prefix(3) {
                try await client.send(["type": "auth", "payload": ["token": TestTokens.token()]])
                _ = try await client.next("auth_success")
                // A refresh replaces the expiry timer rather than adding one.
                try await client.send(["type": "auth", "payload": ["token": TestTokens.token()]])
                _ = try await client.next("auth_success")
            }
            // 2 unauthenticated (their auth deadlines) + 3 authenticated (one expiry each; the deadline
            // they met is cancelled, and a refresh replaced the first expiry).
            #expect(try await eventually { server.gateway.pendingTimerCount == 5 }, "armed: \(server.gateway.pendingTimerCount)")
            for client in clients { try await client.close() }
            #expect(try await eventually { server.gateway.connectionCount == 0 })
            #expect(try await eventually { server.gateway.pendingTimerCount == 0 }, "still armed: \(server.gateway.pendingTimerCount)")
        }
    }
}
