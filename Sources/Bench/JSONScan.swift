#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Reads single fields out of a server message without decoding the whole object: the load
/// generator receives hundreds of thousands of messages a second on the same two cores as the
/// server, so it must spend as little as possible per message.
///
/// A field is found by its key pattern `"key":` (the leading quote keeps `"server_ts":` from
/// matching inside `"target_server_ts":`). The server writes compact JSON (JSONEncoder, no
/// spaces); keys used here occur once per message of the types they are read from.
enum JSONScan {
    /// Offset just past `"key":` in `bytes`, or nil.
    @inline(__always)
    static func valueStart(_ key: JSONKey, in bytes: UnsafeRawBufferPointer) -> Int? {
        key.pattern.withUnsafeBytes { needle -> Int? in
            guard let base = bytes.baseAddress, let first = needle.first, bytes.count >= needle.count else { return nil }
            var offset = 0
            let last = bytes.count - needle.count
            while offset <= last {
                // memchr to the next candidate, then compare the rest.
                guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return nil }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, needle.baseAddress!, needle.count) == 0 { return at + needle.count }
                offset = at + 1
            }
            return nil
        }
    }

    /// The string value of `key` (no unescaping: the values read here carry no escapes).
    static func string(_ key: JSONKey, in buffer: ByteBuffer) -> String? {
        buffer.withUnsafeReadableBytes { bytes -> String? in
            guard var index = valueStart(key, in: bytes), index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                index += 1
            }
            guard index <= bytes.count else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }
    }

    /// The numeric value of `key` (integer or decimal, optional exponent).
    static func number(_ key: JSONKey, in buffer: ByteBuffer) -> Double? {
        buffer.withUnsafeReadableBytes { bytes -> Double? in
            guard let start = valueStart(key, in: bytes) else { return nil }
            return parseNumber(bytes, from: start)
        }
    }

    static func parseNumber(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Double? {
        var index = start
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var integer: Double = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            integer = integer * 10 + Double(bytes[index] - 48)
            index += 1
            digits += 1
        }
        var value = integer
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale: Double = 0.1
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                value += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
                digits += 1
            }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            // Rare (JSONEncoder writes large or tiny doubles so): fall back to the standard parser.
            var end = index + 1
            while end < bytes.count, bytes[end] == UInt8(ascii: "-") || bytes[end] == UInt8(ascii: "+") || (bytes[end] >= 48 && bytes[end] <= 57) {
                end += 1
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            return Double(text)
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }

    /// The message's `type`.
    static func type(of buffer: ByteBuffer) -> String? {
        string(.type, in: buffer)
    }

    /// The message's type as one of the kinds the scenarios handle, without allocating.
    static func kind(of buffer: ByteBuffer) -> MessageKind {
        buffer.withUnsafeReadableBytes { bytes -> MessageKind in
            guard let start = valueStart(.type, in: bytes), start < bytes.count, bytes[start] == UInt8(ascii: "\"") else { return .other }
            var end = start + 1
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
            let name = UnsafeRawBufferPointer(rebasing: bytes[(start + 1)..<end])
            for kind in MessageKind.allCases where kind != .other {
                if name.elementsEqual(kind.rawValue.utf8) { return kind }
            }
            return .other
        }
    }
}

/// A key to look up, as its search pattern `"key":`.
struct JSONKey: Sendable, ExpressibleByStringLiteral {
    let pattern: [UInt8]
    init(stringLiteral name: String) { pattern = Array("\"\(name)\":".utf8) }

    static let type: JSONKey = "type"
    static let code: JSONKey = "code"
    static let text: JSONKey = "text"
    static let room: JSONKey = "room"
    static let client: JSONKey = "client"
    static let resumeToken: JSONKey = "resume_token"
    static let action: JSONKey = "action"
    static let position: JSONKey = "position"
    static let serverTS: JSONKey = "server_ts"
    static let targetServerTS: JSONKey = "target_server_ts"
    static let clientTS: JSONKey = "client_ts"
    static let playState: JSONKey = "play_state"
}

/// The server message types the scenarios react to.
enum MessageKind: String, CaseIterable, Sendable {
    case chatMessage = "chat_message"
    case playerEvent = "player_event"
    case stateUpdate = "state_update"
    case pong
    case error
    case participantStatuses = "participant_statuses"
    case other
}
