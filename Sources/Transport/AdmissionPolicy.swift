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
