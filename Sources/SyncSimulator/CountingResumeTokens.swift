import WatchPartyCore

/// Resume tokens "token-1", "token-2", … with a reversible digest: deterministic, for the
/// simulator and tests, where runs must be reproducible from their inputs. Never for a
/// server (they are guessable); the server's are ``ResumeTokenMinter``s drawing from a CSPRNG.
public struct CountingResumeTokens: ResumeTokenMinter {
    private var counter = 0
    private let prefix: String

    /// `prefix`: what the tokens start with ("token"), so two parties (two replicas in a test)
    /// never mint the same one; the digest is the same function for every prefix.
    public init(prefix: String = "token") {
        self.prefix = prefix
    }

    public mutating func mint() -> MintedResumeToken {
        counter += 1
        let token = "\(prefix)-\(counter)"
        return MintedResumeToken(token: token, digest: digest(of: token))
    }

    public func digest(of token: String) -> ResumeDigest {
        ResumeDigest(bytes: Array("digest:\(token)".utf8))
    }
}
