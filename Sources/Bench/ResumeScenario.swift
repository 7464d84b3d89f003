import NIOCore

/// `resume`: a reconnect storm. R rooms of M members are built; every connection is then
/// dropped at once with a TCP reset (a lost network, a dead load balancer: no close frame);
/// after `delay` every member reconnects at the ramp and sends `resume` with the token of its
/// first `client_hello`. A member is back when its resumed `client_hello` carries its old id
/// and its `room_state` names its old room. Reported: how many came back, the way-back
/// latency (connect + resume → `room_state`), how long until all were back, and the server's
/// own away and resume counters. With several replicas (`--replica`), members are spread over
/// them as in `party` and each comes back through the next replica after its own, so that a
/// resume names a room the replica it reaches does not own: the cross-replica reconnect storm.
struct ResumeOptions: Sendable {
    var rooms = 100
    var members = 10
    var delay: Double = 1
    var rampPerSecond: Double = 2000
    var concurrency = 256
}

final class ResumeScenario: Sendable {
    let harness: Harness
    let options: ResumeOptions

    init(harness: Harness, options: ResumeOptions) {
        self.harness = harness
        self.options = options
    }

    /// One member as the server greeted it.
    struct Seat: Sendable {
        let room: String
        let client: String
        let token: String
        let loop: any EventLoop
        /// The replica it was connected to.
        let replica: Int
    }

    func run() async throws -> RunResult {
        let counters = harness.counters
        let options = self.options
        let pacer = Pacer(perSecond: options.rampPerSecond)
        let built = await harness.forEach(0..<options.rooms, limit: max(options.concurrency / max(options.members, 1), 1)) { index in
            try await self.harness.buildRoom(index: index, members: options.members, ready: true, pacer: pacer)
        }
        var seats: [Seat] = []
        for room in built {
            for (member, socket) in room.sockets.enumerated() {
                guard let (client, token) = try await socket.greetedSeat() else { continue }
                seats.append(Seat(room: room.id, client: client, token: token, loop: room.loop, replica: member < room.placement.count ? room.placement[member] : 0))
            }
        }
        let greeted = seats
        let sockets = built.flatMap(\.sockets)
        Console.line("[resume] \(seats.count) members in \(built.count) rooms; dropping every connection")
        let before = try? await HTTPGet.metrics(harness.url, group: harness.group)

        counters.stopping.store(true, ordering: .relaxed)  // the drop is the test, not an error
        for socket in sockets { socket.eventLoop.execute { socket.abort() } }
        _ = try? await EventLoopFuture.andAllComplete(sockets.map(\.closed), on: harness.group.next()).get()
        counters.stopping.store(false, ordering: .relaxed)
        var awayPeak = 0.0
        let dropDeadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < dropDeadline {
            awayPeak = (try? await HTTPGet.metrics(harness.url, group: harness.group))?["owp_sessions_away"] ?? 0
            if awayPeak >= Double(seats.count) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .seconds(options.delay))

        let recorder = harness.recorders.shared
        let start = ContinuousClock.now
        let results = await harness.forEach(0..<greeted.count, limit: options.concurrency) { index -> (Bool, BenchSocket?) in
            let seat = greeted[index]
            await pacer.wait()
            let began = BenchClock.micros()
            let socket = try await self.harness.connect(on: seat.loop, replica: seat.replica + 1)
            _ = try await socket.expectFromAnywhere("client_hello")  // the fresh greeting
            socket.sendFromAnywhere(#"{"type":"resume","payload":{"token":"\#(seat.token)"},"ts":\#(BenchClock.ts())}"#)
            let hello = try await socket.expectFromAnywhere("client_hello")
            let state = try await socket.expectFromAnywhere("room_state")
            recorder.record(.resume, micros: BenchClock.micros() - began)
            let back = JSONScan.string(.client, in: hello) == seat.client && JSONScan.string(.room, in: state) == seat.room
            return (back, socket)
        }
        let allBackSeconds = (ContinuousClock.now - start).seconds
        let after = try? await HTTPGet.metrics(harness.url, group: harness.group)

        var result = RunResult()
        result.latency = harness.recorders.summaries().filter { $0.key == Series.resume.rawValue || $0.key == Series.handshake.rawValue }
        result.metrics["members"] = Double(seats.count)
        result.metrics["rooms"] = Double(built.count)
        result.metrics["seats_back"] = Double(results.filter(\.0).count)
        result.metrics["seconds_until_all_back"] = allBackSeconds
        result.metrics["server_sessions_away_after_drop"] = awayPeak
        if let after {
            result.metrics["server_sessions_away_after_resume"] = after["owp_sessions_away"] ?? -1
            result.metrics["server_rooms_active_after_resume"] = after["owp_rooms_active"] ?? -1
            let resumed = #"owp_session_resumes_total{way="token",result="resumed"}"#
            result.metrics["server_resumes_token_resumed"] = (after[resumed] ?? 0) - (before?[resumed] ?? 0)
            if let rss = after.residentBytes { result.metrics["server_rss_mib_after_resume"] = rss / 1_048_576 }
        }
        if let rss = before?.residentBytes { result.metrics["server_rss_mib_before_drop"] = rss / 1_048_576 }
        await harness.closeAll(results.compactMap(\.1))
        result.errors = counters.errors
        result.errorTotal = counters.errorTotal
        return result
    }
}
