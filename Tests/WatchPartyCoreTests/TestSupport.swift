import Foundation
import Testing
import SyncSimulator

@testable import WatchPartyCore

// MARK: - Deterministic collaborators

/// Room ids "room-1", "room-2", … in creation order.
struct SequentialRoomIDs: RoomIDSource {
    private var counter = 0
    init() {}
    mutating func next() -> RoomID {
        counter += 1
        return "room-\(counter)"
    }
}

/// A token check for JWT-mode tests, standing in for the shell's JWT verification: known
/// tokens map to users, anything else is invalid.
struct StubVerifier {
    var users: [String: (userID: String, name: String)] = [
        "good-alice": ("u-alice", "Alice"),
        "good-bob": ("u-bob", "Bob"),
        "good-controls": ("u-ctl", "  Ca\u{0007}rol\n "),
    ]

    /// How long a session lasts after a successful auth.
    var lifetimeMs: ServerTime = 3_600_000

    func verify(token: String, now: ServerTime) -> TokenVerdict {
        guard let user = users[token] else { return .invalid }
        return .valid(userID: user.userID, name: user.name, expiresAt: now + lifetimeMs)
    }
}

extension PartyRules {
    /// `RESUME_GRACE_SECONDS=0`: a dropped connection departs at once (§5's rules, before §13).
    static var immediateDeparture: PartyRules {
        var rules = PartyRules()
        rules.resumeGraceMs = 0
        return rules
    }
}

/// An arbitrary but realistic start time (Unix ms).
let t0: ServerTime = 1_732_700_000_000

// MARK: - The wire form of a server message

/// A server message as a client sees it: decoded from `encodedJSON()` with JSONSerialization.
struct Wire: CustomStringConvertible {
    let json: String
    let object: [String: Any]

    init(_ message: ServerMessage) {
        json = message.encodedJSON()
        let parsed = try? JSONSerialization.jsonObject(with: Data(json.utf8))
        object = parsed as? [String: Any] ?? [:]
    }

    var description: String { json }

    var type: String? { object["type"] as? String }
    var room: String? { object["room"] as? String }
    var client: String? { object["client"] as? String }
    var ts: UInt64? { Wire.integer(object["ts"]) }
    var serverTs: UInt64? { Wire.integer(object["server_ts"]) }
    var keys: Set<String> { Set(object.keys) }
    var hasPayload: Bool { object["payload"] != nil }

    /// The payload as an object (empty when it is not one).
    var payload: [String: Any] { object["payload"] as? [String: Any] ?? [:] }
    var payloadKeys: Set<String> { Set(payload.keys) }
    var payloadArray: [Any]? { object["payload"] as? [Any] }

    func string(_ key: String) -> String? { payload[key] as? String }
    func number(_ key: String) -> Double? { (payload[key] as? NSNumber).map { $0.doubleValue } }
    func int(_ key: String) -> Int? { Wire.integer(payload[key]).map { Int($0) } }
    /// A payload field holding a server time (a JSON integer).
    func time(_ key: String) -> ServerTime? { Wire.integer(payload[key]) }
    func isNull(_ key: String) -> Bool { payload[key] is NSNull }

    /// `room_state.state`.
    var statePosition: Double? { ((payload["state"] as? [String: Any])?["position"] as? NSNumber)?.doubleValue }
    var statePlayState: String? { (payload["state"] as? [String: Any])?["play_state"] as? String }

    /// `error.payload.code`.
    var errorCode: String? { type == "error" ? string("code") : nil }

    /// `participant_list.participants` as (name, is_host) pairs.
    var participants: [(name: String, isHost: Bool)] {
        (payload["participants"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "?", $0["is_host"] as? Bool ?? false) }
    }

    /// `participant_statuses.statuses`, `nil` for JSON null.
    var statuses: [String?] {
        (payload["statuses"] as? [Any] ?? []).map { $0 as? String }
    }

    /// `room_list` entries.
    var roomList: [[String: Any]] { object["payload"] as? [[String: Any]] ?? [] }
    var roomListIDs: [String] { roomList.compactMap { $0["id"] as? String } }

    /// A JSON integer (no fraction) that fits in UInt64.
    static func integer(_ value: Any?) -> UInt64? {
        guard let number = value as? NSNumber else { return nil }
        let double = number.doubleValue
        guard double >= 0, double.rounded() == double else { return nil }
        return number.uint64Value
    }

    /// Whether the raw text carries `key` as an unsigned JSON integer literal.
    func hasIntegerLiteral(_ key: String) -> Bool {
        json.range(of: "\"\(key)\":[0-9]+[,}]", options: .regularExpression) != nil
    }
}

// MARK: - The harness

/// Wraps a ``Party`` with a manual clock, armed timers and per-client inboxes.
///
/// Every outcome is recorded; deliveries are decoded from their wire form into each
/// recipient's inbox. Timers from `Outcome.timers` are armed and fired when the clock passes
/// their due time (at the due time, or late on request).
final class Harness {
    var party: Party
    var now: ServerTime
    private(set) var inboxes: [ClientID: [Wire]] = [:]
    private(set) var outcomes: [Outcome] = []
    private(set) var events: [DomainEvent] = []
    private(set) var closes: [CloseRequest] = []
    /// Armed, not yet fired timers, in arming order.
    private(set) var armed: [TimerRequest] = []
    /// Every timer ever requested.
    private(set) var requested: [TimerRequest] = []
    private(set) var fired: [TimerRequest] = []
    /// Which connection carries each session now (PROTOCOL.md §13), by the name it was
    /// connected under: a handover moves a session to another connection's inbox.
    private(set) var carriers: [ClientID: String] = [:]
    /// Sessions whose connection is gone (disconnected, or taken over): nothing reaches them.
    private(set) var detached: Set<ClientID> = []
    /// Connections closed by a takeover (4001), in order.
    private(set) var takenOver: [String] = []
    /// Messages addressed to a session no connection carries (an away member).
    private(set) var undelivered: [(session: ClientID, message: Wire)] = []

    let verifier: StubVerifier?

    /// `coalesceLobby: false` (the default here) turns the lobby's 100 ms coalescing off, so a
    /// test sees each lobby broadcast at once and only the timers of the rule it is about.
    init(rules: PartyRules = PartyRules(), verifier: StubVerifier? = nil, start: ServerTime = t0, coalesceLobby: Bool = false, tokenPrefix: String = "token") {
        var rules = rules
        if !coalesceLobby { rules.lobbyCoalesceMs = 0 }
        party = Party(rules: rules, roomIDs: SequentialRoomIDs(), tokens: CountingResumeTokens(prefix: tokenPrefix), authRequired: verifier != nil)
        self.verifier = verifier
        now = start
    }

    var lastOutcome: Outcome { outcomes.last ?? Outcome() }

    // MARK: Inputs

    @discardableResult
    func connect(_ client: ClientID) -> Outcome {
        carriers[client] = client
        detached.remove(client)
        return record(party.connect(client, now: now))
    }

    /// The connection carrying `client` ends (the session's id, whichever connection carries it).
    @discardableResult
    func disconnect(_ client: ClientID) -> Outcome {
        let outcome = record(party.disconnect(client, now: now))
        carriers[client] = nil
        detached.insert(client)
        return outcome
    }

    /// An operator disconnects `client` (admin API); `nil` when there is no such session.
    @discardableResult
    func disconnectByOperator(_ client: ClientID) -> Outcome? {
        party.disconnectByOperator(client, now: now).map { record($0) }
    }

    /// Settles a probe the core asked for, as the shell does once its time is up.
    @discardableResult
    func settleProbe(of session: ClientID, for claimant: ClientID, answered: Bool) -> Outcome {
        record(party.settleProbe(of: session, for: claimant, answered: answered, now: now))
    }

    /// Probes asked for so far.
    var probes: [ProbeRequest] { outcomes.flatMap(\.probes) }
    /// Handovers so far.
    var handovers: [Handover] { outcomes.flatMap(\.handovers) }

    /// Sends raw text as `client`: decoded like the shell does, rejected when it does not decode.
    /// `arrivedAt`: when the shell read it, if earlier than now (a server slow to handle it);
    /// `mayHaveWaited`: how long before that it may have waited unread (a server slow to read it).
    @discardableResult
    func sendText(_ client: ClientID, _ text: String, arrivedAt: ServerTime? = nil, mayHaveWaited: ServerTime = 0) -> Outcome {
        let arrival = Arrival(readAt: arrivedAt ?? now, mayHaveWaited: mayHaveWaited)
        switch ClientMessageDecoder.decode(text) {
        case .success(let message):
            // Like the shell: an auth token is verified before the core sees the message.
            let verdict = message.type == .auth ? message.payload?["token"]?.string.flatMap { verifier?.verify(token: $0, now: now) } : nil
            return record(party.receive(message, from: client, now: now, arrival: arrival, verdict: verdict))
        case .failure(let error): return record(party.reject(client, error.code, now: now, arrival: arrival))
        }
    }

    /// Sends a message built from JSON-compatible values; `payload` omitted when `nil`.
    @discardableResult
    func send(
        _ client: ClientID, _ type: String, room: String? = nil, payload: Any? = nil, ts: Int = 1, arrivedAt: ServerTime? = nil, mayHaveWaited: ServerTime = 0
    ) -> Outcome {
        var envelope: [String: Any] = ["type": type, "ts": ts]
        if let room { envelope["room"] = room }
        if let payload { envelope["payload"] = payload }
        let data = try! JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys, .fragmentsAllowed])
        return sendText(client, String(decoding: data, as: UTF8.self), arrivedAt: arrivedAt, mayHaveWaited: mayHaveWaited)
    }

    /// Hands an already decoded message to the core (for values JSON text cannot carry).
    @discardableResult
    func receive(_ client: ClientID, _ message: ClientMessage) -> Outcome {
        record(party.receive(message, from: client, now: now))
    }

    @discardableResult
    func reject(_ client: ClientID, _ code: ErrorCode) -> Outcome {
        record(party.reject(client, code, now: now))
    }

    /// A binary frame arrived from `client`.
    @discardableResult
    func receiveBinary(_ client: ClientID) -> Outcome {
        record(party.receiveBinary(from: client, now: now))
    }

    /// Fires a timer by hand at the current time (e.g. a second time).
    @discardableResult
    func fire(_ key: TimerKey) -> Outcome {
        record(party.fire(key, now: now))
    }

    /// Takes a room over from its record (PROTOCOL.md §14); the refusal, if any.
    @discardableResult
    func adopt(_ record: RoomRecord, ownerGoneAt: ServerTime? = nil) -> Party.AdoptionRefusal? {
        switch party.adopt(record, now: now, ownerGoneAt: ownerGoneAt) {
        case .success(let outcome):
            self.record(outcome)
            return nil
        case .failure(let refusal):
            return refusal
        }
    }

    /// Moves a lobby session away to another server (`nil`: it cannot move); its connection is gone from here.
    func transferOut(_ client: ClientID) -> SessionTransfer? {
        guard let (transfer, outcome) = party.transferOut(client) else { return nil }
        self.record(outcome)
        carriers[client] = nil
        detached.insert(client)
        return transfer
    }

    /// Serves a session moved here from another server, carried by a connection of the same id; the refusal, if any.
    @discardableResult
    func transferIn(_ transfer: SessionTransfer) -> Party.AdoptionRefusal? {
        switch party.transferIn(transfer, now: now) {
        case .success(let outcome):
            carriers[transfer.seat.id] = transfer.seat.id
            detached.remove(transfer.seat.id)
            self.record(outcome)
            return nil
        case .failure(let refusal):
            return refusal
        }
    }

    /// The rooms other servers own, as the shell read them.
    @discardableResult
    func listRoomsElsewhere(_ listed: [ListedRoom]) -> Outcome {
        record(party.listRoomsElsewhere(listed, now: now))
    }

    /// Hands a room away; its record (`nil`: no such room).
    @discardableResult
    func release(_ room: RoomID, closing cause: CloseCause = .serviceRestart) -> RoomRecord? {
        guard let (record, outcome) = party.release(room, closing: cause, now: now) else { return nil }
        self.record(outcome)
        return record
    }

    @discardableResult
    func closeAllRooms() -> Outcome {
        record(party.closeAllRooms(now: now))
    }

    /// Advances the clock by `ms`, firing every armed timer that falls due on the way, in due
    /// order: at its due time, or (`late`) at the new time.
    func advance(by ms: UInt64, late: Bool = false) {
        let target = now + ms
        while let next = armed.enumerated().filter({ $0.element.due <= target }).min(by: { $0.element.due < $1.element.due }) {
            armed.remove(at: next.offset)
            if !late { now = max(now, next.element.due) } else { now = target }
            fired.append(next.element)
            record(party.fire(next.element.key, now: now))
        }
        now = target
    }

    // MARK: Reading

    /// Everything `client` received so far, in order.
    func inbox(_ client: ClientID) -> [Wire] { inboxes[client] ?? [] }

    /// The types `client` received, in order.
    func types(_ client: ClientID) -> [String] { inbox(client).map { $0.type ?? "?" } }

    /// The only message `client` received; records an issue otherwise.
    func only(_ client: ClientID, sourceLocation: SourceLocation = #_sourceLocation) -> Wire? {
        let messages = inbox(client)
        #expect(messages.count == 1, "expected exactly one message for \(client), got \(messages)", sourceLocation: sourceLocation)
        return messages.count == 1 ? messages[0] : nil
    }

    /// The messages of one type `client` received.
    func messages(_ client: ClientID, _ type: String) -> [Wire] { inbox(client).filter { $0.type == type } }

    /// The last message of `type` that `client` received.
    func last(_ client: ClientID, _ type: String) -> Wire? { messages(client, type).last }

    /// Forgets inboxes, events and closes (not rooms, sessions or timers).
    func clear() {
        inboxes = [:]
        events = []
        closes = []
        outcomes = []
    }

    // MARK: Set-ups

    /// Connects (open mode) and optionally authenticates with a name and features.
    func login(_ client: ClientID, name: String? = nil, features: [String]? = nil) {
        connect(client)
        if name != nil || features != nil {
            var payload: [String: Any] = [:]
            if let name { payload["user_name"] = name }
            if let features { payload["features"] = features }
            send(client, "auth", payload: payload)
        }
    }

    /// JWT mode: connects and authenticates with `token` (a ``StubVerifier`` token, "good-alice"…).
    func signIn(_ client: ClientID, token: String) {
        connect(client)
        send(client, "auth", payload: ["token": token])
    }

    /// `host` creates a room (returns its id, "room-N").
    @discardableResult
    func createRoom(_ host: ClientID, payload: [String: Any] = [:]) -> RoomID {
        send(host, "create_room", payload: payload)
        return party.sessions[host]?.roomID ?? "?"
    }

    func joinRoom(_ client: ClientID, _ room: RoomID, ready: Bool = false) {
        send(client, "join_room", room: room)
        if ready { send(client, "ready", room: room) }
    }

    /// Host "h" named Hannah and guests named after their ids, all in one room; cleared afterwards.
    @discardableResult
    func room(host: ClientID = "h", guests: [ClientID] = [], ready: Bool = true, hostFeatures: [String]? = nil, guestFeatures: [String: [String]] = [:], payload: [String: Any] = [:]) -> RoomID {
        login(host, name: "Hannah", features: hostFeatures)
        let id = createRoom(host, payload: payload)
        for guest in guests {
            login(guest, name: guest.capitalized, features: guestFeatures[guest])
            joinRoom(guest, id, ready: ready)
        }
        clear()
        return id
    }

    // MARK: Private

    @discardableResult
    private func record(_ outcome: Outcome) -> Outcome {
        outcomes.append(outcome)
        var pending = outcome.handovers[...]
        func handOver(upTo index: Int) {
            while let handover = pending.first, handover.afterDeliveries <= index {
                pending.removeFirst()
                if let old = carriers[handover.session] { takenOver.append(old) }
                carriers[handover.session] = carriers[handover.carrier] ?? handover.carrier
                carriers[handover.carrier] = nil
                detached.insert(handover.carrier)
                detached.remove(handover.session)
            }
        }
        for (index, delivery) in outcome.deliveries.enumerated() {
            handOver(upTo: index)
            let wire = Wire(delivery.message)
            for recipient in delivery.recipients {
                if detached.contains(recipient) {
                    undelivered.append((recipient, wire))
                } else {
                    inboxes[carriers[recipient] ?? recipient, default: []].append(wire)
                }
            }
        }
        handOver(upTo: outcome.deliveries.count)
        events += outcome.events
        closes += outcome.closes
        armed += outcome.timers
        requested += outcome.timers
        return outcome
    }
}

extension Harness {
    /// The error codes `client` received, in order.
    func errorCodes(_ client: ClientID) -> [String] { inbox(client).compactMap(\.errorCode) }

    /// The `barrierReleased` events so far.
    var releases: [(cause: BarrierReleaseCause, waitedMs: UInt64, latenessMs: UInt64)] {
        events.compactMap {
            if case .barrierReleased(let cause, let waited, let lateness) = $0 { (cause, waited, lateness) } else { nil }
        }
    }

    /// The `stateUpdate` events so far.
    var stateUpdates: [(result: StateUpdateResult, drift: Double)] {
        events.compactMap {
            if case .stateUpdate(let result, let drift) = $0 { (result, drift) } else { nil }
        }
    }
}

/// Runs CPU-bound `work` on a thread of its own, so a test that computes for tens of seconds
/// does not hold one of the cooperative pool's few threads (two on a 2-core machine) while the
/// real-socket tests of the same `swift test` process wait for it and miss their deadlines.
func onItsOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
