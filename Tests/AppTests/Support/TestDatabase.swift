import Foundation
import Logging
import PostgresNIO
import Synchronization

@testable import App

/// A real PostgreSQL for the tests that claim replica behaviour (PROTOCOL.md §14) — never a mock.
///
/// `OWP_TEST_DATABASE_URL` names one (its user must be allowed to create databases); without
/// it, a throw-away cluster is started once per test process by `scripts/pg_throwaway.sh`
/// and stopped when the process exits. Each test gets a database of its own
/// (``fresh()``), so tests running in parallel never see each other's rows. Where no
/// PostgreSQL server binaries exist the tests that need one are skipped — unless
/// `OWP_REQUIRE_POSTGRES=1` (CI sets it), in which case they fail.
enum TestDatabase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let script = repository.appendingPathComponent("scripts/pg_throwaway.sh").path

    static var required: Bool { ProcessInfo.processInfo.environment["OWP_REQUIRE_POSTGRES"] == "1" }

    /// Whether the PostgreSQL tests run here (they fail rather than skip when ``required``).
    static var enabled: Bool {
        required || ProcessInfo.processInfo.environment["OWP_TEST_DATABASE_URL"] != nil || serverBinariesExist
    }

    static var serverBinariesExist: Bool {
        if let dir = ProcessInfo.processInfo.environment["PG_BINDIR"] { return FileManager.default.isExecutableFile(atPath: dir + "/initdb") }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.contains { FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\($0)/bin/initdb") }
    }

    private static let shared = Mutex<Result<String, TestFailure>?>(nil)

    /// The server every test database lives on (started on first use).
    static func serverURL() throws -> String {
        try shared.withLock { cached in
            if let cached { return try cached.get() }
            let result: Result<String, TestFailure>
            if let url = ProcessInfo.processInfo.environment["OWP_TEST_DATABASE_URL"] {
                result = .success(url)
            } else {
                result = Result { try Cluster.start().url }.mapError { $0 as? TestFailure ?? TestFailure("\($0)") }
                if case .success = result { atexit { Cluster.stopShared() } }
            }
            cached = result
            return try result.get()
        }
    }

    /// A new, empty database on the test server; its URL.
    static func fresh() async throws -> String {
        // Off the concurrency pool: the first call starts the cluster (seconds of initdb) under a
        // lock the others wait on, which would otherwise block the pool's threads and starve
        // every other test running meanwhile.
        let server = try await offPool { try serverURL() }
        let name = "owp_t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        try await withClient(url: server) { client in
            try await client.query("CREATE DATABASE \(unescaped: name)")
        }
        return replacingDatabase(in: server, with: name)
    }

    static func replacingDatabase(in url: String, with name: String) -> String {
        var components = URLComponents(string: url)!
        components.path = "/" + name
        return components.string!
    }

    /// Runs `body` with a client connected to `url` (the client runs for the body's duration).
    @discardableResult
    static func withClient<T: Sendable>(url: String, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let settings = try DatabaseSettings(url: url)
        let client = PostgresClient(configuration: settings.clientConfiguration())
        let running = Task { await client.run() }
        defer { running.cancel() }
        return try await body(client)
    }

    /// A cluster of the tests' own, in a temporary directory.
    struct Cluster: Sendable {
        let directory: String
        let url: String

        private static let sharedDirectory = Mutex<String?>(nil)

        static func start() throws -> Cluster {
            let directory = NSTemporaryDirectory() + "owp-test-pg-\(getpid())-\(UUID().uuidString.prefix(8))"
            let url = try run([script, "start", directory]).trimmingCharacters(in: .whitespacesAndNewlines)
            guard url.hasPrefix("postgres://") else { throw TestFailure("pg_throwaway.sh printed no URL: \(url)") }
            sharedDirectory.withLock { if $0 == nil { $0 = directory } }
            return Cluster(directory: directory, url: url)
        }

        func stop() { _ = try? Cluster.run([TestDatabase.script, "stop", directory]) }
        func start() throws { _ = try Cluster.run([TestDatabase.script, "restart", directory]) }

        static func stopShared() {
            guard let directory = sharedDirectory.withLock({ $0 }) else { return }
            _ = try? run([TestDatabase.script, "stop", directory])
            try? FileManager.default.removeItem(atPath: directory)
        }

        /// Runs the script; its standard output. Output goes through files, not pipes: the
        /// database server it starts inherits descriptors and would hold a pipe open forever.
        @discardableResult
        static func run(_ arguments: [String]) throws -> String {
            let base = NSTemporaryDirectory() + "owp-pg-run-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
            _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
            defer {
                try? FileManager.default.removeItem(atPath: base + ".out")
                try? FileManager.default.removeItem(atPath: base + ".err")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
            process.standardError = FileHandle(forWritingAtPath: base + ".err")
            try process.run()
            // Polled: waitUntilExit can miss the end of a child whose own children live on.
            let deadline = Date().addingTimeInterval(120)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            guard !process.isRunning else {
                process.terminate()
                throw TestFailure("\(arguments.joined(separator: " ")) did not finish in 120 s")
            }
            let text = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
            guard process.terminationStatus == 0 else {
                let problems = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
                throw TestFailure("\(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(problems)")
            }
            return text
        }
    }
}
