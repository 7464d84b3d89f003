/// A configuration value that must never be shown: the JWT secret today, and every credential
/// the server is given later (admin tokens, database passwords, resume tokens).
///
/// Guarantees: its `description`, `debugDescription`, string interpolation, `print`, `dump`
/// and Mirror reflection all show ``redacted`` and nothing of the value, so a settings type
/// that holds one can be logged whole. The value is read only through ``revealed``, which
/// names the place that needs it.
struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    static let redacted = "<redacted>"

    private let value: String

    init(_ value: String) {
        self.value = value
    }

    /// The value itself: only for the code that uses it (a key, a connection string).
    var revealed: String { value }

    /// The length in UTF-8 bytes (for start-up validation messages, which never show the value).
    var byteCount: Int { value.utf8.count }

    var description: String { Self.redacted }
    var debugDescription: String { Self.redacted }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
