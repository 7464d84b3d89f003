import Testing
import Transport

@testable import App

/// The gateway hands the core the server time a message was read at (PROTOCOL.md §9's rate
/// window counts arrivals, docs/protocol.md choice 20): `now` less the time it waited.
@Suite struct ArrivalTimeTests {
    @Test func aMessageReadEarlierArrivedThatMuchBeforeNow() {
        let readAt = ReadStamp(uptimeNanoseconds: TransportClock.uptimeNanoseconds() - 2_500_000_000)
        let arrived = SessionGateway.arrival(of: readAt, now: 10_000)
        #expect(arrived.readAt >= 7_400 && arrived.readAt <= 7_500, "\(arrived)")
        #expect(arrived.mayHaveWaited == 0)
    }

    @Test func aMessageJustReadArrivesNowAndNoArrivalIsBeforeTheClocksStart() {
        #expect(SessionGateway.arrival(of: .now(), now: 10_000).readAt >= 9_990)
        let longAgo = ReadStamp(uptimeNanoseconds: TransportClock.uptimeNanoseconds() - 5_000_000_000)
        #expect(SessionGateway.arrival(of: longAgo, now: 1_000).readAt == 0)
    }

    /// The transport's bound on the time a message waited unread reaches the core in whole
    /// milliseconds, rounded up: a wait is never shortened (a client is given the whole doubt).
    @Test func theWaitBeforeTheReadIsHandedOnRoundedUp() {
        let now = TransportClock.uptimeNanoseconds()
        #expect(SessionGateway.arrival(of: ReadStamp(uptimeNanoseconds: now, mayHaveWaitedNanoseconds: 1), now: 10_000).mayHaveWaited == 1)
        #expect(SessionGateway.arrival(of: ReadStamp(uptimeNanoseconds: now, mayHaveWaitedNanoseconds: 1_550_000_000), now: 10_000).mayHaveWaited == 1_550)
        #expect(SessionGateway.arrival(of: ReadStamp(uptimeNanoseconds: now, mayHaveWaitedNanoseconds: 1_550_000_001), now: 10_000).mayHaveWaited == 1_551)
    }
}
