import Foundation

/// The real `owp-server` binary (built by `swift build --build-tests`), run as a child process.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let output = Pipe()
    private(set) var port = 0
    private let log = LogBuffer()

    /// The debug binary next to the test bundle's build products.
    static var binary: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/owp-server")
    }

    /// `environment` is added to this process's own (e.g. `JWT_SECRET`, `LOG_LEVEL`).
    /// `descriptorLimit` runs it under `ulimit -n` (a small RLIMIT_NOFILE, for exhaustion tests).
    init(arguments: [String], environment: [String: String] = [:], descriptorLimit: Int? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            throw TestFailure("\(Self.binary.path) not built (run swift build --build-tests)")
        }
        let serverArguments = ["--host", "127.0.0.1", "--port", "0", "--allowed-origins", "*"] + arguments
        if let descriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(descriptorLimit) && exec \"$0\" \"$@\"", Self.binary.path] + serverArguments
        } else {
            process.executableURL = Self.binary
            process.arguments = serverArguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = output
        process.standardError = output
        let log = self.log
        output.fileHandleForReading.readabilityHandler = { handle in
            log.append(String(decoding: handle.availableData, as: UTF8.self))
        }
        try process.run()
    }

    /// Waits for the server's "Serving WebSocket and HTTP" line and reads the port from it.
    /// The log is read once more after the deadline: a test process whose threads were all busy
    /// may wake past it with the line long there.
    func waitUntilListening(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let stillRunning = process.isRunning
            if let port = Self.port(in: log.text, of: "Serving WebSocket and HTTP") {
                self.port = port
                return
            }
            guard stillRunning, ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("server did not start: \(log.text)")
    }

    /// The port in the server's own "`message`" line (`address=127.0.0.1:PORT` in text logs,
    /// `"address":"127.0.0.1:PORT"` in JSON ones).
    static func port(in log: String, of message: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains(message) {
            if let range = line.range(of: #"127\.0\.0\.1:\d+"#, options: .regularExpression) {
                return Int(line[range].split(separator: ":").last ?? "")
            }
        }
        return nil
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to exit; returns its status, or nil after `timeout`.
    func exitStatus(within timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    var logText: String { log.text }

    deinit {
        if process.isRunning { process.terminate() }
        output.fileHandleForReading.readabilityHandler = nil
    }

    /// GET `path`; returns the whole response, head and body.
    func httpResponse(_ path: String) async throws -> String {
        let port = self.port
        return try await offPool {
            let socket = try RawSocket(port: port)
            try socket.write(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
            return String(decoding: try socket.read(count: 1 << 22), as: UTF8.self)
        }
    }

    /// GET `path`; returns the status code.
    func httpStatus(_ path: String) async throws -> Int {
        let port = self.port
        return try await offPool {
            let socket = try RawSocket(port: port)
            let head = try socket.request("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
    }
}

final class LogBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = ""
    func append(_ text: String) { lock.withLock { buffer += text } }
    var text: String { lock.withLock { buffer } }
}
