import Foundation
import WatchPartyCore

/// Where the server reads "now" (Unix epoch milliseconds). Injected so tests can control time.
protocol ServerClock: Sendable {
    func now() -> ServerTime
}

/// The wall clock: server time is epoch milliseconds, as clients compare it with their own.
struct WallClock: ServerClock {
    func now() -> ServerTime {
        ServerTime(max(0, Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
