import Logging
import Synchronization

/// Keeps every log line of a test server in memory, as `level message key=value…` (keys sorted).
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    /// Lines with `message` whose metadata holds every pair of `fields`.
    func lines(_ message: String, _ fields: [String: String] = [:]) -> [String] {
        all.filter { line in
            line.contains(" \(message)") && fields.allSatisfy { line.contains("\($0.key)=\($0.value)") }
        }
    }

    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "test-server") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }.joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(fields)")
        }
    }
}
