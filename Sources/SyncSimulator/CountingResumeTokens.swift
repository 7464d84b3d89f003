import WatchPartyCore

/// Resume tokens "token-1", "token-2", … with a reversible digest: deterministic, for the
/// simulator and tests, where runs must be reproducible from their inputs. Never for a
/// server (they are guessable); the server's are ``ResumeTokenMinter``s drawing from a CSPRNG.
public struct CountingResumeTokens: ResumeTokenMinter {
    private var counter = 0

    public init() {}

    public mutating func mint() -> MintedResumeToken {
        counter += 1
        let token = "token-\(counter)"
        return MintedResumeToken(token: token, digest: digest(of: token))
    }

    public func digest(of token: String) -> ResumeDigest {
        ResumeDigest(bytes: Array("digest:\(token)".utf8))
    }
}
