import Foundation
import NIOCore
import Synchronization

/// One `owp-server` process the generator started itself (the `rolling` scenario replaces
/// replicas while members are connected to them). Its output goes to a log file.
///
/// Spawned *parked*: a shell that waits for a line on its stdin and then `exec`s the server
/// (same pid), so that every process is spawned before the members' thousands of sockets are
/// open — Foundation's `Process.run` crashed in one run of twenty when called with them open —
/// and ``launch()`` at rollout time only writes a line.
final class ReplicaProcess: Sendable {
    let name: String
    let url: ServerURL
    let logPath: String
    private let process: Mutex<Process>
    private let starter: FileHandle

    /// Parks `binary` for 127.0.0.1:`port` with the shared store at `databaseURL`, its limits
    /// raised for load from one address, logging at `info` into `logDirectory/name.log`.
    init(binary: String, databaseURL: String, port: Int, name: String, logDirectory: String) throws {
        self.name = name
        self.url = try ServerURL("ws://127.0.0.1:\(port)/ws")
        self.logPath = (logDirectory as NSString).appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw BenchError.http("cannot write \(logPath)") }
        let process = Process()
        let stdin = Pipe()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", #"read go && exec "$0" "$@""#, binary,
            "--host", "127.0.0.1", "--port", String(port), "--allowed-origins", "*",
            "--max-connections", "20000", "--max-connections-per-ip", "20000", "--log-level", "info",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        process.environment = environment
        process.standardInput = stdin
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = Mutex(process)
        self.starter = stdin.fileHandleForWriting
    }

    /// The parked shell becomes the server.
    func launch() throws {
        try starter.write(contentsOf: Data("go\n".utf8))
    }

    var isRunning: Bool { process.withLock { $0.isRunning } }

    /// Waits until the replica answers `/readyz` and its log says it listens on the bus (only
    /// then can the other replicas relay to it), or fails after `timeout`.
    func waitReady(group: any EventLoopGroup, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        var ready = false
        while ContinuousClock.now < deadline {
            guard isRunning else { throw BenchError.http("\(name) exited at start (see \(logPath))") }
            if !ready { ready = (try? await HTTPGet.get(url, path: "/readyz", group: group)) != nil }
            if ready, let log = try? String(contentsOfFile: logPath, encoding: .utf8), log.contains("Bus: listening") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError.timeout("\(name) ready and listening on the bus")
    }

    /// SIGTERM (a drain: PROTOCOL.md §11), then waits for the exit; SIGKILL past `timeout`.
    /// Returns how long the drain took, in seconds.
    func terminate(timeout: Duration = .seconds(40)) async -> Double {
        let start = ContinuousClock.now
        process.withLock { if $0.isRunning { $0.terminate() } }
        while isRunning && ContinuousClock.now - start < timeout {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if isRunning {
            _ = process.withLock { kill($0.processIdentifier, SIGKILL) }
            while isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return (ContinuousClock.now - start).seconds
    }
}

/// The Service in front of the replicas: the running ones, a connection goes to one at random.
final class Balancer: Sendable {
    private let state: Mutex<(live: [ServerURL], random: SplitMix)>

    init(_ live: [ServerURL], seed: UInt64) {
        state = Mutex((live, SplitMix(seed: seed)))
    }

    func pick() -> ServerURL? {
        state.withLock { state in
            guard !state.live.isEmpty else { return nil }
            return state.live[Int(state.random.next() % UInt64(state.live.count))]
        }
    }

    /// `new` takes `old`'s place behind the Service (a new pod ready, the old one terminating).
    func replace(_ old: ServerURL, with new: ServerURL) {
        state.withLock { state in
            state.live.removeAll { $0.description == old.description }
            state.live.append(new)
        }
    }
}

/// SplitMix64: the balancer's reproducible choices.
struct SplitMix: Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
