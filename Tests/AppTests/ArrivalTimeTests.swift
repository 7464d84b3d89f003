import Testing
import Transport

@testable import App

/// The gateway hands the core the server time a message was read at (PROTOCOL.md §9's rate
/// window counts arrivals, docs/protocol.md choice 20): `now` less the time it waited.
@Suite struct ArrivalTimeTests {
    @Test func aMessageReadEarlierArrivedThatMuchBeforeNow() {
        let readAt = TransportClock.uptimeNanoseconds() - 2_500_000_000
        let arrived = SessionGateway.arrival(of: readAt, now: 10_000)
        #expect(arrived >= 7_400 && arrived <= 7_500, "\(arrived)")
    }

    @Test func aMessageJustReadArrivesNowAndNoArrivalIsBeforeTheClocksStart() {
        #expect(SessionGateway.arrival(of: TransportClock.uptimeNanoseconds(), now: 10_000) >= 9_990)
        let longAgo = TransportClock.uptimeNanoseconds() - 5_000_000_000
        #expect(SessionGateway.arrival(of: longAgo, now: 1_000) == 0)
    }
}
