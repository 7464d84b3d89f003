/// The stored form of a resume token (PROTOCOL.md §13): a digest, never the token itself.
///
/// The core keeps only digests, so a dump of the state (a log, a database row) never holds a
/// token that resumes anyone. Two digests are compared in constant time (``matches(_:)``).
public struct ResumeDigest: Sendable, Hashable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Equality that looks at every byte whatever the first difference (no early exit).
    public func matches(_ other: ResumeDigest) -> Bool {
        guard bytes.count == other.bytes.count else { return false }
        var difference: UInt8 = 0
        for index in bytes.indices {
            difference |= bytes[index] ^ other.bytes[index]
        }
        return difference == 0
    }
}

/// A resume token that a resume replaced, still good for a while: the new token went out in a
/// `client_hello` that may never have reached the client (its connection closed just then —
/// the carrying replica stopped, a link between replicas dropped).
///
/// Guarantees: it resumes its seat only before ``until`` and only until the token that
/// replaced it is presented (a resume with the current token retires it for good). A resume
/// with it leaves it as it is, ``until`` included: the token it replaced in turn, never seen by
/// the client, is dropped.
public struct RetiringToken: Sendable, Equatable {
    public let digest: ResumeDigest
    public let until: ServerTime

    public init(digest: ResumeDigest, until: ServerTime) {
        self.digest = digest
        self.until = until
    }

    /// Whether `digest` is this token's and it is still good at `now`.
    func resumes(_ digest: ResumeDigest, at now: ServerTime) -> Bool {
        now < until && self.digest.matches(digest)
    }
}

/// A freshly minted resume token: what the client is sent, and what the server keeps.
public struct MintedResumeToken: Sendable {
    public let token: String
    public let digest: ResumeDigest

    public init(token: String, digest: ResumeDigest) {
        self.token = token
        self.digest = digest
    }
}

/// Makes resume tokens and digests them. Injected, like ``RoomIDSource``: the server's
/// implementation draws at least 128 bits from a CSPRNG and digests with SHA-256; tests and
/// the simulator use deterministic ones.
public protocol ResumeTokenMinter: Sendable {
    /// A new token, unique to the session it is given to.
    mutating func mint() -> MintedResumeToken
    /// The digest of a token a client presented (the same function ``mint()`` used).
    func digest(of token: String) -> ResumeDigest
}
