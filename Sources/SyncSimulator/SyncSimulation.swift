import WatchPartyCore

/// What one simulated play-then-seek produced.
public struct SyncTrial: Sendable, Equatable {
    /// Spread (max − min) of the members' positions after the play started, in ms: all members, and guests only.
    public var playSpreadMs: Double
    public var playSpreadGuestsMs: Double
    /// The same after the host's seek.
    public var seekSpreadMs: Double
    /// Mean time from the host's click to the guests' playback, in ms.
    public var clickToPlaybackMs: Double
    /// Guest actions (play or seek) whose message arrived after the moment it was scheduled for.
    public var lateActions: Int
    /// The lead the server chose for the play.
    public var playLeadMs: Double
}

/// A deterministic, seeded simulation of a room: virtual clients with their own clock offsets,
/// asymmetric one-way delays and jitter, following PROTOCOL.md §6's rule and the OpenWatchParty
/// client's clock sync, driven against the real room core (``Party``) with a virtual clock.
public struct SyncSimulation {
    public let scenario: SyncScenario
    private var rng: SplitMix64
    private var party: Party
    private var clients: [VirtualClient] = []
    private var queue = EventQueue<Event>()
    private var nowUs: Int64 = 0
    private let epochMs: ServerTime = 1_700_000_000_000
    private var late = 0
    private var playLead: Double = 0
    private var pingSentAt: [ClientID: ServerTime] = [:]

    private enum Event {
        case clientSends(index: Int, ClientMessage)
        case serverReceives(index: Int, ClientMessage)
        case clientReceives(index: Int, ServerMessage)
        case serverTimer(TimerKey)
        case clientPing(index: Int)
        case serverPing(index: Int)
        case serverPong(index: Int, sentAt: ServerTime)
        case apply(index: Int, position: Double)
    }

    public init(scenario: SyncScenario, seed: UInt64, rules: PartyRules = PartyRules()) {
        self.scenario = scenario
        rng = SplitMix64(seed: seed)
        var rules = rules
        rules.playScheduleMode = scenario.mode
        rules.rateLimitPerSecond = 1_000
        party = Party(rules: rules, roomIDs: FixedRoomID(), tokens: CountingResumeTokens())
    }

    // MARK: Clocks and links

    private var nowMs: Double { Double(nowUs) / 1000 }
    private var serverNow: ServerTime { epochMs + ServerTime(nowUs / 1000) }
    private func us(_ ms: Double) -> Int64 { Int64((ms * 1000).rounded()) }
    private mutating func jitter() -> Double { rng.unit() * scenario.jitterMs }
    private mutating func at(_ ms: Double, _ event: Event) { queue.push(event, at: max(nowUs, us(ms))) }

    // MARK: Running

    /// Runs a play then a seek and measures how closely the members moved together.
    public mutating func run() -> SyncTrial {
        setUpRoom()
        let click = scenario.warmUpSeconds * 1000
        for index in clients.indices {
            at(rng.unit() * 1000, .clientPing(index: index))
            at(rng.unit() * 200, .serverPing(index: index))
        }
        // The host clicks play: its player starts at once; the command goes up.
        runUntil(click)
        clients[0].anchor = (click, 100)
        at(click, .clientSends(index: 0, ClientMessage(type: .playerEvent, room: Self.roomID, payload: .object(["action": .string("play"), "position": .double(100)]))))
        runUntil(click + 3_000)
        let playCheck = click + 3_000
        let playPositions = clients.map { $0.position(atTrue: playCheck) }
        let clickToPlayback = clients.dropFirst().compactMap { $0.anchor?.since }.map { $0 - click }

        // The host seeks while playing: it jumps at once; the guests at the scheduled time.
        let seekClick = click + 5_000
        runUntil(seekClick)
        clients[0].anchor = (seekClick, 500)
        at(seekClick, .clientSends(index: 0, ClientMessage(type: .playerEvent, room: Self.roomID, payload: .object([
            "action": .string("seek"), "position": .double(500), "play_state": .string("playing"),
        ]))))
        runUntil(seekClick + 2_000)
        let seekPositions = clients.map { $0.position(atTrue: seekClick + 2_000) }

        return SyncTrial(
            playSpreadMs: Self.spread(playPositions),
            playSpreadGuestsMs: Self.spread(Array(playPositions.dropFirst())),
            seekSpreadMs: Self.spread(seekPositions),
            clickToPlaybackMs: clickToPlayback.isEmpty ? .nan : clickToPlayback.reduce(0, +) / Double(clickToPlayback.count),
            lateActions: late,
            playLeadMs: playLead
        )
    }

    static let roomID = "room"

    private mutating func setUpRoom() {
        for index in 0..<scenario.members {
            let id = "member-\(index)"
            let offset = (rng.unit() * 2 - 1) * scenario.clockOffsetRangeMs
            let rtt = scenario.rttMs
            clients.append(VirtualClient(id: id, isHost: index == 0, trueOffsetMs: offset, upMs: rtt * (1 - scenario.downShare), downMs: rtt * scenario.downShare))
            _ = party.connect(id, now: serverNow)
            if index == 0 {
                _ = party.receive(ClientMessage(type: .createRoom), from: id, now: serverNow)
            } else {
                _ = party.receive(ClientMessage(type: .joinRoom, room: Self.roomID), from: id, now: serverNow)
                _ = party.receive(ClientMessage(type: .ready, room: Self.roomID), from: id, now: serverNow)
            }
        }
    }

    private mutating func runUntil(_ ms: Double) {
        while let next = queue.pop() {
            if next.time > us(ms) {
                queue.push(next.event, at: next.time)
                break
            }
            nowUs = next.time
            handle(next.event)
        }
        nowUs = max(nowUs, us(ms))
    }

    private mutating func handle(_ event: Event) {
        switch event {
        case .clientSends(let index, let message):
            at(nowMs + clients[index].upMs + jitter(), .serverReceives(index: index, message))
        case .serverReceives(let index, let message):
            deliver(party.receive(message, from: clients[index].id, now: serverNow))
        case .serverTimer(let key):
            deliver(party.fire(key, now: serverNow))
        case .clientReceives(let index, let message):
            receive(message, at: index)
        case .clientPing(let index):
            let sent = clients[index].local(nowMs)
            at(nowMs, .clientSends(index: index, ClientMessage(type: .ping, payload: .object(["client_ts": .double(sent)]))))
            at(nowMs + 1_000, .clientPing(index: index))
        case .serverPing(let index):
            // A WebSocket ping down and its pong back up; the server measures the round trip.
            at(nowMs + clients[index].downMs + jitter() + clients[index].upMs + jitter(), .serverPong(index: index, sentAt: serverNow))
            at(nowMs + 2_000, .serverPing(index: index))
        case .serverPong(let index, let sentAt):
            party.recordRoundTrip(clients[index].id, milliseconds: serverNow - sentAt)
        case .apply(let index, let position):
            clients[index].anchor = (nowMs, position)
        }
    }

    private mutating func deliver(_ outcome: Outcome) {
        for timer in outcome.timers {
            queue.push(.serverTimer(timer.key), at: Int64(timer.due - epochMs) * 1000)
        }
        for event in outcome.events {
            if case .playScheduled(let lead) = event { playLead = Double(lead) }
        }
        for delivery in outcome.deliveries {
            for recipient in delivery.recipients {
                guard let index = clients.firstIndex(where: { $0.id == recipient }) else { continue }
                at(nowMs + clients[index].downMs + jitter(), .clientReceives(index: index, delivery.message))
            }
        }
    }

    /// PROTOCOL.md §6: `position` held at `server_ts`; while playing it advances; act at `target_server_ts`.
    private mutating func receive(_ message: ServerMessage, at index: Int) {
        switch message.payload {
        case .pong(let payload):
            guard let sent = payload?["client_ts"]?.number else { return }
            clients[index].recordPong(sentLocal: sent, serverMs: Double(message.serverTs), receivedLocal: clients[index].local(nowMs))
        case .playerEvent(let event) where !clients[index].isHost && (event.action == .play || event.action == .seek):
            let client = clients[index]
            let target = Double(event.targetServerTs)
            let heldAt = Double(message.serverTs)
            let reaction = rng.unit() * scenario.reactionMs
            let due = client.trueTime(ofServer: target)
            if due >= nowMs {
                at(due + reaction, .apply(index: index, position: event.position + (target - heldAt) / 1000))
            } else {
                // Arrived after its moment: start now, projected to (estimated) server now.
                late += 1
                at(nowMs + reaction, .apply(index: index, position: event.position + (client.estimatedServer(nowMs + reaction) - heldAt) / 1000))
            }
        default:
            break
        }
    }

    static func spread(_ positions: [Double?]) -> Double {
        let known = positions.compactMap { $0 }
        guard known.count == positions.count, let high = known.max(), let low = known.min() else { return .infinity }
        return (high - low) * 1000
    }
}

/// Every simulated room is "room".
struct FixedRoomID: RoomIDSource {
    mutating func next() -> RoomID { SyncSimulation.roomID }
}
