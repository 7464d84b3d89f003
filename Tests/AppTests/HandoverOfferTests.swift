import Testing

@testable import App

/// Which replica is offered which room at a drain (``SessionGateway/successors(of:among:)``).
struct HandoverOfferTests {
    @Test func everyRoomGoesToExactlyOnePeerInEqualShares() {
        let rooms = (1...7).map { "room-\($0)" }
        let shares = SessionGateway.successors(of: rooms.shuffled(), among: ["pod-c", "pod-a", "pod-b", "pod-a"])
        #expect(Set(shares.keys) == ["pod-a", "pod-b", "pod-c"], "each live peer once, however often it was listed")
        #expect(shares.values.flatMap { $0 }.sorted() == rooms.sorted(), "every room offered, to one peer only")
        let sizes = shares.values.map(\.count)
        #expect(sizes.max()! - sizes.min()! <= 1, "\(sizes)")
        #expect(shares == SessionGateway.successors(of: rooms, among: ["pod-b", "pod-c", "pod-a"]), "the same deal whatever order the lists come in")
    }

    @Test func withoutAPeerNothingIsOffered() {
        #expect(SessionGateway.successors(of: ["room-1"], among: []).isEmpty)
        #expect(SessionGateway.successors(of: [], among: ["pod-a"]).isEmpty)
    }
}
