import HTTPTypes

/// Who may open a WebSocket (PROTOCOL.md §1): origins, connection limits, trusted proxies.
public struct AdmissionPolicy: Sendable, Equatable {
    /// Allowed `Origin` values; `["*"]` allows any. A request without `Origin` is always allowed.
    public var allowedOrigins: [String] = ["http://localhost:8096", "https://localhost:8096"]
    /// Open WebSockets in total.
    public var maxConnections: Int = 1024
    /// Open WebSockets per client address.
    public var maxConnectionsPerIP: Int = 64
    /// Peers whose `X-Forwarded-For` is believed.
    public var trustedProxies: [CIDR] = []

    public init() {}

    public var allowsAnyOrigin: Bool { allowedOrigins.contains("*") }

    public func allows(origin: String?) -> Bool {
        guard let origin else { return true }
        return allowsAnyOrigin || allowedOrigins.contains(origin)
    }

    /// Whether `entry` can be an `ALLOWED_ORIGINS` value: `*`, or a serialised origin as a
    /// browser sends it (RFC 6454 §6.2): `http` or `https`, `://`, a host (a name, an IPv4
    /// address or a bracketed IPv6 address), an optional port, and nothing else — no path,
    /// no trailing slash, which a browser's `Origin` never has and so would never match.
    public static func isValidOriginEntry(_ entry: String) -> Bool {
        if entry == "*" { return true }
        let parts = entry.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, ["http", "https"].contains(parts[0]) else { return false }
        var authority = Substring(parts[1])
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return false }
            let address = authority[authority.index(after: authority.startIndex)..<close]
            guard !address.isEmpty, address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
            authority = authority[authority.index(after: close)...]
        } else {
            let host = authority.prefix { $0 != ":" }
            let allowed = host.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }
            guard !host.isEmpty, allowed, !host.hasPrefix("."), !host.hasSuffix(".") else { return false }
            authority = authority.dropFirst(host.count)
        }
        if authority.isEmpty { return true }
        guard authority.first == ":" else { return false }
        let port = authority.dropFirst()
        guard (1...5).contains(port.count), port.allSatisfy(\.isASCII), let number = Int(port), (1...65_535).contains(number) else { return false }
        return true
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    public func clientAddress(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer, isTrusted(peer), !forwardedFor.isEmpty else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for hop in hops.reversed() where !isTrusted(hop) {
            return hop
        }
        return hops.first ?? peer
    }

    func isTrusted(_ address: String) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}

extension Character {
    fileprivate static let whitespaces: Set<Character> = [" ", "\t"]
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        var slice = self
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}

extension HTTPField.Name {
    /// `X-Forwarded-For`, set by reverse proxies.
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
