#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Histogram
import NIOCore
import Synchronization

/// Time stamps of the generator.
enum BenchClock {
    /// Monotonic microseconds (CLOCK_MONOTONIC). Latency stamps travel in payloads and come back
    /// to this same process, so sender and receiver read the same clock.
    @inline(__always)
    static func micros() -> UInt64 {
        NIODeadline.now().uptimeNanoseconds / 1000
    }

    /// Wall-clock epoch milliseconds with sub-millisecond precision: the server's clock (same
    /// machine), to compare with `server_ts` / `target_server_ts`.
    static func wallMillis() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1_000_000
    }

    /// Epoch milliseconds as the protocol's integer `ts`.
    static func ts() -> Int {
        Int(wallMillis())
    }
}

/// Counters shared by every connection of a run (relaxed atomics: cheap from any loop).
final class BenchCounters: Sendable {
    let messagesSent = Atomic<Int>(0)
    let messagesReceived = Atomic<Int>(0)
    /// Latency-carrying messages that arrived (chat, player events, relayed state updates).
    let delivered = Atomic<Int>(0)
    /// Deliveries the protocol promises for what was sent (recipients per message).
    let expectedDeliveries = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
    let unexpectedCloses = Atomic<Int>(0)
    let connectFailures = Atomic<Int>(0)
    let socketErrors = Atomic<Int>(0)
    let binaryFrames = Atomic<Int>(0)
    let openConnections = Atomic<Int>(0)
    /// Set when the run winds down: closes after this are expected.
    let stopping = Atomic<Bool>(false)
    private let breakdown = Mutex<[String: Int]>([:])

    func protocolError(code: String) {
        protocolErrors.add(1, ordering: .relaxed)
        breakdown.withLock { $0["error_\(code)", default: 0] += 1 }
    }

    func unexpectedClose(code: UInt16?) {
        unexpectedCloses.add(1, ordering: .relaxed)
        breakdown.withLock { $0["closed_by_server_\(code.map(String.init) ?? "without_close_frame")", default: 0] += 1 }
    }

    func connectFailed(_ error: any Error) {
        connectFailures.add(1, ordering: .relaxed)
        let reason =
            switch error {
            case BenchError.handshakeRefused: "connect_refused_upgrade"
            case is ChannelError: "connect_channel_error"
            default: "connect_failed"
            }
        breakdown.withLock { $0[reason, default: 0] += 1 }
    }

    func socketError(_ error: any Error) {
        socketErrors.add(1, ordering: .relaxed)
        // e.g. "socket_error: read(…): Connection reset by peer (errno: 104)"
        let text = String(String(describing: error).prefix(80))
        breakdown.withLock { $0["socket_error: \(text)", default: 0] += 1 }
    }

    func unexpectedBinary() {
        binaryFrames.add(1, ordering: .relaxed)
        breakdown.withLock { $0["binary_frame", default: 0] += 1 }
    }

    func note(_ name: String, count: Int = 1) {
        breakdown.withLock { $0[name, default: 0] += count }
    }

    var errorTotal: Int {
        protocolErrors.load(ordering: .relaxed) + unexpectedCloses.load(ordering: .relaxed) + connectFailures.load(ordering: .relaxed)
            + socketErrors.load(ordering: .relaxed) + binaryFrames.load(ordering: .relaxed)
    }

    var errors: [String: Int] { breakdown.withLock { $0 } }
}

/// The latency series the scenarios record, in microseconds.
enum Series: String, CaseIterable, Sendable {
    /// Host send → guest receive, every kind (party).
    case delivery
    case playerEvent = "delivery_player_event"
    case chat = "delivery_chat"
    case stateUpdate = "delivery_state_update"
    /// Deliveries to a guest connected to another replica than its host (the room's owner), and
    /// to one on the owner itself: recorded only with several replicas (`--replica`).
    case crossReplica = "delivery_cross_replica"
    case sameReplica = "delivery_same_replica"
    /// Ping → pong round trip.
    case pingRTT = "ping_rtt"
    /// target_server_ts − arrival, in server time (how much of the schedule lead is left).
    case playMargin = "scheduled_play_margin"
    case controlMargin = "scheduled_control_margin"
    /// Sender → each member of the room, chat at the rate limit (fanout).
    case fanout = "fanout_delivery"
    /// TCP connect + WebSocket upgrade.
    case handshake
    /// A dropped member's way back: connect, `resume` with its token, its room's `room_state`.
    case resume
    /// A rolling restart: from the close of a member's connection to its resumed `room_state`
    /// (the back-off, every failed attempt and the way back included).
    case closeToResumed = "close_to_resumed_room_state"
    /// Its parts, per successful attempt: TCP connect and WebSocket upgrade, then the fresh
    /// `client_hello`, then `resume` sent → the room's `room_state`.
    case reconnectUpgrade = "reconnect_upgrade"
    case reconnectHello = "reconnect_client_hello"
    case resumeToRoomState = "resume_to_room_state"
}

/// HDR histograms (µs, 3 significant digits, up to 10 minutes), one per series. One recorder per
/// event loop keeps the lock uncontended; the run merges them for progress and the report.
final class Recorder: Sendable {
    static let highest: UInt64 = 600_000_000
    private let histograms = Mutex<[Histogram<UInt64>]>(Series.allCases.map { _ in Recorder.makeHistogram() })

    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    }

    @inline(__always)
    func record(_ series: Series, micros: UInt64) {
        let index = Series.allCases.firstIndex(of: series)!
        histograms.withLock { _ = $0[index].record(min(max(micros, 1), Recorder.highest)) }
    }

    func snapshot() -> [Histogram<UInt64>] { histograms.withLock { $0 } }
}

/// One recorder per event loop.
final class Recorders: Sendable {
    private let byLoop: [ObjectIdentifier: Recorder]
    let shared = Recorder()

    init(group: any EventLoopGroup) {
        var byLoop: [ObjectIdentifier: Recorder] = [:]
        for loop in group.makeIterator() { byLoop[ObjectIdentifier(loop)] = Recorder() }
        self.byLoop = byLoop
    }

    func recorder(for loop: any EventLoop) -> Recorder {
        byLoop[ObjectIdentifier(loop)] ?? shared
    }

    func merged() -> [Series: Histogram<UInt64>] {
        var result: [Series: Histogram<UInt64>] = [:]
        for (index, series) in Series.allCases.enumerated() {
            var total = Recorder.makeHistogram()
            for recorder in Array(byLoop.values) + [shared] {
                total.add(recorder.snapshot()[index])
            }
            result[series] = total
        }
        return result
    }

    func summaries() -> [String: LatencySummary] {
        var result: [String: LatencySummary] = [:]
        for (series, histogram) in merged() where histogram.totalCount > 0 {
            result[series.rawValue] = LatencySummary(histogram)
        }
        return result
    }
}

/// Percentiles of one series, in milliseconds.
struct LatencySummary: Codable, Sendable {
    var count: UInt64
    var mean_ms: Double
    var min_ms: Double
    var p50_ms: Double
    var p90_ms: Double
    var p99_ms: Double
    var p999_ms: Double
    var max_ms: Double

    init(_ histogram: Histogram<UInt64>) {
        func ms(_ micros: UInt64) -> Double { (Double(micros) / 1000 * 1000).rounded() / 1000 }
        count = histogram.totalCount
        mean_ms = (histogram.mean / 1000 * 1000).rounded() / 1000
        min_ms = ms(histogram.min)
        p50_ms = ms(histogram.valueAtPercentile(50))
        p90_ms = ms(histogram.valueAtPercentile(90))
        p99_ms = ms(histogram.valueAtPercentile(99))
        p999_ms = ms(histogram.valueAtPercentile(99.9))
        max_ms = ms(histogram.max)
    }
}

/// This process's resident memory and CPU time (for the generator's own cost).
enum SelfStats {
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// User + system CPU seconds used so far.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if canImport(Glibc)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
