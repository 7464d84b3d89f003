import NIOEmbedded
import Testing
import WatchPartyCore

@testable import App

/// The gateway's timer table: a timer that fires after it was replaced does not take its
/// successor out of the table (which would leave the successor impossible to cancel).
@Suite struct ArmedTimersTests {
    @Test func aReplacedTimerFiringLeavesItsSuccessorArmed() {
        let loop = EmbeddedEventLoop()
        var timers = ArmedTimers()
        let key = TimerKey.sessionExpiry(client: "c", expiresAt: 0)
        let first = timers.arm()
        let none = timers.replace(key, with: .init(id: first, scheduled: loop.scheduleTask(in: .seconds(1)) {}))
        #expect(none == nil)
        let second = timers.arm()
        let replaced = timers.replace(key, with: .init(id: second, scheduled: loop.scheduleTask(in: .seconds(2)) {}))
        #expect(replaced != nil, "the first is handed back to be cancelled")
        let removedFirst = timers.remove(key, ifArmedAs: first)
        #expect(!removedFirst, "the first fired late: nothing of its own is left")
        #expect(timers.count == 1)
        let removedSecond = timers.remove(key, ifArmedAs: second)
        #expect(removedSecond)
        #expect(timers.count == 0)
    }
}
