import Foundation
import Testing
import WatchPartyCore
@testable import App

/// The accepted side of PROTOCOL.md §4 against the real verifier (jwt-kit underneath); the
/// refused tokens are ``TokenMatrixTests``.
@Suite struct JWTVerifierTests {
    let verifier = JWTVerifier(settings: JWTSettings(secret: Secret(TestTokens.secret)))
    let nowSeconds = Date().timeIntervalSince1970
    var now: ServerTime { ServerTime(nowSeconds * 1000) }

    func verdict(_ token: String) async -> TokenVerdict {
        await verifier.verify(token: token, now: now)
    }

    @Test func validTokenGivesTheIdentityAndExpiryPlusLeeway() async {
        let claims = TestTokens.claims(now: nowSeconds)
        let result = await verdict(TestTokens.token(claims: claims))
        let exp = ServerTime(claims["exp"] as! Int) * 1000
        #expect(result == .valid(userID: "user-42", name: "Alice", expiresAt: exp + 60_000))
    }

    @Test func audienceAndIssuerMayBeArraysContainingTheValue() async {
        let claims = TestTokens.claims(now: nowSeconds, ["aud": ["other", "OpenWatchParty"], "iss": ["x", "Jellyfin"]])
        guard case .valid = await verdict(TestTokens.token(claims: claims)) else {
            Issue.record("array aud/iss refused")
            return
        }
    }

    @Test func expiryIsCheckedWithLeeway() async {
        let justExpired = TestTokens.claims(now: nowSeconds, ["exp": Int(nowSeconds) - 30])
        guard case .valid = await verdict(TestTokens.token(claims: justExpired)) else {
            Issue.record("a token 30 s past exp is within the 60 s leeway")
            return
        }
        let pastLeeway = TestTokens.claims(now: nowSeconds, ["exp": Int(nowSeconds) - 61])
        #expect(await verdict(TestTokens.token(claims: pastLeeway)) == .invalid)
    }

    @Test(arguments: ["", "garbage", "a.b.c", "....", String(repeating: "x", count: 5000)])
    func malformedTokensAreRefused(token: String) async {
        #expect(await verdict(token) == .invalid)
    }
}
