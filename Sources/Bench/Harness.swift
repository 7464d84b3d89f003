import Synchronization
import NIOCore
import NIOPosix

/// What every scenario shares: the server, the event loops, the counters and the histograms.
final class Harness: Sendable {
    let url: ServerURL
    /// Every server URL members are placed on: `url` first, then the other replicas (`--replica`).
    let replicas: [ServerURL]
    let group: any EventLoopGroup
    let loops: [any EventLoop]
    let counters = BenchCounters()
    let recorders: Recorders
    /// Share of connections that offer permessage-deflate (spread evenly over the connects).
    let deflateFraction: Double
    private let connects = Atomic<Int>(0)

    init(url: ServerURL, group: any EventLoopGroup, deflateFraction: Double = 0, replicas: [ServerURL] = []) {
        self.url = url
        self.replicas = [url] + replicas
        self.group = group
        self.loops = Array(group.makeIterator())
        self.recorders = Recorders(group: group)
        self.deflateFraction = deflateFraction
    }

    /// Whether the `index`-th connect offers deflate: ⌊(n+1)·f⌋ − ⌊n·f⌋, so any prefix of the
    /// connects has its share.
    func offersDeflate(_ index: Int) -> Bool {
        Int(Double(index + 1) * deflateFraction) > Int(Double(index) * deflateFraction)
    }

    func loop(_ index: Int) -> any EventLoop { loops[index % loops.count] }

    /// Connects one WebSocket on `loop` (counted: handshake time, failures, open connections).
    func connect(on loop: any EventLoop, replica: Int = 0) async throws -> BenchSocket {
        let start = BenchClock.micros()
        do {
            let deflate = offersDeflate(connects.wrappingAdd(1, ordering: .relaxed).oldValue)
            let socket = try await BenchSocket.connect(to: replicas[replica % replicas.count], on: loop, counters: counters, deflate: deflate)
            recorders.recorder(for: loop).record(.handshake, micros: BenchClock.micros() - start)
            return socket
        } catch {
            counters.connectFailed(error)
            throw error
        }
    }

    /// A room: the host creates it, the others join (and send `ready` when asked).
    struct BuiltRoom: Sendable {
        let index: Int
        let id: String
        let loop: any EventLoop
        /// The host first, then the guests in join order.
        let sockets: [BenchSocket]
        /// The replica (index into ``Harness/replicas``) each socket is connected to.
        var placement: [Int] = []
    }

    /// Where member `member` of room `index` connects: spread at random over the replicas (a
    /// fixed hash, so a run is reproducible), as a load balancer without affinity spreads them.
    func replica(room index: Int, member: Int) -> Int {
        guard replicas.count > 1 else { return 0 }
        var hash = UInt64(index) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(member) &* 0xC2B2_AE3D_27D4_EB4F
        hash ^= hash >> 29
        hash = hash &* 0xBF58_476D_1CE4_E5B9
        hash ^= hash >> 32
        return Int(hash % UInt64(replicas.count))
    }

    func buildRoom(index: Int, members: Int, ready: Bool, pacer: Pacer?) async throws -> BuiltRoom {
        let loop = loop(index)
        await pacer?.wait()
        let host = try await connect(on: loop, replica: replica(room: index, member: 0))
        host.sendFromAnywhere(#"{"type":"create_room","payload":{"name":"bench \#(index)","user_name":"host-\#(index)"},"ts":\#(BenchClock.ts())}"#)
        let state = try await host.expectFromAnywhere("room_state")
        guard let id = JSONScan.string(.room, in: state) else { throw BenchError.http("room_state without room") }
        let guests = try await withThrowingTaskGroup(of: (Int, BenchSocket).self) { group in
            for member in 1..<max(members, 1) {
                group.addTask {
                    await pacer?.wait()
                    let guest = try await self.connect(on: loop, replica: self.replica(room: index, member: member))
                    guest.sendFromAnywhere(
                        #"{"type":"join_room","room":"\#(id)","payload":{"user_name":"member-\#(index)-\#(member)"},"ts":\#(BenchClock.ts())}"#)
                    _ = try await guest.expectFromAnywhere("room_state")
                    if ready { guest.sendFromAnywhere(#"{"type":"ready","room":"\#(id)","ts":\#(BenchClock.ts())}"#) }
                    return (member, guest)
                }
            }
            var guests: [(Int, BenchSocket)] = []
            for try await guest in group { guests.append(guest) }
            return guests.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return BuiltRoom(index: index, id: id, loop: loop, sockets: [host] + guests, placement: (0..<max(members, 1)).map { replica(room: index, member: $0) })
    }

    /// Runs `body` for each index with at most `limit` at once; failures are counted, not thrown.
    func forEach<T: Sendable>(_ indices: Range<Int>, limit: Int, _ body: @escaping @Sendable (Int) async throws -> T) async -> [T] {
        await withTaskGroup(of: T?.self) { group in
            var results: [T] = []
            var next = indices.lowerBound
            func add() {
                let index = next
                next += 1
                group.addTask { try? await body(index) }
            }
            while next < indices.upperBound && next - indices.lowerBound < max(limit, 1) { add() }
            for await result in group {
                if let result { results.append(result) }
                if next < indices.upperBound { add() }
            }
            return results
        }
    }

    /// Closes every socket (a normal close handshake), waiting at most `timeout`; stragglers are dropped.
    func closeAll(_ sockets: [BenchSocket], timeout: TimeAmount = .seconds(10)) async {
        counters.stopping.store(true, ordering: .relaxed)
        for socket in sockets { socket.eventLoop.execute { socket.close() } }
        let all = EventLoopFuture.andAllComplete(sockets.map(\.closed), on: group.next())
        let deadline = group.next().scheduleTask(in: timeout) {
            for socket in sockets { socket.eventLoop.execute { socket.abort() } }
        }
        try? await all.get()
        deadline.cancel()
    }
}

/// Spaces connection attempts to a steady rate (the ramp).
actor Pacer {
    private let interval: Duration
    private var next = ContinuousClock.now

    init(perSecond rate: Double) {
        interval = .nanoseconds(Int64(1e9 / max(rate, 0.001)))
    }

    func wait() async {
        let now = ContinuousClock.now
        let slot = max(next, now)
        next = slot + interval
        if slot > now { try? await Task.sleep(until: slot, clock: .continuous) }
    }
}
