import WatchPartyCore

/// A simulated member: its clock, its link, the OpenWatchParty client's clock sync, and where
/// its player is.
struct VirtualClient {
    let id: ClientID
    let isHost: Bool
    /// Its clock minus the server's, in ms (unknown to it; it estimates it).
    let trueOffsetMs: Double
    /// Base one-way delays, in ms.
    let upMs: Double
    let downMs: Double

    /// Clock sync as the OpenWatchParty client does it: the offset of the lowest-RTT sample of
    /// the last 8 pings, smoothed.
    private(set) var samples: [(rtt: Double, offset: Double)] = []
    private(set) var estimatedOffsetMs: Double?
    static let smoothing = 0.5

    /// Where the player is: it started (or jumped) at `since` (true ms) at `position`, playing.
    var anchor: (since: Double, position: Double)?

    func local(_ trueMs: Double) -> Double { trueMs + trueOffsetMs }

    /// Server time as the client believes it, at true time `trueMs`.
    func estimatedServer(_ trueMs: Double) -> Double { local(trueMs) - (estimatedOffsetMs ?? 0) }

    /// The true time at which the client's clock reads the server time `serverMs` (by its estimate).
    func trueTime(ofServer serverMs: Double) -> Double { serverMs + (estimatedOffsetMs ?? 0) - trueOffsetMs }

    /// A pong came back: `sentLocal` is its `client_ts`, `serverMs` the pong's `server_ts`.
    mutating func recordPong(sentLocal: Double, serverMs: Double, receivedLocal: Double) {
        let rtt = receivedLocal - sentLocal
        // Offset = client − server, with the server's stamp taken as the round trip's midpoint.
        let offset = (sentLocal + receivedLocal) / 2 - serverMs
        samples.append((rtt, offset))
        if samples.count > 8 { samples.removeFirst() }
        let best = samples.min { $0.rtt < $1.rtt }!.offset
        estimatedOffsetMs = estimatedOffsetMs.map { $0 + (best - $0) * Self.smoothing } ?? best
    }

    func position(atTrue trueMs: Double) -> Double? {
        anchor.map { $0.position + (trueMs - $0.since) / 1000 }
    }
}
