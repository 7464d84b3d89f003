import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A bare TCP WebSocket client that does only what a test tells it: used to inspect the raw
/// upgrade response and to play a client that stops reading (a slow reader).
///
/// Its calls block, so tests call them through ``offPool(_:)``: a blocked cooperative
/// thread would starve the in-process server of the threads it needs to answer.
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    /// Connects to 127.0.0.1:port; `receiveBuffer` shrinks the kernel receive buffer (slow readers).
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw TestFailure("connect() failed") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    private let closedByReset = Mutex(false)

    deinit {
        if !closedByReset.withLock({ $0 }) { Glibc.close(fd) }
    }

    /// Aborts the connection with a TCP reset (SO_LINGER 0, then close): no FIN, no close frame.
    func reset() {
        closedByReset.withLock { closed in
            guard !closed else { return }
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            Glibc.close(fd)
            closed = true
        }
    }

    /// Ends the connection now (FIN); the descriptor itself is closed once, in deinit, so it is
    /// never closed twice (a reused number may belong to the server by then).
    func hangUp() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Sends the upgrade request and returns the response head (status line and headers).
    func upgrade(path: String = "/ws", extraHeaders: [String] = []) throws -> String {
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for header in extraHeaders { request += header + "\r\n" }
        request += "\r\n"
        return try self.request(request)
    }

    /// Sends a raw HTTP request and returns the response head.
    func request(_ request: String) throws -> String {
        try write(Array(request.utf8))
        var head: [UInt8] = []
        while !head.ends(with: Array("\r\n\r\n".utf8)) {
            guard let byte = try read(count: 1).first else { throw TestFailure("closed during upgrade") }
            head.append(byte)
        }
        return String(decoding: head, as: UTF8.self)
    }

    /// Sends one masked text frame.
    func sendText(_ text: String) throws {
        try write(Self.textFrame(text))
    }

    /// Sends masked text frames in one write (so the server reads them together).
    func sendTexts(_ texts: [String]) throws {
        try write(texts.flatMap(Self.textFrame))
    }

    static func textFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame.append(0x80 | 126)
            frame.append(UInt8(payload.count >> 8))
            frame.append(UInt8(payload.count & 0xFF))
        }
        let mask: [UInt8] = [1, 2, 3, 4]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return frame
    }

    /// Reads server frames until the socket ends; returns their (opcode, payload) pairs.
    func readFramesUntilClosed() throws -> [(opcode: UInt8, payload: [UInt8])] {
        try readFrames { _ in false }
    }

    /// Reads server frames until `enough` says so (given what was read), or a close, or the end.
    func readFrames(until enough: ([(opcode: UInt8, payload: [UInt8])]) -> Bool) throws -> [(opcode: UInt8, payload: [UInt8])] {
        var frames: [(UInt8, [UInt8])] = []
        while !enough(frames) {
            guard let header = try? read(count: 2), header.count == 2 else { return frames }
            var length = Int(header[1] & 0x7F)
            if length == 126 {
                let extended = try read(count: 2)
                length = Int(extended[0]) << 8 | Int(extended[1])
            } else if length == 127 {
                let extended = try read(count: 8)
                length = extended.reduce(0) { $0 << 8 | Int($1) }
            }
            let payload = try read(count: length)
            frames.append((header[0] & 0x0F, payload))
            if header[0] & 0x0F == 0x8 { return frames }
        }
        return frames
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw TestFailure("send() failed") }
            offset += sent
        }
    }

    /// Reads exactly `count` bytes (fewer only at end of stream).
    func read(count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: max(1, count))
        while result.count < count {
            let received = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, count - result.count, 0) }
            if received == 0 { break }
            guard received > 0 else { throw TestFailure("recv() failed: errno \(errno)") }
            result += buffer[0..<received]
        }
        return result
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}

/// Runs blocking work on a plain thread instead of the Swift concurrency pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// The envelope of a server message read off a ``RawSocket``.
struct RawMessage: Sendable {
    var type: String?
    var client: String?
    var room: String?

    init?(_ payload: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else { return nil }
        type = object["type"] as? String
        client = object["client"] as? String
        room = object["room"] as? String
    }
}

extension RawSocket {
    /// A member on a raw socket, which a test can reset: upgraded, `texts` sent, and read up to
    /// the first message of `type`; with the envelopes read on the way.
    static func member(port: Int, sending texts: [String], through type: String = "room_state") async throws -> (socket: RawSocket, messages: [RawMessage]) {
        let socket = try RawSocket(port: port)
        _ = try await offPool { try socket.upgrade() }
        try socket.sendTexts(texts)
        let messages = try await offPool { try socket.readMessages(through: type) }
        return (socket, messages)
    }

    /// Reads server frames until a text message of `type` arrives; returns the text messages' envelopes.
    func readMessages(through type: String) throws -> [RawMessage] {
        var messages: [RawMessage] = []
        _ = try readFrames { frames in
            messages = frames.filter { $0.opcode == 0x1 }.compactMap { RawMessage($0.payload) }
            return messages.last?.type == type
        }
        return messages
    }
}
