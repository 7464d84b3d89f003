import Foundation
import Logging
import Synchronization

/// A swift-log handler writing one JSON object per line to stdout:
/// `{"ts":"…","level":"info","label":"…","message":"…", <metadata>…}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    private static let output = Mutex(())

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        guard let data = Self.line(label: label, level: event.level, message: event.message.description, metadata: merged) else { return }
        Self.output.withLock { _ in
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }

    /// One log line's JSON object (without the newline); metadata never overrides the four fixed keys.
    public static func line(label: String, level: Logger.Level, message: String, metadata: Logger.Metadata) -> Data? {
        var object: [String: Any] = [
            "ts": Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)),
            "level": level.rawValue,
            "label": label,
            "message": message,
        ]
        for (key, value) in metadata where object[key] == nil {
            object[key] = plain(value)
        }
        return try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// A metadata value as JSON: numbers and booleans given as `.stringConvertible` stay
    /// numbers and booleans (so a log query can compare them); everything else is a string.
    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): number(convertible) ?? convertible.description
        case .array(let array): array.map(plain)
        case .dictionary(let dictionary): dictionary.mapValues(plain)
        }
    }

    private static func number(_ value: any CustomStringConvertible & Sendable) -> Any? {
        switch value {
        case let bool as Bool: bool
        case let int as Int: int
        case let int as Int64: int
        case let int as UInt16: Int(int)
        case let int as UInt64: int
        case let double as Double where double.isFinite: double
        default: nil
        }
    }
}
