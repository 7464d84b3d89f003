import Foundation
import Testing

import SyncSimulator
@testable import WatchPartyCore

/// Seeded fuzzing of codec + core: random and mutated messages from several clients, with
/// connects, disconnects and timers interleaved, checking after every step that nothing trapped,
/// every reply is a documented message, and the room invariants hold.
@Suite struct FuzzTests {
    static let seed: UInt64 = 0x0DD5_EED5
    static let steps = 100_000

    @Test("100 000 fuzzed inputs through codec and core, seed 0x0DD5EED5")
    func fuzzedInputsKeepEveryInvariant() async throws {
        let stats = try await onItsOwnThread { try Self.run(seed: Self.seed, steps: Self.steps) }
        print("fuzz: \(stats.sent) messages (\(stats.undecodable) undecodable), seed \(String(Self.seed, radix: 16)), digest \(String(stats.digest, radix: 16)), handovers \(stats.handovers), errors by code: \(stats.errors.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " "))")
        #expect(stats.sent > 90_000)
        #expect(stats.errors.count >= 12, "the generator reaches most error paths")
        #expect(stats.handovers["resumed"] ?? 0 > 100 && stats.handovers["taken over"] ?? 0 > 10, "resumes and takeovers happen: \(stats.handovers)")
    }

    /// A failure is only worth something if its seed reproduces it: the same seed gives the same
    /// run, message for message (the digest covers every delivery, recipient and close), and
    /// another seed a different one.
    @Test func aSeedReproducesItsRun() async throws {
        let (first, second, other) = try await onItsOwnThread {
            (try Self.run(seed: 0xC0FFEE, steps: 5_000), try Self.run(seed: 0xC0FFEE, steps: 5_000), try Self.run(seed: 0xBEEF, steps: 5_000))
        }
        #expect(first.digest == second.digest)
        #expect(first.sent == second.sent)
        #expect(first.errors == second.errors)
        #expect(first.digest != other.digest)
    }

    /// One seeded run of the whole party; checks the invariants after every step.
    static func run(seed: UInt64, steps: Int) throws -> FuzzStats {
        try run(seed: seed, steps: steps) { WholeParty(party: $0) }
    }

    /// One seeded run of `target` (made from the fuzzer's party); checks the invariants after every step.
    static func run<Target: FuzzedParty>(seed: UInt64, steps: Int, target make: (Party) -> Target) throws -> FuzzStats {
        var rng = SplitMix64(seed: seed)
        var rules = PartyRules()
        rules.maxClientsPerRoom = 4
        rules.rateLimitPerSecond = 1_000
        rules.resumeByUserID = true  // every fuzzed user is "fuzz-user": identity resumes and probes happen
        rules.maxAwaySessions = 3  // the bound is reached, and the oldest away seat evicted, all the time
        var target = make(Party(rules: rules, roomIDs: SequentialRoomIDs(), tokens: CountingResumeTokens()))
        var now: ServerTime = t0
        var timers: [TimerRequest] = []
        // Eight users; each connection gets a fresh id, as the shell gives one (PROTOCOL.md §4),
        // and a resume moves a session to the connection that resumed it (§13).
        let clients = (0..<8).map { "client-\($0)" }
        var carried: [ClientID?] = Array(repeating: nil, count: clients.count)
        var connections = 0
        var tokens: [String] = []
        var probes: [(due: ServerTime, probe: ProbeRequest)] = []
        var stats = FuzzStats()

        for step in 0..<steps {
            now += rng.next(upTo: 400)
            let before = target.view
            let roomsBefore = before.rooms.storage
            let sessionsBefore = before.sessions.storage
            var outcomes: [Outcome] = []
            // As the shell does: a handover moves the session to its new connection at once, so
            // the next input of this step already comes from the right one.
            func take(_ outcome: Outcome) {
                outcomes.append(outcome)
                for handover in outcome.handovers {
                    // A connection that still carried the session is closed by the shell (4001), unheard.
                    if let old = carried.firstIndex(of: handover.session) { carried[old] = nil }
                    if let new = carried.firstIndex(of: handover.carrier) { carried[new] = handover.session }
                }
            }
            // Due timers first, as the shell would fire them.
            let due = timers.filter { $0.due <= now }
            timers.removeAll { $0.due <= now }
            for timer in due { take(target.fire(timer.key, now: now)) }
            // Probes settle when their time is up, answered or not, as the shell's ping finds.
            let settled = probes.filter { $0.due <= now }
            probes.removeAll { $0.due <= now }
            for entry in settled {
                take(target.settleProbe(of: entry.probe.session, for: entry.probe.claimant, answered: rng.chance(50), now: now))
            }

            let slot = Int(rng.next(upTo: UInt64(clients.count)))
            let roll = rng.next(upTo: 100)
            if carried[slot] == nil || roll < 2 {
                if let client = carried[slot] {
                    take(target.disconnect(client, now: now))
                    carried[slot] = nil
                } else {
                    connections += 1
                    let client = "\(clients[slot])#\(connections)"
                    take(target.connect(client, now: now))
                    carried[slot] = client
                }
            } else if let client = carried[slot] {
                // Mostly the sender's own room, else another live room, else one that does not exist.
                let view = target.view
                let own = view.sessions[client]?.roomID
                let others = view.rooms.keys.sorted()  // never dictionary order: it changes per process
                let room: RoomID = if let own, rng.chance(65) { own } else if !others.isEmpty, rng.chance(70) { rng.pick(others) } else { "missing-room" }
                let text =
                    rng.chance(4)
                    ? #"{"type":"resume","payload":{"token":"\#(tokens.isEmpty || rng.chance(20) ? "token-0" : rng.pick(tokens))"},"ts":1}"#
                    : FuzzMessages.make(&rng, room: room, clients: clients)
                stats.sent += 1
                switch ClientMessageDecoder.decode(text) {
                case .success(let message): take(target.receive(message, from: client, now: now))
                case .failure(let error):
                    stats.undecodable += 1
                    take(target.reject(client, error.code, now: now))
                }
            }

            var index = 0
            while index < outcomes.count {
                let outcome = outcomes[index]
                index += 1
                timers += outcome.timers
                probes += outcome.probes.map { (now + $0.withinMs, $0) }
                for handover in outcome.handovers {
                    stats.digest("handover \(handover.carrier) -> \(handover.session)")
                    stats.handovers[handover.tookOver ? "taken over" : "resumed", default: 0] += 1
                }
                for delivery in outcome.deliveries {
                    if case .clientHello(_, let token?, _) = delivery.message.payload { tokens = Array((tokens + [token]).suffix(16)) }
                    stats.digest(delivery.message.encodedJSON())
                    stats.digest(delivery.recipients.joined(separator: ","))
                    #expect(FuzzStats.documentedTypes.contains(delivery.message.type), "step \(step): undocumented \(delivery.message.type)")
                    #expect(!delivery.recipients.isEmpty)
                    if case .error(let code) = delivery.message.payload { stats.errors[code, default: 0] += 1 }
                    if step % 16 == 0 {
                        let json = delivery.message.encodedJSON()
                        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "step \(step)")
                        #expect(object["ts"] is Int && object["server_ts"] is Int)
                    }
                }
                for close in outcome.closes {
                    stats.digest("close \(close.client) \(close.code)")
                    guard let closed = carried.firstIndex(of: close.client) else { continue }
                    carried[closed] = nil
                    take(target.disconnect(close.client, now: now))
                }
            }
            let party = target.view
            try Self.checkInvariants(party, step: step)
            // A store persists exactly what the outcomes say changed: nothing may be missed.
            let reported = outcomes.reduce(into: StateChanges()) { $0.rooms.formUnion($1.changes.rooms); $0.sessions.formUnion($1.changes.sessions) }
            let changedRooms = Set(roomsBefore.keys).union(party.rooms.keys).filter { roomsBefore[$0] != party.rooms[$0] }
            // The connection's meters are kept by no store (TrackedTable.updateUnrecorded): compared without them.
            func kept(_ session: ClientSession?) -> ClientSession? {
                guard var session else { return nil }
                session.meters = ConnectionMeters(connectedAt: 0)
                return session
            }
            let changedSessions = Set(sessionsBefore.keys).union(party.sessions.keys).filter { kept(sessionsBefore[$0]) != kept(party.sessions[$0]) }
            #expect(changedRooms.isSubset(of: reported.rooms), "step \(step): rooms changed but not reported: \(changedRooms.subtracting(reported.rooms))")
            #expect(changedSessions.isSubset(of: reported.sessions), "step \(step): sessions changed but not reported: \(changedSessions.subtracting(reported.sessions))")
        }
        stats.routed = target.routed
        return stats
    }

    static func checkInvariants(_ party: Party, step: Int) throws {
        for (id, room) in party.rooms {
            #expect(!room.members.isEmpty, "step \(step): empty room \(id)")
            #expect(room.members.contains(room.hostID), "step \(step): host of \(id) is not a member")
            #expect(room.ready.isSubset(of: Set(room.members)), "step \(step): ready ⊄ members in \(id)")
            #expect(room.away.isSubset(of: Set(room.members)), "step \(step): away ⊄ members in \(id)")
            for member in room.members {
                #expect(party.sessions[member]?.isAttached == !room.away.contains(member), "step \(step): \(member)'s presence disagrees with \(id)")
            }
            #expect(Set(room.members).count == room.members.count, "step \(step): duplicate member in \(id)")
            #expect(room.members.count <= party.rules.maxClientsPerRoom)
            for member in room.members {
                #expect(party.sessions[member]?.roomID == id, "step \(step): \(member) in \(id) but its session says \(String(describing: party.sessions[member]?.roomID))")
            }
        }
        #expect(party.awayCount == party.sessions.values.count { !$0.isAttached }, "step \(step): the away count drifted")
        #expect(party.roomListCache.map { $0.rooms == party.roomSummaries() } ?? true, "step \(step): the cached room_list is stale")
        for session in party.sessions.values {
            #expect(session.identity.map { party.sessionsByUser[$0]?.contains(session.id) == true } ?? true, "step \(step): \(session.id) missing from the user index")
        }
        for (identity, members) in party.sessionsByUser {
            #expect(!members.isEmpty && members.allSatisfy { party.sessions[$0]?.identity == identity }, "step \(step): stale user index entry \(identity)")
        }
        for session in party.sessions.values {
            #expect(session.isAttached || session.roomID != nil, "step \(step): \(session.id) is away in no room")
            if let roomID = session.roomID {
                let room = try #require(party.rooms[roomID], "step \(step): \(session.id) points at a missing room")
                #expect(room.members.contains(session.id))
            }
        }
    }
}

struct FuzzStats: Sendable {
    var sent = 0
    /// Sessions moved to another connection, by kind.
    var handovers: [String: Int] = [:]
    var undecodable = 0
    /// How the target routed its inputs (a cut party: to parts, to the whole, with parts attached).
    var routed: [String: Int] = [:]
    var errors: [ErrorCode: Int] = [:]
    /// FNV-1a over everything the core sent and closed, in order.
    private(set) var digest: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func digest(_ text: String) {
        for byte in text.utf8 {
            digest = (digest ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        digest = (digest ^ 0xFF) &* 0x0000_0100_0000_01B3
    }

    /// PROTOCOL.md's server messages, written out here (not read from the code under test).
    static let documentedTypes: Set<String> = [
        "client_hello", "auth_success", "room_list", "room_state", "participant_list", "participant_statuses",
        "participants_update", "client_left", "host_changed", "room_closed", "player_event", "state_update",
        "chat_message", "pong", "error",
    ]
}

/// Valid messages of every type, then mutated: fields removed, retyped, oversized,
/// unicode-mangled; and plain random bytes.
enum FuzzMessages {
    static func make(_ rng: inout SplitMix64, room: RoomID, clients: [ClientID]) -> String {
        switch rng.next(upTo: 20) {
        case 0: return randomBytes(&rng)
        case 1: return rng.pick(["", "{", "[]", "null", "1", "\"x\"", "{\"type\":1,\"ts\":1}", "{\"ts\":-1,\"type\":\"ping\"}", "{\"type\":\"ping\"}"])
        default: break
        }
        var envelope = valid(&rng, room: room)
        if rng.chance(35) { mutate(&envelope, &rng, clients: clients) }
        var text = MiniJSON.encode(envelope)
        if rng.chance(3) { text = mangleUnicode(text, &rng) }
        return text
    }

    static func valid(_ rng: inout SplitMix64, room: RoomID) -> OrderedFields {
        let position = rng.pick([0.0, 1.5, 12.0, 600.25, Double(rng.next(upTo: 7200))])
        var envelope: OrderedFields = ["ts": Int(rng.next(upTo: 2_000_000_000_000))]
        switch rng.next(upTo: 13) {
        case 0: envelope["type"] = "auth"; envelope["payload"] = ["user_name": "fuzz", "user_id": "fuzz-user", "protocol_version": 1, "features": ["host_transfer", "participant_status"]] as OrderedFields
        case 1: envelope["type"] = "ping"; envelope["payload"] = ["client_ts": 1] as OrderedFields
        case 2: envelope["type"] = "list_rooms"
        case 3: envelope["type"] = "create_room"; envelope["payload"] = ["name": "Room", "start_pos": position, "media_id": "0123456789abcdef0123456789abcdef"] as OrderedFields
        case 4: envelope["type"] = "join_room"; envelope["room"] = room; envelope["payload"] = ["user_name": "Guest"] as OrderedFields
        case 5: envelope["type"] = "leave_room"
        case 6: envelope["type"] = "close_room"
        case 7: envelope["type"] = "ready"; envelope["room"] = room
        case 8:
            envelope["type"] = "player_event"; envelope["room"] = room
            envelope["payload"] = ["action": rng.pick(["play", "pause", "seek", "buffering"]), "position": position, "play_state": rng.pick(["playing", "paused"])] as OrderedFields
        case 9: envelope["type"] = "state_update"; envelope["room"] = room; envelope["payload"] = ["position": position, "play_state": rng.pick(["playing", "paused"])] as OrderedFields
        case 10: envelope["type"] = "chat_message"; envelope["room"] = room; envelope["payload"] = ["text": rng.pick(["hi", " ", "a\u{0}b", String(repeating: "é", count: 260)])] as OrderedFields
        case 11: envelope["type"] = "participant_status"; envelope["payload"] = ["status": rng.pick(ParticipantStatus.allCases.map(\.rawValue) + ["dancing"])] as OrderedFields
        default: envelope["type"] = "client_log"; envelope["payload"] = ["category": rng.pick(["player", "bad category!", ""]), "message": "line\u{7}"] as OrderedFields
        }
        return envelope
    }

    /// Larger than any limit in the protocol (made once: building it per message dominated the run).
    static let hugeString = String(repeating: "x", count: 70_000)

    static func mutate(_ envelope: inout OrderedFields, _ rng: inout SplitMix64, clients: [ClientID]) {
        let keys = envelope.keys + ["payload", "room", "client"]
        let key = rng.pick(keys)
        let odd: [Any] = [NSNull(), true, -1, 1e308, -0.0, "", hugeString, [1, 2], ["nested": ["deep": []] as OrderedFields] as OrderedFields, "🙂\u{202E}", rng.pick(clients)]
        switch rng.next(upTo: 4) {
        case 0: envelope[key] = nil
        case 1: envelope[key] = rng.pick(odd)
        case 2:
            if var payload = envelope["payload"] as? OrderedFields, !payload.keys.isEmpty {
                let field = rng.pick(payload.keys)
                payload[field] = rng.chance(50) ? nil : rng.pick(odd)
                envelope["payload"] = payload
            }
        default: envelope["type"] = rng.pick(["PING", "ping ", "create_room\u{0}", "x", "player_event"])
        }
    }

    static func randomBytes(_ rng: inout SplitMix64) -> String {
        let count = Int(rng.next(upTo: 64))
        return String(decoding: (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, as: UTF8.self)
    }

    static func mangleUnicode(_ text: String, _ rng: inout SplitMix64) -> String {
        var scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty else { return text }
        let index = Int(rng.next(upTo: UInt64(scalars.count)))
        scalars[index] = rng.pick(["\u{FFFD}", "\u{0}", "\u{202E}", "\u{1F600}", "\"", "\\"])
        return String(String.UnicodeScalarView(scalars))
    }
}


/// Serialises the generator's values (fast enough for 100 000 messages in a debug build).
enum MiniJSON {
    static func encode(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case let bool as Bool: return bool ? "true" : "false"
        case let int as Int: return String(int)
        case let double as Double: return double.isFinite ? "\(double)" : "0"
        case let string as String: return quote(string)
        case let array as [Any]: return "[" + array.map(encode).joined(separator: ",") + "]"
        case let object as OrderedFields: return "{" + object.pairs.map { quote($0.key) + ":" + encode($0.value) }.joined(separator: ",") + "}"
        default: return "null"
        }
    }

    static func quote(_ string: String) -> String {
        if string.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x80 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return "\"" + string + "\""
        }
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

/// A JSON object whose members keep their order, so a seed makes the same text in every
/// process (a `Dictionary`'s order changes from one process to the next).
struct OrderedFields: ExpressibleByDictionaryLiteral {
    var pairs: [(key: String, value: Any)]

    init(dictionaryLiteral elements: (String, Any)...) {
        pairs = elements.map { (key: $0.0, value: $0.1) }
    }

    var keys: [String] { pairs.map(\.key) }

    subscript(key: String) -> Any? {
        get { pairs.first { $0.key == key }?.value }
        set {
            if let index = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue { pairs[index].value = newValue } else { pairs.remove(at: index) }
            } else if let newValue {
                pairs.append((key: key, value: newValue))
            }
        }
    }
}
