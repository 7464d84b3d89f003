import Foundation
import NIOCore
import Synchronization

/// `rolling`: a rolling restart of several replicas under a party, measured from the members'
/// seats (PROTOCOL.md §11, §13, §14).
///
/// The generator starts `replicas` owp-server processes itself, sharing one PostgreSQL, and
/// builds R rooms of M members spread over them at random (a load balancer without affinity).
/// Every host plays, then posts a numbered chat message every `chatInterval`. Each replica in
/// turn is then replaced as a Kubernetes rolling update does (maxSurge 1, maxUnavailable 0):
/// a new process starts and, once ready and listening on the bus, takes the old one's place
/// behind the "Service"; the old one gets SIGTERM. A member whose connection closes waits
/// `backoff` (the upstream clients' first back-off), connects to a running replica at random
/// and sends `resume` with its latest token, again after each failed attempt.
///
/// Measured: closes by code; per close, the time to the resumed `room_state`; members back in
/// their own seat (same id, same room); rooms closed (`room_closed` seen); and messages lost:
/// a chat number missing between two that one connection received (what is sent while a
/// member is away is, by §13, not replayed).
struct RollingOptions: Sendable {
    var server = ""
    var databaseURL = ""
    var replicas = 3
    var rooms = 300
    var members = 10
    var backoff: Double = 1
    var chatInterval: Double = 2
    var settle: Double = 4
    var basePort = 29600
    var logDirectory = ""
    var rampPerSecond: Double = 2000
    var setupConcurrency = 16
}

final class RollingScenario: Sendable {
    let group: any EventLoopGroup
    let options: RollingOptions

    init(group: any EventLoopGroup, options: RollingOptions) {
        self.group = group
        self.options = options
    }

    func run() async throws -> RunResult {
        let options = self.options
        // Every process, the successors too, is spawned (parked) now, before any member connects.
        var all: [ReplicaProcess] = []
        func park(_ slot: Int, generation: Int) throws -> ReplicaProcess {
            let port = options.basePort + generation * options.replicas + slot
            let replica = try ReplicaProcess(
                binary: options.server, databaseURL: options.databaseURL, port: port, name: "r\(slot)-g\(generation)", logDirectory: options.logDirectory)
            all.append(replica)
            return replica
        }
        do {
            var replicas = try (0..<options.replicas).map { try park($0, generation: 0) }
            let successors = try (0..<options.replicas).map { try park($0, generation: 1) }
            for replica in replicas { try replica.launch() }
            for replica in replicas { try await replica.waitReady(group: group) }
            try await Task.sleep(for: .seconds(2))  // every replica in every other's directory
            let result = try await measure(&replicas, successors: successors)
            for replica in all { _ = await replica.terminate() }
            return result
        } catch {
            for replica in all { _ = await replica.terminate() }
            throw error
        }
    }

    private func measure(_ replicas: inout [ReplicaProcess], successors: [ReplicaProcess]) async throws -> RunResult {
        let options = self.options
        let harness = Harness(url: replicas[0].url, group: group, replicas: replicas.dropFirst().map(\.url))
        let counters = harness.counters
        counters.stopping.store(true, ordering: .relaxed)  // closes are the test: tallied per member
        let balancer = Balancer(replicas.map(\.url), seed: 0x5EED)
        let pacer = Pacer(perSecond: options.rampPerSecond)
        let built = await harness.forEach(0..<options.rooms, limit: options.setupConcurrency) { index in
            try await harness.buildRoom(index: index, members: options.members, ready: true, pacer: pacer)
        }
        var members: [RollingMember] = []
        for room in built {
            for (index, socket) in room.sockets.enumerated() {
                guard let (client, token) = try await socket.greetedSeat() else { continue }
                let member = RollingMember(
                    loop: room.loop, room: room.id, client: client, token: token, isHost: index == 0, backoff: options.backoff,
                    balancer: balancer, counters: counters, recorder: harness.recorders.recorder(for: room.loop))
                members.append(member)
                let port = harness.replicas[room.placement[index] % harness.replicas.count].port
                try await room.loop.submit { member.begin(on: socket, port: port, chatInterval: options.chatInterval) }.get()
            }
        }
        Console.line("[rolling] \(members.count) members in \(built.count) rooms over \(replicas.count) replicas; playing and chatting")
        try await Task.sleep(for: .seconds(options.settle))

        var drains: [Double] = []
        var sigterms: [(name: String, port: Int, at: UInt64)] = []
        for slot in replicas.indices {
            let fresh = successors[slot]
            try fresh.launch()
            try await fresh.waitReady(group: group)
            let old = replicas[slot]
            balancer.replace(old.url, with: fresh.url)
            replicas[slot] = fresh
            Console.line("[rolling] \(fresh.name) ready; SIGTERM to \(old.name)")
            sigterms.append((old.name, old.url.port, BenchClock.micros()))
            drains.append(await old.terminate())
            try await Task.sleep(for: .seconds(options.settle))
        }
        let restartedAt = ContinuousClock.now
        var tallies = RollingMember.Tally()
        while true {
            tallies = RollingMember.Tally()
            for member in members { tallies.add(try await member.loop.submit { member.tally }.get()) }
            if tallies.attached == members.count || ContinuousClock.now - restartedAt > .seconds(30) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        // Each missed number, judged by its sender: one the host never got back (the server
        // sends every chat to its sender too) and whose connection closed after sending it crossed
        // the close (read by a replica that was already closing it: its client sees the drop);
        // any other is a silent loss (the host got it back, or stayed connected without it).
        var hosts: [String: (sentAt: [Int: UInt64], sentOn: [Int: Int], echoed: Set<Int>, closes: [UInt64])] = [:]
        var misses: [(room: String, number: Int, port: Int)] = []
        for member in members {
            let (isHost, sentAt, sentOn, echoed, closes, missed) = try await member.loop.submit {
                (member.isHost, member.sentAt, member.sentOn, member.echoed, member.closes, member.missed)
            }.get()
            if isHost { hosts[member.room] = (sentAt, sentOn, echoed, closes) }
            misses += missed.map { (member.room, $0.number, $0.port) }
        }
        var inFlightAtClose = Set<String>()
        var silent = Set<String>()
        // Each miss in context (times from the first SIGTERM): when and through which replica
        // the host sent it, where the member that missed it was connected, the host's closes.
        let zero = sigterms.first?.at ?? 0
        let at = { (micros: UInt64) in String(format: "%+.3f s", (Double(micros) - Double(zero)) / 1e6) }
        var contexts: [String] = []
        for miss in misses {
            let key = "\(miss.room)#\(miss.number)"
            let host = hosts[miss.room]
            let sent = host?.sentAt[miss.number]
            if let host, let sent, !host.echoed.contains(miss.number), host.closes.contains(where: { $0 >= sent }) {
                inFlightAtClose.insert(key)
            } else {
                silent.insert(key)
            }
            contexts.append(
                "\(key): sent \(sent.map(at) ?? "?") via :\(host?.sentOn[miss.number].map(String.init) ?? "?"), missed on a connection to :\(miss.port); "
                    + "the host's closes at \(host?.closes.map(at).joined(separator: ", ") ?? "?")")
        }
        var roomsActive = 0.0
        for replica in replicas {
            roomsActive += (try? await HTTPGet.metrics(replica.url, group: group))?["owp_rooms_active"] ?? 0
        }
        var sockets: [BenchSocket] = []
        for member in members {
            if let socket = try await member.loop.submit({ member.stop() }).get() { sockets.append(socket) }
        }
        await harness.closeAll(sockets)

        var result = RunResult()
        let series: Set<Series> = [.closeToResumed, .reconnectUpgrade, .reconnectHello, .resumeToRoomState, .handshake]
        result.latency = harness.recorders.summaries().filter { Series(rawValue: $0.key).map(series.contains) ?? false }
        result.metrics["members"] = Double(members.count)
        result.metrics["rooms"] = Double(built.count)
        result.metrics["replicas"] = Double(replicas.count)
        result.metrics["reconnects"] = Double(tallies.closes.values.reduce(0, +))
        for (code, count) in tallies.closes { result.metrics["closes_\(code)"] = Double(count) }
        result.metrics["rooms_closed_seen"] = Double(tallies.roomClosed)
        result.metrics["chats_sent"] = Double(tallies.chatsSent)
        result.metrics["chats_received"] = Double(tallies.chatsReceived)
        result.metrics["messages_lost"] = Double(tallies.lost)
        result.metrics["chats_missed_in_flight_at_the_senders_close"] = Double(inFlightAtClose.count)
        result.metrics["chats_missed_silently"] = Double(silent.count)
        for key in silent.sorted().prefix(10) { result.notes.append("missed silently (room#number): \(key)") }
        if !contexts.isEmpty {
            result.notes.append("SIGTERMs: " + sigterms.map { "\($0.name) (:\($0.port)) \(at($0.at))" }.joined(separator: ", "))
            for context in contexts.sorted().prefix(10) { result.notes.append("missed \(context)") }
        }
        result.metrics["members_back_in_their_seat"] = Double(tallies.backInSeat)
        result.metrics["members_not_back"] = Double(members.count - tallies.attached)
        result.metrics["resumes_into_another_seat"] = Double(tallies.wrongSeat)
        result.metrics["failed_attempts"] = Double(tallies.failedAttempts)
        result.metrics["resumed_after_an_unanswered_resume"] = Double(tallies.resumedAfterAnUnansweredResume)
        result.metrics["drain_seconds_max"] = drains.max() ?? 0
        result.metrics["server_rooms_active_end"] = roomsActive
        result.notes.append("drains (s): " + drains.map { String(format: "%.2f", $0) }.joined(separator: ", "))
        for (reason, count) in tallies.failures.sorted(by: { $0.key < $1.key }) { result.notes.append("failed attempts, \(reason): \(count)") }
        result.errors = tallies.errors.reduce(into: [:]) { $0["member_error_\($1.key)"] = $1.value }
        result.errorTotal = silent.count + tallies.roomClosed + (members.count - tallies.backInSeat)
        return result
    }
}

/// One member through the restarts. Confined to `loop` (every method and property is used
/// there; ``comeBack()`` hops), hence `@unchecked Sendable`.
final class RollingMember: @unchecked Sendable {
    /// What the members saw, summed.
    struct Tally: Sendable {
        var closes: [String: Int] = [:]
        var errors: [String: Int] = [:]
        /// Failed attempts to come back, by reason.
        var failures: [String: Int] = [:]
        var roomClosed = 0
        var lost = 0
        var chatsSent = 0
        var chatsReceived = 0
        var failedAttempts = 0
        var wrongSeat = 0
        /// Resumes served with a token whose previous `resume` went unanswered (its connection
        /// closed first): the server may have rotated it then, and these are the resumes a
        /// retiring token (docs/protocol.md choice 21) lets through.
        var resumedAfterAnUnansweredResume = 0
        var attached = 0
        var backInSeat = 0

        mutating func add(_ other: Tally) {
            closes.merge(other.closes, uniquingKeysWith: +)
            errors.merge(other.errors, uniquingKeysWith: +)
            failures.merge(other.failures, uniquingKeysWith: +)
            roomClosed += other.roomClosed
            lost += other.lost
            chatsSent += other.chatsSent
            chatsReceived += other.chatsReceived
            failedAttempts += other.failedAttempts
            wrongSeat += other.wrongSeat
            resumedAfterAnUnansweredResume += other.resumedAfterAnUnansweredResume
            attached += other.attached
            backInSeat += other.backInSeat
        }
    }

    let loop: any EventLoop
    let room: String
    let client: String
    let isHost: Bool
    private let backoff: TimeAmount
    private let balancer: Balancer
    private let counters: BenchCounters
    private let recorder: Recorder
    private var token: String
    /// The token of the last `resume` sent whose connection ended before its answer came: the
    /// server may have rotated the seat's token in a `client_hello` that was lost.
    private var unansweredToken: String?
    private(set) var socket: BenchSocket?
    /// The last chat number this connection received (a gap after it is a lost message).
    private var lastChat: Int?
    /// When the member lost its connection, until it is back in its seat.
    private var closedAt: UInt64?
    private var chatTimer: RepeatedTask?
    private var chatNumber = 0
    private var stopped = false
    private var counts = Tally()
    /// A host's chat numbers, when each was sent; when its connections closed.
    private(set) var sentAt: [Int: UInt64] = [:]
    /// A host's own chat numbers it received back (the server sends a chat to its sender too).
    private(set) var echoed: Set<Int> = []
    /// A host's chat numbers, the port of the replica each was sent to.
    private(set) var sentOn: [Int: Int] = [:]
    private(set) var closes: [UInt64] = []
    /// The port of the replica the current connection goes to.
    private var port = 0
    /// The chat numbers this member missed between two it received on one connection, with
    /// the port of that connection's replica.
    private(set) var missed: [(number: Int, port: Int)] = []

    init(
        loop: any EventLoop, room: String, client: String, token: String, isHost: Bool, backoff: Double, balancer: Balancer, counters: BenchCounters,
        recorder: Recorder
    ) {
        self.loop = loop
        self.room = room
        self.client = client
        self.token = token
        self.isHost = isHost
        self.backoff = .nanoseconds(Int64(backoff * 1e9))
        self.balancer = balancer
        self.counters = counters
        self.recorder = recorder
    }

    var tally: Tally {
        var tally = counts
        tally.attached = socket == nil ? 0 : 1
        tally.backInSeat = socket != nil && counts.wrongSeat == 0 ? 1 : 0
        return tally
    }

    /// Takes over the set-up connection; a host plays and starts its numbered chat.
    func begin(on socket: BenchSocket, port: Int, chatInterval: Double) {
        self.port = port
        attach(socket)
        guard isHost else { return }
        socket.send(#"{"type":"player_event","room":"\#(room)","payload":{"action":"play","position":0},"ts":\#(BenchClock.ts())}"#)
        let interval = TimeAmount.nanoseconds(Int64(chatInterval * 1e9))
        chatTimer = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            guard let socket = self.socket else { return }  // away: nothing to say
            chatNumber += 1
            counts.chatsSent += 1
            sentAt[chatNumber] = BenchClock.micros()
            sentOn[chatNumber] = self.port  // not `begin`'s parameter: the replica of the connection it goes out on
            socket.send(#"{"type":"chat_message","room":"\#(room)","payload":{"text":"\#(chatNumber)"},"ts":\#(BenchClock.ts())}"#)
        }
    }

    /// Stops chatting and coming back; returns the connection to close, if it has one.
    func stop() -> BenchSocket? {
        stopped = true
        chatTimer?.cancel()
        return socket
    }

    private func attach(_ socket: BenchSocket) {
        self.socket = socket
        lastChat = nil
        socket.takeOver { [self] message in received(message) }
        socket.onClose = { [self] code in connectionLost(code) }
        if socket.isClosed { connectionLost(socket.serverCloseCode) }  // closed before it was taken over
    }

    private func received(_ message: ByteBuffer) {
        switch JSONScan.kind(of: message) {
        case .chatMessage:
            guard let number = JSONScan.string(.text, in: message).flatMap(Int.init) else { return }
            counts.chatsReceived += 1
            if isHost { echoed.insert(number) }
            if let last = lastChat, number > last + 1 {
                counts.lost += number - last - 1
                missed.append(contentsOf: ((last + 1)..<number).map { ($0, port) })
            }
            lastChat = max(lastChat ?? number, number)
        case .error:
            counts.errors[JSONScan.string(.code, in: message) ?? "?", default: 0] += 1
        case .other:
            if JSONScan.type(of: message) == "room_closed" { counts.roomClosed += 1 }
        default:
            break
        }
    }

    private func connectionLost(_ code: UInt16?) {
        guard socket != nil else { return }
        socket = nil
        counts.closes[code.map(String.init) ?? "none", default: 0] += 1
        if closedAt == nil { closedAt = BenchClock.micros() }
        closes.append(BenchClock.micros())
        retryLater()
    }

    private func retryLater() {
        guard !stopped else { return }
        loop.scheduleTask(in: backoff) { [self] in Task { await comeBack() } }
    }

    /// Off the loop: connect to a running replica, resume with the latest token, and wait for
    /// the seat's `client_hello` and its room's `room_state` (10 s at most).
    private func comeBack() async {
        guard let url = balancer.pick() else { return loop.execute { [self] in failedAttempt() } }
        var connected: BenchSocket?
        defer { if let connected { connected.eventLoop.execute { if self.socket !== connected { connected.abort() } } } }
        do {
            let began = BenchClock.micros()
            let socket = try await BenchSocket.connect(to: url, on: loop, counters: counters)
            connected = socket  // dropped on the way out unless it became the member's connection
            let deadline = loop.scheduleTask(in: .seconds(10)) { socket.abort() }
            defer { deadline.cancel() }
            let upgraded = BenchClock.micros()
            _ = try await socket.expectFromAnywhere("client_hello")
            let greeted = BenchClock.micros()
            let (token, retried) = try await loop.submit { [self] in
                defer { self.unansweredToken = self.token }  // until an answer comes
                return (self.token, self.unansweredToken == self.token)
            }.get()
            socket.sendFromAnywhere(#"{"type":"resume","payload":{"token":"\#(token)"},"ts":\#(BenchClock.ts())}"#)
            let hello = try await socket.expectFromAnywhere("client_hello", orError: true)
            try await loop.submit { [self] in self.unansweredToken = nil }.get()
            if JSONScan.type(of: hello) == "error" {
                throw AttemptFailure.refused(JSONScan.string(.code, in: hello) ?? "?")
            }
            // The old token retires with this hello (docs/protocol.md choice 21): the new one is
            // kept at once, even if the connection drops before the room_state.
            if let fresh = JSONScan.string(.resumeToken, in: hello) {
                try await loop.submit { [self] in
                    self.token = fresh
                    if retried { counts.resumedAfterAnUnansweredResume += 1 }
                }.get()
            }
            let state = try await socket.expectFromAnywhere("room_state", orError: true)
            if JSONScan.type(of: state) == "error" {
                throw AttemptFailure.refused(JSONScan.string(.code, in: state) ?? "?")
            }
            let back = BenchClock.micros()
            recorder.record(.reconnectUpgrade, micros: upgraded - began)
            recorder.record(.reconnectHello, micros: greeted - upgraded)
            recorder.record(.resumeToRoomState, micros: back - greeted)
            try await loop.submit { [self] in resumed(socket, port: url.port, hello: hello, state: state) }.get()
        } catch {
            let reason = (error as? AttemptFailure)?.description ?? (error as? BenchError)?.description ?? "\(type(of: error))"
            loop.execute { [self] in failedAttempt(reason) }
        }
    }

    /// Why an attempt to come back failed (the report's `failed_attempts_<reason>`).
    private enum AttemptFailure: Error, CustomStringConvertible {
        case refused(String)
        var description: String {
            switch self {
            case .refused(let code): "resume answered \(code)"
            }
        }
    }

    private func failedAttempt(_ reason: String = "no replica to connect to") {
        counts.failedAttempts += 1
        counts.failures[reason, default: 0] += 1
        retryLater()
    }

    private func resumed(_ socket: BenchSocket, port: Int, hello: ByteBuffer, state: ByteBuffer) {
        if JSONScan.string(.client, in: hello) != client || JSONScan.string(.room, in: state) != room { counts.wrongSeat += 1 }
        if let closedAt { recorder.record(.closeToResumed, micros: BenchClock.micros() - closedAt) }
        closedAt = nil
        if stopped { return socket.close() }
        self.port = port
        attach(socket)
    }
}
