import Foundation
import HummingbirdWSClient
import HummingbirdWSCompression
import Logging
import NIOWebSocket
import Synchronization

/// A real WebSocket client for the live tests: connects, collects every server message, sends JSON.
final class LiveClient: Sendable {
    /// What the connection's own task shares with the test.
    private final class Shared: Sendable {
        let inbox = Mutex<[String]>([])
        let writer = Mutex<WebSocketOutboundWriter?>(nil)
    }

    private let shared = Shared()
    private let task: Task<WebSocketCloseFrame?, any Error>
    private let stop: AsyncStream<Void>.Continuation

    /// Connects to `ws://127.0.0.1:port/ws` (optionally offering permessage-deflate).
    init(port: Int, path: String = "/ws", compression: Bool = false) async throws {
        let (ready, readySink) = AsyncStream<Void>.makeStream()
        let (stopStream, stop) = AsyncStream<Void>.makeStream()
        self.stop = stop
        let shared = self.shared
        let configuration = WebSocketClientConfiguration(
            maxFrameSize: 1 << 20,
            extensions: compression ? [.perMessageDeflate(maxDecompressedFrameSize: 1 << 20)] : []
        )
        task = Task {
            defer { readySink.finish() }
            return try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)\(path)", configuration: configuration, logger: Logger(label: "test-client")) { inbound, outbound, _ in
                shared.writer.withLock { $0 = outbound }
                readySink.yield()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            if case .text(let text) = message {
                                shared.inbox.withLock { $0.append(text) }
                            }
                        }
                    }
                    group.addTask {
                        for await _ in stopStream { break }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
        for await _ in ready { break }
        guard shared.writer.withLock({ $0 != nil }) else {
            let failure = await task.result
            throw TestFailure("could not connect: \(failure)")
        }
    }

    /// Sends a client message; `ts` is added when missing.
    func send(_ object: [String: Any]) async throws {
        var object = object
        if object["ts"] == nil { object["ts"] = Int(Date().timeIntervalSince1970 * 1000) }
        let data = try JSONSerialization.data(withJSONObject: object)
        try await sendRaw(String(decoding: data, as: UTF8.self))
    }

    func sendRaw(_ text: String) async throws {
        guard let outbound = shared.writer.withLock({ $0 }) else { throw TestFailure("not connected") }
        try await outbound.write(.text(text))
    }

    func sendBinary(_ bytes: [UInt8]) async throws {
        guard let outbound = shared.writer.withLock({ $0 }) else { throw TestFailure("not connected") }
        try await outbound.write(.binary(.init(bytes: bytes)))
    }

    /// The next server message as raw text, or a failure after `timeout`.
    func nextText(timeout: Duration = .seconds(5)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {  // the inbox is looked at once more after the deadline: a starved test wakes late
            if let text = shared.inbox.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return text }
            if task.isCancelled || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestFailure("timed out waiting for a message")
    }

    /// The next server message, decoded.
    func next(timeout: Duration = .seconds(5)) async throws -> [String: Any] {
        let text = try await nextText(timeout: timeout)
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(text)")
        }
        return object
    }

    /// The next message of `type`, skipping others. A timeout names the type waited for and
    /// what was skipped meanwhile (an error's code with it), so a failure says what came instead.
    func next(_ type: String, timeout: Duration = .seconds(5)) async throws -> [String: Any] {
        var skipped: [String] = []
        while true {
            let message: [String: Any]
            do {
                message = try await next(timeout: timeout)
            } catch let failure as TestFailure {
                throw TestFailure("\(failure.description) of type \(type); skipped meanwhile: \(skipped)")
            }
            let received = message["type"] as? String ?? "?"
            if received == type { return message }
            let code = (message["payload"] as? [String: Any])?["code"] as? String
            skipped.append(code.map { "\(received) \($0)" } ?? received)
        }
    }

    /// Messages received and not yet read.
    var pendingCount: Int { shared.inbox.withLock { $0.count } }

    /// Closes from our side and returns the server's close frame, if any.
    ///
    /// Under load the client library sometimes ends the handler we stopped with a
    /// `CancellationError` instead of the close handshake's frame; the connection is closed all
    /// the same, so that is "no frame", not a failure of the test.
    @discardableResult
    func close() async throws -> WebSocketCloseFrame? {
        stop.yield()
        do {
            return try await task.value
        } catch is CancellationError {
            return nil
        }
    }

    /// Waits for the server to close the connection; returns its close frame.
    func closeFrame(timeout: Duration = .seconds(10)) async throws -> WebSocketCloseFrame? {
        let task = self.task
        return try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
            group.addTask { try await task.value }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestFailure("server did not close the connection")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
