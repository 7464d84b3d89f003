import Crypto
import Foundation
import WatchPartyCore

/// The server's resume tokens (PROTOCOL.md §13): 192 bits from the system CSPRNG
/// (`SystemRandomNumberGenerator`: `getrandom` on Linux, `arc4random` on Darwin), base64url,
/// and their SHA-256 digest, which is all the server keeps. A token is never logged.
struct SecureResumeTokens: ResumeTokenMinter {
    static let randomBytes = 24

    mutating func mint() -> MintedResumeToken {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<Self.randomBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let token = Base64URL.encode(bytes)
        return MintedResumeToken(token: token, digest: digest(of: token))
    }

    func digest(of token: String) -> ResumeDigest {
        ResumeDigest(bytes: Array(SHA256.hash(data: Data(token.utf8))))
    }
}
