import Synchronization

/// Log lines whose rate a client or an attacker controls. Each kind has its own budget.
public enum LogKind: String, Sendable, Hashable, CaseIterable {
    /// Upgrades refused with 403/429/503.
    case refusal
    /// Error messages sent to clients.
    case errorReply = "error_reply"
    /// Lines clients send with `client_log`.
    case clientLog = "client_log"
    /// Authentication outcomes (token refused, success).
    case authentication
}

/// Bounds the log lines of each ``LogKind`` to a budget per window, so a flood of refusals,
/// errors or client logs cannot fill the disk or drown the lines that matter.
///
/// Guarantees: at most `lines` lines of a kind are admitted per `window`; the first line
/// admitted after a suppression reports how many were suppressed, so nothing disappears
/// without a trace (and each suppressed line is counted in `owp_log_lines_suppressed_total`).
public final class LogThrottle: Sendable {
    public struct Budget: Sendable {
        public var lines: Int
        public var window: Duration

        public init(lines: Int, per window: Duration) {
            self.lines = lines
            self.window = window
        }
    }

    /// What to do with one line.
    public enum Admission: Sendable, Equatable {
        /// Write it; `suppressedBefore` lines of its kind were dropped since the last one written.
        case write(suppressedBefore: Int)
        case suppress
    }

    private struct Window {
        var start: Duration
        var written = 0
        var suppressed = 0
    }

    /// Defaults sized for incidents, not floods: enough lines to see who and what.
    public static let defaultBudgets: [LogKind: Budget] = [
        .refusal: Budget(lines: 20, per: .seconds(10)),
        .errorReply: Budget(lines: 50, per: .seconds(1)),
        .clientLog: Budget(lines: 100, per: .seconds(1)),
        .authentication: Budget(lines: 50, per: .seconds(1)),
    ]

    private let budgets: [LogKind: Budget]
    private let now: @Sendable () -> Duration
    private let windows = Mutex<[LogKind: Window]>([:])

    public init(budgets: [LogKind: Budget] = LogThrottle.defaultBudgets, now: @escaping @Sendable () -> Duration = LogThrottle.uptime) {
        self.budgets = budgets
        self.now = now
    }

    public func admit(_ kind: LogKind) -> Admission {
        guard let budget = budgets[kind] else { return .write(suppressedBefore: 0) }
        let now = now()
        return windows.withLock { windows in
            var window = windows[kind] ?? Window(start: now)
            if now - window.start >= budget.window {
                window.start = now
                window.written = 0
            }
            let admission: Admission
            if window.written < budget.lines {
                admission = .write(suppressedBefore: window.suppressed)
                window.written += 1
                window.suppressed = 0
            } else {
                admission = .suppress
                window.suppressed += 1
            }
            windows[kind] = window
            return admission
        }
    }

    @Sendable public static func uptime() -> Duration {
        ContinuousClock.now - processStart
    }

    private static let processStart = ContinuousClock.now
}
