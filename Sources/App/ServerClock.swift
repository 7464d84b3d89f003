import Foundation
import WatchPartyCore

/// Where the server reads "now" (Unix epoch milliseconds). Injected so tests can control time.
protocol ServerClock: Sendable {
    func now() -> ServerTime
    /// The same time with sub-millisecond precision, in milliseconds (for timers and lateness).
    func preciseNow() -> Double
}

extension ServerClock {
    func preciseNow() -> Double { Double(now()) }
}

/// The wall clock: server time is epoch milliseconds, as clients compare it with their own.
struct WallClock: ServerClock {
    func now() -> ServerTime {
        ServerTime(preciseNow().rounded(.down))
    }

    func preciseNow() -> Double {
        max(0, Date().timeIntervalSince1970 * 1000)
    }
}
