import Logging

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    /// Human-readable lines (development).
    case text
    /// One JSON object per line (production log pipelines).
    case json
}

/// Bootstraps swift-log once per process: stdout, the chosen format and level.
public enum LogSetup {
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .text: handler = StreamLogHandler.standardOutput(label: label)
            case .json: handler = JSONLogHandler(label: label)
            }
            handler.logLevel = level
            return handler
        }
    }
}
