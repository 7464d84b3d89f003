/// Cleans client-supplied text (PROTOCOL.md §10).
public enum Sanitizer {
    /// Names (user, room): trimmed, control characters removed, cut to 100 characters.
    /// Returns `nil` when nothing is left ("not given").
    public static func name(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let cleaned = String(String.UnicodeScalarView(raw.unicodeScalars.filter { !isControl($0) }))
            .trimmingWhitespace()
        guard !cleaned.isEmpty else { return nil }
        return String(cleaned.prefix(100)).trimmingWhitespace()
    }

    /// Chat text: control characters other than newline removed (most text has none and is
    /// returned as it is).
    public static func chat(_ raw: String) -> String {
        guard raw.unicodeScalars.contains(where: { $0 != "\n" && isControl($0) }) else { return raw }
        return String(String.UnicodeScalarView(raw.unicodeScalars.filter { $0 == "\n" || !isControl($0) }))
    }

    /// Log text from clients: control characters removed, cut to `limit` characters.
    public static func logLine(_ raw: String, limit: Int = 1000) -> String {
        String(String(String.UnicodeScalarView(raw.unicodeScalars.filter { !isControl($0) })).prefix(limit))
    }

    /// General category Cc, which Unicode fixes for good as U+0000–U+001F and U+007F–U+009F
    /// (no table look-up per character).
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}

extension String {
    /// Whether nothing but whitespace or newlines is left (stops at the first other character).
    var isBlank: Bool {
        unicodeScalars.allSatisfy { $0.properties.isWhitespace }
    }

    /// The string without leading and trailing whitespace or newlines (no Foundation needed).
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
