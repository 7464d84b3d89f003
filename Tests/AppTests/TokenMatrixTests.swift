import Foundation
import Testing
import WatchPartyCore
@testable import App

/// Forged and invalid tokens (security issue 10): each one is refused for its own reason by
/// the verifier, and over a real socket gets AUTHENTICATION_FAILED and no room access.
@Suite struct TokenMatrixTests {
    /// One token case: how it is made and why it must be refused.
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let rejection: TokenRejection
        let make: @Sendable (_ now: TimeInterval) -> String
        var testDescription: String { name }
    }

    static func claims(_ now: TimeInterval, _ overrides: [String: Any] = [:]) -> [String: Any] {
        TestTokens.claims(now: now, overrides)
    }

    /// Swaps one base64url segment of a valid token for another value (signature kept).
    static func replacing(segment index: Int, of token: String, with json: [String: Any]) -> String {
        var parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        parts[index] = TestTokens.json(json)
        return parts.joined(separator: ".")
    }

    static let forged: [Case] = [
        Case(name: "alg none", rejection: .algorithm) { TestTokens.token(alg: "none", claims: claims($0)) },
        Case(name: "alg none, upper case", rejection: .algorithm) { TestTokens.token(alg: "NONE", claims: claims($0)) },
        Case(name: "HS384 with the secret", rejection: .algorithm) { TestTokens.token(alg: "HS384", claims: claims($0)) },
        Case(name: "HS512 with the secret", rejection: .algorithm) { TestTokens.token(alg: "HS512", claims: claims($0)) },
        Case(name: "RS256 header, HMAC with the secret", rejection: .algorithm) { TestTokens.token(alg: "RS256", claims: claims($0)) },
        Case(name: "no alg", rejection: .algorithm) { TestTokens.token(header: ["alg": NSNull()], claims: claims($0)) },
        Case(name: "tampered header (alg swapped after signing)", rejection: .algorithm) {
            replacing(segment: 0, of: TestTokens.token(claims: claims($0)), with: ["alg": "none", "typ": "JWT"])
        },
        Case(name: "tampered header (typ changed after signing)", rejection: .signature) {
            replacing(segment: 0, of: TestTokens.token(claims: claims($0)), with: ["alg": "HS256", "typ": "jwt"])
        },
        Case(name: "tampered payload (sub changed after signing)", rejection: .signature) {
            replacing(segment: 1, of: TestTokens.token(claims: claims($0)), with: claims($0, ["sub": "admin"]))
        },
        Case(name: "tampered signature", rejection: .signature) { now in
            // A character in the middle carries six bits of the MAC (the last one has spare bits).
            var characters = Array(TestTokens.token(claims: claims(now)))
            let index = characters.count - 10
            characters[index] = characters[index] == "A" ? "B" : "A"
            return String(characters)
        },
        Case(name: "signature in a non-canonical spelling (spare bits of the last character set)", rejection: .malformed) { now in
            // 32 bytes are 43 characters; the last carries 4 bits and 2 spare ones. Setting a
            // spare bit decodes to the same MAC: a different string that must not pass as it.
            var token = TestTokens.token(claims: claims(now))
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            let last = alphabet.firstIndex(of: token.removeLast())!
            token.append(alphabet[last ^ 1])
            return token
        },
        Case(name: "padded base64", rejection: .malformed) { TestTokens.token(claims: claims($0)) + "=" },
        Case(name: "signature removed", rejection: .malformed) { now in
            let token = TestTokens.token(claims: claims(now))
            return String(token[...token.lastIndex(of: ".")!])
        },
        Case(name: "signed with another secret", rejection: .signature) {
            TestTokens.token(claims: claims($0), secret: "another-secret-that-is-long-enough-0000")
        },
        Case(name: "expired beyond the leeway", rejection: .expired) { TestTokens.token(claims: claims($0, ["exp": Int($0) - 61])) },
        Case(name: "no exp", rejection: .claims) { TestTokens.token(claims: claims($0, ["exp": NSNull()])) },
        Case(name: "exp not a number", rejection: .claims) { TestTokens.token(claims: claims($0, ["exp": "tomorrow"])) },
        Case(name: "nbf ahead beyond the leeway", rejection: .notYetValid) { TestTokens.token(claims: claims($0, ["nbf": Int($0) + 120])) },
        Case(name: "iat far in the future", rejection: .issuedInFuture) { TestTokens.token(claims: claims($0, ["iat": Int($0) + 86_400 * 365])) },
        Case(name: "wrong aud", rejection: .audience) { TestTokens.token(claims: claims($0, ["aud": "SomethingElse"])) },
        Case(name: "aud array without ours", rejection: .audience) { TestTokens.token(claims: claims($0, ["aud": ["a", "b"]])) },
        Case(name: "missing aud", rejection: .claims) { TestTokens.token(claims: claims($0, ["aud": NSNull()])) },
        Case(name: "wrong iss", rejection: .issuer) { TestTokens.token(claims: claims($0, ["iss": "Emby"])) },
        Case(name: "missing iss", rejection: .claims) { TestTokens.token(claims: claims($0, ["iss": NSNull()])) },
        Case(name: "missing sub", rejection: .claims) { TestTokens.token(claims: claims($0, ["sub": NSNull()])) },
        Case(name: "empty sub", rejection: .subject) { TestTokens.token(claims: claims($0, ["sub": ""])) },
        Case(name: "blank sub", rejection: .subject) { TestTokens.token(claims: claims($0, ["sub": "  \t"])) },
        Case(name: "sub not a string", rejection: .claims) { TestTokens.token(claims: claims($0, ["sub": 42])) },
        Case(name: "sub of 300 bytes", rejection: .subject) { TestTokens.token(claims: claims($0, ["sub": String(repeating: "u", count: 300)])) },
        Case(name: "sub with a NUL", rejection: .subject) { TestTokens.token(claims: claims($0, ["sub": "user\u{0}42"])) },
        Case(name: "a 60 KB token", rejection: .tooLong) { TestTokens.token(claims: claims($0, ["pad": String(repeating: "p", count: 45_000)])) },
        Case(name: "kid header", rejection: .header) { TestTokens.token(header: ["kid": "../../dev/null"], claims: claims($0)) },
        Case(name: "jku header", rejection: .header) { TestTokens.token(header: ["jku": "https://attacker.example/keys.json"], claims: claims($0)) },
        Case(name: "jwk header", rejection: .header) { TestTokens.token(header: ["jwk": ["kty": "oct", "k": "AAAA"]], claims: claims($0)) },
        Case(name: "x5u header", rejection: .header) { TestTokens.token(header: ["x5u": "https://attacker.example/cert.pem"], claims: claims($0)) },
        Case(name: "crit header", rejection: .header) { TestTokens.token(header: ["crit": ["exp"]], claims: claims($0)) },
        Case(name: "typ not JWT", rejection: .header) { TestTokens.token(header: ["typ": "at+jwt"], claims: claims($0)) },
        Case(name: "header not JSON", rejection: .malformed) { now in
            let token = TestTokens.token(claims: claims(now))
            return TestTokens.base64URL(Data("{alg:HS256}".utf8)) + token[token.firstIndex(of: ".")!...]
        },
        Case(name: "header with a trailing comma", rejection: .malformed) { now in
            let token = TestTokens.token(claims: claims(now))
            return TestTokens.base64URL(Data(#"{"alg":"HS256",}"#.utf8)) + token[token.firstIndex(of: ".")!...]
        },
        Case(name: "two segments", rejection: .malformed) { _ in "eyJhbGciOiJIUzI1NiJ9.e30" },
        Case(name: "four segments", rejection: .malformed) { TestTokens.token(claims: claims($0)) + ".extra" },
        Case(name: "garbage", rejection: .malformed) { _ in "garbage" },
    ]

    let nowSeconds = Date().timeIntervalSince1970
    var now: ServerTime { ServerTime(nowSeconds * 1000) }
    let verifier = JWTVerifier(settings: JWTSettings(secret: Secret(TestTokens.secret)))

    @Test("the verifier refuses each forged token for its reason", arguments: forged)
    func verifierRefuses(_ forged: Case) async {
        let result = await verifier.check(token: forged.make(nowSeconds), now: now)
        #expect(result == .failure(forged.rejection))
        #expect(await verifier.verify(token: forged.make(nowSeconds), now: now) == .invalid)
    }

    @Test func validTokensAtTheEdgesOfTheLeewayAreAccepted() async {
        let edges: [[String: Any]] = [
            [:],
            ["nbf": Int(nowSeconds) + 50],  // not before, within the 60 s leeway
            ["iat": Int(nowSeconds) + 50],  // issued by a clock a little ahead
            ["exp": Int(nowSeconds) - 50],  // expired, within the leeway
            ["nbf": Int(nowSeconds) - 10, "iat": Int(nowSeconds) - 10],
            ["aud": ["x", "OpenWatchParty"], "iss": ["y", "Jellyfin"]],
            ["exp": 1e300],  // absurd but signed: clamped, never a trap
        ]
        for overrides in edges {
            let result = await verifier.check(token: TestTokens.token(claims: Self.claims(nowSeconds, overrides)), now: now)
            guard case .success(.valid(let user, _, _)) = result else {
                Issue.record("refused \(overrides): \(result)")
                continue
            }
            #expect(user == "user-42")
        }
    }

    @Test func theLeewayAppliesToNotBeforeAndIssuedAt() async {
        let strict = JWTVerifier(settings: JWTSettings(secret: Secret(TestTokens.secret), leewaySeconds: 0))
        let ahead = Int(nowSeconds) + 5
        #expect(await strict.check(token: TestTokens.token(claims: Self.claims(nowSeconds, ["nbf": ahead])), now: now) == .failure(.notYetValid))
        #expect(await strict.check(token: TestTokens.token(claims: Self.claims(nowSeconds, ["iat": ahead])), now: now) == .failure(.issuedInFuture))
    }

    /// Over a real socket: AUTHENTICATION_FAILED for every forged token, and the connection
    /// stays unauthenticated (room messages are refused), while a valid token opens the lobby.
    @Test func everyForgedTokenGetsAuthenticationFailedAndNoRoomAccess() async throws {
        try await withLiveServer({ settings in
            settings.jwt = JWTSettings(secret: Secret(TestTokens.secret))
            settings.rules.rateLimitPerSecond = 1000
        }) { port, server, _ in
            let host = try await LiveClient(port: port)
            _ = try await host.next("client_hello")
            try await host.send(["type": "auth", "payload": ["token": TestTokens.token()]])
            _ = try await host.next("auth_success")
            try await host.send(["type": "create_room", "payload": ["name": "Film night"]])
            let roomID = try #require(try await host.next("room_state")["room"] as? String)

            let client = try await LiveClient(port: port)
            _ = try await client.next("client_hello")
            let now = Date().timeIntervalSince1970
            for forged in Self.forged {
                try await client.send(["type": "auth", "payload": ["token": forged.make(now)]])
                let reply = try await client.next()
                #expect(reply["type"] as? String == "error", "\(forged.name)")
                #expect((reply["payload"] as? [String: Any])?["code"] as? String == "AUTHENTICATION_FAILED", "\(forged.name)")
                try await client.send(["type": "join_room", "room": roomID])
                let refused = try await client.next()
                #expect((refused["payload"] as? [String: Any])?["code"] as? String == "AUTHENTICATION_REQUIRED", "\(forged.name): no room access")
            }
            #expect(server.gateway.metricsSnapshot().authenticatedConnections == 1, "only the host")
            try await client.close()
            try await host.close()
        }
    }
}
