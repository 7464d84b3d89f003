import NIOCore
import NIOPosix

/// How long an event loop has recently been unable to run: the bound on how long bytes that
/// its connections read now may have waited unread in the kernel's receive buffers.
///
/// A loop runs a tick every ``period``; a tick that runs late says the loop was busy (or its
/// thread descheduled) for that long, and a tick overdue right now says it still is: the
/// reads of the iteration that follows a stall run before the tick does. The bound is the
/// largest lateness of the last second or the current overdue, whichever is larger, plus one
/// period (a read in an iteration can pick up what arrived since the previous iteration's read
/// of that socket). A loop that keeps up gives about one period.
///
/// Thread confinement: one per event loop (``on(_:)``), used only on that loop's thread
/// (hence the unchecked `Sendable`, which only lets the per-thread variable be a static).
final class LoopLateness: @unchecked Sendable {
    static let period = TimeAmount.milliseconds(50)
    private static let perThread = PerThread { LoopLateness() }

    private var window = LatenessWindow()
    private var nextDue: NIODeadline?

    /// The calling loop's lateness, its ticks started on first use. Call on `loop`. Nil for a
    /// loop that is not one of NIO's threads (an `EmbeddedEventLoop` under test, whose thread
    /// is shared with other loops and whose clock is virtual).
    static func on(_ loop: any EventLoop) -> LoopLateness? {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop, current === loop else { return nil }
        let lateness = perThread.current
        if lateness.nextDue == nil { lateness.schedule(on: loop, due: .now() + period) }
        return lateness
    }

    /// The longest bytes read now may have waited unread.
    func mayHaveWaited(now: NIODeadline = .now()) -> TimeAmount {
        window.bound(now: now, nextDue: nextDue, period: Self.period)
    }

    private func schedule(on loop: any EventLoop, due: NIODeadline) {
        nextDue = due
        loop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            let now = NIODeadline.now()
            window.record(lateness: now - due, at: now)
            schedule(on: loop, due: now + Self.period)
        }
    }
}

/// The largest lateness recorded over about the last second: two half-second buckets, the
/// current one and the one before. Pure, so that its rule is tested with explicit times.
struct LatenessWindow {
    private static let bucket = TimeAmount.milliseconds(500)
    private var bucketStart: NIODeadline = .uptimeNanoseconds(0)
    private var current: TimeAmount = .zero
    private var previous: TimeAmount = .zero

    mutating func record(lateness: TimeAmount, at now: NIODeadline) {
        if now - bucketStart >= Self.bucket {
            // The bucket that just ended is the previous one only if it ended less than a bucket ago.
            previous = now - bucketStart < Self.bucket + Self.bucket ? current : .zero
            current = .zero
            bucketStart = now
        }
        current = max(current, lateness)
    }

    /// The largest recent lateness (none older than a second), or how far past `nextDue` the
    /// loop is now if that is more, plus `period`.
    func bound(now: NIODeadline, nextDue: NIODeadline?, period: TimeAmount) -> TimeAmount {
        let recent = now - bucketStart < Self.bucket + Self.bucket ? max(current, previous) : .zero
        let overdue = nextDue.map { now > $0 ? now - $0 : .zero } ?? .zero
        return max(recent, overdue) + period
    }
}
