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

    /// Chat text: control characters other than newline removed.
    public static func chat(_ raw: String) -> String {
        String(String.UnicodeScalarView(raw.unicodeScalars.filter { $0 == "\n" || !isControl($0) }))
    }

    /// Log text from clients: control characters removed, cut to `limit` characters.
    public static func logLine(_ raw: String, limit: Int = 1000) -> String {
        String(String(String.UnicodeScalarView(raw.unicodeScalars.filter { !isControl($0) })).prefix(limit))
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control
    }
}

extension String {
    /// The string without leading and trailing whitespace or newlines (no Foundation needed).
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
