import Foundation

/// A start-up failure written as a log line, for `LOG_FORMAT=json` (before logging is set up).
enum StartupFailure {
    /// Whether the command line or the environment asks for JSON logs (read by hand: the
    /// arguments may be what failed to parse).
    static func wantsJSON(arguments: [String], environment: [String: String]) -> Bool {
        var format = environment["LOG_FORMAT"]
        for (index, argument) in arguments.enumerated() {
            if argument == "--log-format", index + 1 < arguments.count {
                format = arguments[index + 1]
            } else if argument.hasPrefix("--log-format=") {
                format = String(argument.dropFirst("--log-format=".count))
            }
        }
        return format?.trimmingCharacters(in: .whitespaces).lowercased() == "json"
    }

    /// `{"level":"critical","message":"Start-up failed","error":…}`, with the shape of ``JSONLogHandler``'s lines.
    static func jsonLine(message: String) -> String {
        let object: [String: Any] = [
            "ts": Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)),
            "level": "critical",
            "label": "owp-server",
            "message": "Start-up failed",
            "error": message,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A reason the server cannot start, said in one line (never a secret).
struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
