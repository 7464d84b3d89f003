import Foundation
import JWTKit
import WatchPartyCore

/// JWT settings (PROTOCOL.md §4); present only in JWT mode. Safe to log: the secret redacts itself.
struct JWTSettings: Sendable {
    var secret: Secret
    var audience = "OpenWatchParty"
    var issuer = "Jellyfin"
    /// Clock leeway applied alike to `exp`, `nbf` and `iat`.
    var leewaySeconds = 60
    var authTimeoutSeconds = 10

    /// HS256 keys shorter than this are refused at start (and jwt-kit traps on them).
    static let minimumSecretBytes = 32
}

/// Why a token was refused. Logged (never the token itself); the client only ever sees
/// AUTHENTICATION_FAILED, whatever the reason.
enum TokenRejection: String, Sendable, CaseIterable, Error {
    /// Longer than ``JWTVerifier/maximumTokenBytes``: refused before any decoding.
    case tooLong = "too_long"
    /// Not three canonical base64url segments, or a header that is not a strict JSON object.
    case malformed
    /// `alg` is not HS256 (`none`, HS384, HS512, RS256, … are all refused).
    case algorithm
    /// A header that selects a key (`kid`, `jku`, `jwk`, `x5u`, `x5c`, `x5t`) or demands
    /// extensions (`crit`), or a `typ` other than JWT: this server has one key and no extensions.
    case header
    /// The signature does not match the secret.
    case signature
    /// A required claim (`sub`, `aud`, `iss`, `exp`) is missing, or a claim has the wrong type.
    case claims
    case audience
    case issuer
    /// `sub` missing, empty, blank, over ``JWTVerifier/maximumSubjectBytes`` or holding a control
    /// character (a user id is logged and stored: PostgreSQL text cannot hold NUL).
    case subject
    /// `exp` is further in the past than the leeway.
    case expired
    /// `nbf` is further in the future than the leeway (RFC 7519 §4.1.5).
    case notYetValid = "not_yet_valid"
    /// `iat` is further in the future than the leeway: issued by a clock that is wrong, or forged.
    case issuedInFuture = "issued_in_future"
}

/// Verifies `auth` tokens (PROTOCOL.md §4). Guarantees, in this order:
/// - at most ``maximumTokenBytes``, three base64url segments, a header that is strict JSON
///   with `alg` = HS256, `typ` absent or JWT, and no key-selecting or `crit` parameter;
/// - the HS256 signature against the configured secret (jwt-kit);
/// - `aud` and `iss` each a string or an array containing the configured value;
/// - `sub` a non-blank string of at most ``maximumSubjectBytes``;
/// - `exp` required, `nbf` and `iat` optional, all three judged against the server's clock
///   with the same leeway (`exp + leeway ≥ now`, `nbf − leeway ≤ now`, `iat − leeway ≤ now`).
/// Never logs or stores a token.
struct JWTVerifier: Sendable {
    /// Real tokens are a few hundred bytes; anything this long is refused unread.
    static let maximumTokenBytes = 8192
    static let maximumSubjectBytes = 256
    /// Header parameters that pick or carry a key, or demand extensions this server does not know.
    static let refusedHeaderParameters: Set<String> = ["kid", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit"]

    let settings: JWTSettings
    /// The key collection is an actor that takes its key asynchronously; built once, on first use.
    private let keys: Task<JWTKeyCollection, Never>

    init(settings: JWTSettings) {
        self.settings = settings
        let secret = settings.secret
        keys = Task {
            let keys = JWTKeyCollection()
            await keys.add(hmac: HMACKey(from: secret.revealed), digestAlgorithm: .sha256)
            return keys
        }
    }

    func verify(token: String, now: ServerTime) async -> TokenVerdict {
        switch await check(token: token, now: now) {
        case .success(let verdict): verdict
        case .failure: .invalid
        }
    }

    /// The verdict, or why the token was refused.
    func check(token: String, now: ServerTime) async -> Result<TokenVerdict, TokenRejection> {
        guard token.utf8.count <= Self.maximumTokenBytes else { return .failure(.tooLong) }
        if let refusal = Self.checkHeader(of: token) { return .failure(refusal) }
        let keys = await keys.value
        guard (try? await keys.verify(token, as: SignedOnly.self)) != nil else { return .failure(.signature) }
        guard let claims = try? await keys.unverified(token, as: SessionClaims.self) else { return .failure(.claims) }
        guard claims.aud.value.contains(settings.audience) else { return .failure(.audience) }
        guard claims.iss.values.contains(settings.issuer) else { return .failure(.issuer) }
        let subject = claims.sub.value
        guard !subject.allSatisfy(\.isWhitespace), subject.utf8.count <= Self.maximumSubjectBytes,
            !subject.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { return .failure(.subject) }

        let leeway = Double(settings.leewaySeconds) * 1000
        let nowMs = Double(now)
        let expiresAt = Self.milliseconds(claims.exp.value)
        guard nowMs <= expiresAt + leeway else { return .failure(.expired) }
        if let notBefore = claims.nbf.map({ Self.milliseconds($0.value) }), notBefore - leeway > nowMs { return .failure(.notYetValid) }
        if let issuedAt = claims.iat.map({ Self.milliseconds($0.value) }), issuedAt - leeway > nowMs { return .failure(.issuedInFuture) }
        return .success(.valid(userID: subject, name: claims.name ?? subject, expiresAt: ServerTime(expiresAt + leeway)))
    }

    /// Epoch milliseconds of a claim's date, clamped to what a ``ServerTime`` holds exactly
    /// (a signed `exp` of 1e300 must not trap the conversion).
    static func milliseconds(_ date: Date) -> Double {
        let value = date.timeIntervalSince1970 * 1000
        guard value.isFinite else { return value > 0 ? maximumTime : 0 }
        return min(max(0, value), maximumTime)
    }

    /// 2^53 ms: far beyond any real date, and every whole number below it is a Double exactly.
    static let maximumTime: Double = 9_007_199_254_740_992

    /// Everything that can be refused from the form and the header alone; `nil` when it passes.
    /// Each segment must be canonical unpadded base64url (RFC 7515 §2): otherwise one token
    /// has many spellings (the spare bits of the last character), and a changed string
    /// could pass as the same signature.
    static func checkHeader(of token: String) -> TokenRejection? {
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3, isCanonicalBase64URL(segments[0]),
            let header = try? StrictJSONParser(maxDepth: 4).parse(Base64URL.decode(segments[0]) ?? []).object
        else { return .malformed }
        guard header["alg"] == .string("HS256") else { return .algorithm }
        if let type = header["typ"], type.string?.uppercased() != "JWT" { return .header }
        guard refusedHeaderParameters.isDisjoint(with: header.keys) else { return .header }
        // An HS256 token has a payload and a 32-byte MAC, each canonically encoded.
        guard isCanonicalBase64URL(segments[1]), isCanonicalBase64URL(segments[2]) else { return .malformed }
        return nil
    }

    static func isCanonicalBase64URL(_ segment: Substring) -> Bool {
        guard !segment.isEmpty, segment.utf8.allSatisfy(isBase64URLByte), let bytes = Base64URL.decode(segment) else { return false }
        return Base64URL.encode(bytes) == segment
    }

    static func isBase64URLByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }

}

/// The claims an OpenWatchParty token carries.
struct SessionClaims: JWTPayload {
    var sub: SubjectClaim
    var name: String?
    var aud: AudienceClaim
    var iss: StringOrArray
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?

    /// Time, subject and audience are checked by ``JWTVerifier`` against the server's own clock.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Any payload at all: verifying the signature with it tells a bad signature from bad claims.
private struct SignedOnly: JWTPayload {
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
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
