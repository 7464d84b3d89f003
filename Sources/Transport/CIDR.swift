#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefixLength: Int

    /// Parses `address[/prefix]`; `nil` when it is not a valid IPv4/IPv6 network.
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: " ").split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let bytes = CIDR.parseAddress(first) else { return nil }
        let maxLength = bytes.count * 8
        let length: Int
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maxLength).contains(parsed) else { return nil }
            length = parsed
        } else {
            length = maxLength
        }
        self.network = bytes
        self.prefixLength = length
    }

    public var description: String { "\(network)/\(prefixLength)" }

    /// Whether `address` (textual IPv4/IPv6) lies in this network.
    public func contains(_ address: String) -> Bool {
        guard var bytes = CIDR.parseAddress(address) else { return false }
        if bytes.count == 16 && network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            bytes = Array(bytes[12...])  // IPv4-mapped IPv6
        }
        guard bytes.count == network.count else { return false }
        var remaining = prefixLength
        for index in 0..<bytes.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if bytes[index] & mask != network[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// The 4 or 16 bytes of a textual IP address.
    static func parseAddress(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: " []")
        var v4 = in_addr()
        if inet_pton(AF_INET, trimmed, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, trimmed, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        var slice = Substring(self)
        while let first = slice.first, characters.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, characters.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
