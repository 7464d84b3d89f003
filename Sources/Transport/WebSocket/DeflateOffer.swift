/// permessage-deflate negotiation (RFC 7692 §5, §7.1), server side.
///
/// The server always answers with `server_no_context_takeover; client_no_context_takeover`
/// (§7.1.1 lets it add both to any offer it accepts): every message is compressed and
/// decompressed on its own, so a connection needs no zlib state of its own and one
/// compressor per thread serves every connection (``DeflateCodec``).
///
/// Guarantees: every offer in every `Sec-WebSocket-Extensions` line is read, in order; the
/// first valid one is accepted; an offer with an unknown or repeated parameter, or a bad
/// value, is declined (never a 400: declining an extension is how a server refuses it, §5);
/// `server_max_window_bits=8` is declined (zlib cannot produce an 8-bit window).
public struct DeflateParameters: Sendable, Equatable {
    /// The LZ77 window the server compresses with (9...15): what the client allowed.
    public var serverMaxWindowBits: Int
    /// Whether the client named `server_max_window_bits` (the answer then repeats it).
    var serverWindowNamed: Bool

    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    public var responseHeader: String {
        var header = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        if serverWindowNamed { header += "; server_max_window_bits=\(serverMaxWindowBits)" }
        return header
    }

    /// The parameters of the first acceptable permessage-deflate offer, or `nil` (no compression).
    public static func negotiate(offers headerValues: [String]) -> DeflateParameters? {
        for offer in ExtensionOffer.parse(headerValues) where offer.name == "permessage-deflate" {
            if let accepted = accept(offer) { return accepted }
        }
        return nil
    }

    static func accept(_ offer: ExtensionOffer) -> DeflateParameters? {
        var seen = Set<String>()
        var window = 15
        var named = false
        for (name, value) in offer.parameters {
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return nil }
            case "server_max_window_bits":
                guard let value, let bits = windowBits(value), bits >= 9 else { return nil }
                window = bits
                named = true
            case "client_max_window_bits":
                // Optional value; whatever window the client picks, a 15-bit inflater reads it.
                if let value, windowBits(value) == nil { return nil }
            default:
                return nil
            }
        }
        return DeflateParameters(serverMaxWindowBits: window, serverWindowNamed: named)
    }

    /// 8...15 written as a plain decimal (no sign, no leading zero).
    static func windowBits(_ value: String) -> Int? {
        guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), value.first != "0", let bits = Int(value), (8...15).contains(bits)
        else { return nil }
        return bits
    }
}

/// One extension offer of a `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): a name and its
/// parameters, values unquoted. Offers that do not parse are dropped, not guessed at.
struct ExtensionOffer: Sendable, Equatable {
    var name: String
    var parameters: [(String, String?)]

    static func == (lhs: ExtensionOffer, rhs: ExtensionOffer) -> Bool {
        lhs.name == rhs.name && lhs.parameters.map(\.0) == rhs.parameters.map(\.0) && lhs.parameters.map(\.1) == rhs.parameters.map(\.1)
    }

    /// Every offer of every header line, in order.
    static func parse(_ headerValues: [String]) -> [ExtensionOffer] {
        headerValues.flatMap { line in split(line, on: ",").compactMap(offer) }
    }

    private static func offer(_ text: Substring) -> ExtensionOffer? {
        let parts = split(text, on: ";").map { $0.trimmingWhitespace() }
        guard let name = parts.first, isToken(name) else { return nil }
        var parameters: [(String, String?)] = []
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = pair[0].trimmingWhitespace()
            guard isToken(key) else { return nil }
            guard pair.count == 2 else {
                parameters.append((key.lowercased(), nil))
                continue
            }
            var value = pair[1].trimmingWhitespace()
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else { return nil }
                value = String(value.dropFirst().dropLast())
            }
            guard isToken(value) else { return nil }
            parameters.append((key.lowercased(), value))
        }
        return ExtensionOffer(name: name.lowercased(), parameters: parameters)
    }

    /// Splits on `separator` outside quoted strings.
    private static func split(_ text: some StringProtocol, on separator: Character) -> [Substring] {
        var pieces: [Substring] = []
        let string = Substring(text)
        var start = string.startIndex
        var quoted = false
        var index = string.startIndex
        while index < string.endIndex {
            let character = string[index]
            if character == "\"" { quoted.toggle() }
            if character == separator && !quoted {
                pieces.append(string[start..<index])
                start = string.index(after: index)
            }
            index = string.index(after: index)
        }
        pieces.append(string[start..<string.endIndex])
        return pieces.filter { !$0.trimmingWhitespace().isEmpty }
    }

    /// RFC 7230 token characters.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            (0x21...0x7E).contains(byte) && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }
}
