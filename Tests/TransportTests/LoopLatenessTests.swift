import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Transport

/// The bound on how long bytes read now may have waited unread (``LoopLateness``), which the
/// rate limit gives clients the benefit of (docs/protocol.md choice 22).
@Suite struct LoopLatenessTests {
    private let period = TimeAmount.milliseconds(50)
    private let start = NIODeadline.uptimeNanoseconds(10_000_000_000)

    @Test func aLoopThatKeepsUpBoundsTheWaitByOnePeriod() {
        var window = LatenessWindow()
        window.record(lateness: .microseconds(200), at: start)
        #expect(window.bound(now: start + .milliseconds(10), nextDue: start + period, period: period) == period + .microseconds(200))
    }

    @Test func aLateTickCountsForAboutASecondThenIsForgotten() {
        var window = LatenessWindow()
        window.record(lateness: .milliseconds(800), at: start)
        window.record(lateness: .milliseconds(1), at: start + .milliseconds(600))  // a new bucket: the late one is the previous
        let soon = start + .milliseconds(650)
        #expect(window.bound(now: soon, nextDue: soon + period, period: period) == .milliseconds(850))
        window.record(lateness: .milliseconds(1), at: start + .milliseconds(1_200))
        let later = start + .milliseconds(1_250)
        #expect(window.bound(now: later, nextDue: later + period, period: period) == .milliseconds(51))
        let idle = start + .milliseconds(5_000)  // nothing recorded for seconds: nothing recent
        #expect(window.bound(now: idle, nextDue: idle + period, period: period) == period)
    }

    /// The reads of the iteration after a stall run before the tick that would report it: an
    /// overdue tick is the stall, seen from inside it.
    @Test func anOverdueTickIsTheWaitBeforeItRuns() {
        let window = LatenessWindow()
        let now = start + .milliseconds(1_500)
        #expect(window.bound(now: now, nextDue: start + .milliseconds(100), period: period) == .milliseconds(1_450))
    }

    /// The wiring on a real event loop: blocked for 400 ms, the loop's connections are told
    /// their bytes may have waited that long; not blocked, about one period. (Lower bounds on
    /// real time, and loose upper ones: a slow machine makes the waits longer, never shorter.)
    @Test func aBlockedLoopReportsTheWaitToItsReads() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let started = try await loop.submit { LoopLateness.on(loop) != nil }.get()
        #expect(started)
        try await Task.sleep(for: .milliseconds(200))  // a few ticks on time
        let calm = try await loop.submit { LoopLateness.on(loop)!.mayHaveWaited() }.get()
        // Not stuck high (under a second even on a machine busy with the rest of the suite).
        #expect(calm >= period && calm < .seconds(1), "\(calm)")
        let afterStall = try await loop.submit { () -> TimeAmount in
            Thread.sleep(forTimeInterval: 0.4)  // the loop cannot run for 400 ms
            return LoopLateness.on(loop)!.mayHaveWaited()
        }.get()
        #expect(afterStall >= .milliseconds(350), "\(afterStall)")
        let stillRemembered = try await loop.submit { LoopLateness.on(loop)!.mayHaveWaited() }.get()
        #expect(stillRemembered >= .milliseconds(350), "the late tick is remembered: \(stillRemembered)")
        try await group.shutdownGracefully()
    }

    /// Over a real socket: a message the client sent while the server's loop was blocked is
    /// handed to the session with a read stamp saying it may have waited that long.
    @Test func aMessageSentWhileTheLoopWasBlockedIsStampedWithTheWait() async throws {
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let session = RecordingSession()
        let server = try await ServerBootstrap(group: serverGroup)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let configuration = TransportConfiguration()
                    let handler = WebSocketConnectionHandler(
                        configuration: configuration, deflate: nil, traffic: TrafficCounters(),
                        budget: OutboundBudget(capacity: configuration.outboundQueueCapacity), lateness: LoopLateness.on(channel.eventLoop))
                    try channel.pipeline.syncOperations.addHandler(handler)
                    handler.session = session
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: clientGroup).connect(to: server.localAddress!).get()
        func sendAndWait(_ text: String, count: Int) async throws {
            try await client.writeAndFlush(ClientFrame.text(text)).get()
            for _ in 0..<200 where session.stamps.count < count { try await Task.sleep(for: .milliseconds(10)) }
            #expect(session.stamps.count == count)
        }
        try await sendAndWait("calm", count: 1)
        serverGroup.next().execute { Thread.sleep(forTimeInterval: 0.4) }  // the server's only loop, blocked
        try await Task.sleep(for: .milliseconds(50))
        try await sendAndWait("stalled", count: 2)
        let stamps = session.stamps
        #expect(stamps.first.map { $0.mayHaveWaitedNanoseconds >= 50_000_000 && $0.mayHaveWaitedNanoseconds < 1_000_000_000 } == true, "\(stamps)")
        #expect(stamps.last.map { $0.mayHaveWaitedNanoseconds >= 300_000_000 } == true, "\(stamps)")
        try await client.close()
        try await server.close()
        try await clientGroup.shutdownGracefully()
        try await serverGroup.shutdownGracefully()
    }

    @Test func aLoopThatIsNotNIOsOwnGetsNone() {
        let embedded = EmbeddedEventLoop()
        #expect(LoopLateness.on(embedded) == nil)
    }
}
