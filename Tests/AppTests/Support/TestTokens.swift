import Crypto
import Foundation

/// Hand-made JWTs for the auth tests, so every field and the algorithm can be anything.
enum TestTokens {
    static let secret = "0123456789abcdef0123456789abcdef-test-secret"

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func json(_ object: [String: Any]) -> String {
        base64URL(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    /// Standard valid claims at `now` (seconds), overridable field by field (`NSNull()` removes).
    static func claims(now: TimeInterval = Date().timeIntervalSince1970, _ overrides: [String: Any] = [:]) -> [String: Any] {
        var claims: [String: Any] = [
            "sub": "user-42", "name": "Alice", "aud": "OpenWatchParty", "iss": "Jellyfin",
            "iat": Int(now), "exp": Int(now) + 3600,
        ]
        for (key, value) in overrides {
            if value is NSNull { claims[key] = nil } else { claims[key] = value }
        }
        return claims
    }

    /// Signs with HMAC-SHA256/384/512 as `alg` says (the header says what it says; any other
    /// `alg`, RS256 included, is signed with HMAC-SHA256 and the secret, as a forger would).
    /// `header` adds to or overrides the header's fields (`NSNull()` removes).
    static func token(alg: String = "HS256", header: [String: Any] = [:], claims: [String: Any] = claims(), secret: String = secret) -> String {
        var fields: [String: Any] = ["alg": alg, "typ": "JWT"]
        for (key, value) in header {
            if value is NSNull { fields[key] = nil } else { fields[key] = value }
        }
        let signingInput = json(fields) + "." + json(claims)
        let key = SymmetricKey(data: Data(secret.utf8))
        let signature: Data
        switch alg {
        case "HS384": signature = Data(HMAC<SHA384>.authenticationCode(for: Data(signingInput.utf8), using: key))
        case "HS512": signature = Data(HMAC<SHA512>.authenticationCode(for: Data(signingInput.utf8), using: key))
        case "none": return signingInput + "."
        default: signature = Data(HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key))
        }
        return signingInput + "." + base64URL(signature)
    }
}
