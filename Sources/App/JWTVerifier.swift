import Foundation
import JWTKit
import WatchPartyCore

/// JWT settings (PROTOCOL.md §4); present only in JWT mode.
struct JWTSettings: Sendable {
    var secret: String
    var audience = "OpenWatchParty"
    var issuer = "Jellyfin"
    var leewaySeconds = 60
    var authTimeoutSeconds = 10

    /// HS256 keys shorter than this are refused at start (and jwt-kit traps on them).
    static let minimumSecretBytes = 32
}

/// Verifies `auth` tokens: HS256 only, `aud`/`iss` as a string or an array containing the
/// configured value, `exp` with leeway, `sub` required. Never logs a token.
struct JWTVerifier: Sendable {
    let settings: JWTSettings
    /// The key collection is an actor that takes its key asynchronously; built once, on first use.
    private let keys: Task<JWTKeyCollection, Never>

    init(settings: JWTSettings) {
        self.settings = settings
        let secret = settings.secret
        keys = Task {
            let keys = JWTKeyCollection()
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            return keys
        }
    }

    func verify(token: String, now: ServerTime) async -> TokenVerdict {
        // Refuse every algorithm but HS256 before the library sees it (alg none, HS384/512, RS*, …).
        guard Self.headerAlgorithm(of: token) == "HS256" else { return .invalid }
        guard let claims = try? await keys.value.verify(token, as: SessionClaims.self) else { return .invalid }
        guard claims.aud.value.contains(settings.audience), claims.iss.values.contains(settings.issuer) else { return .invalid }
        let expiresAt = ServerTime(max(0, claims.exp.value.timeIntervalSince1970) * 1000)
        let leeway = ServerTime(settings.leewaySeconds) * 1000
        guard now <= expiresAt + leeway else { return .invalid }
        return .valid(userID: claims.sub.value, name: claims.name ?? claims.sub.value, expiresAt: expiresAt + leeway)
    }

    /// The `alg` of a compact JWS header, if it parses.
    static func headerAlgorithm(of token: String) -> String? {
        guard let segment = token.split(separator: ".", omittingEmptySubsequences: false).first else { return nil }
        var base64 = segment.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let header = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return header["alg"] as? String
    }
}

/// The claims an OpenWatchParty token carries.
struct SessionClaims: JWTPayload {
    var sub: SubjectClaim
    var name: String?
    var aud: AudienceClaim
    var iss: StringOrArray
    var exp: ExpirationClaim
    var iat: IssuedAtClaim?

    /// Time and audience are checked by ``JWTVerifier`` against the server's own clock.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A claim that may be one string or an array of strings (`iss` here).
struct StringOrArray: Codable, Sendable {
    var values: [String]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let single = try? container.decode(String.self) {
            values = [single]
        } else {
            values = try container.decode([String].self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if values.count == 1 { try container.encode(values[0]) } else { try container.encode(values) }
    }
}
