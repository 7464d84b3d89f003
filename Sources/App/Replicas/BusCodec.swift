import Foundation
import WatchPartyCore

/// The bus's wire form (PROTOCOL.md §14): a ``BusBatch`` as JSON, the very JSON `Codable`
/// writes and reads, so that replicas of two versions side by side in a rolling update read
/// each other. The frames on every message's path — ``BusFrame/deliver(connections:text:)``,
/// ``BusFrame/input(connection:text:)``, ``BusFrame/roundTrip(connection:milliseconds:)`` and
/// ``BusFrame/gone(connection:)`` — are written and read by hand (Foundation's coders cost a
/// replica about a seventh of its CPU under a spread party); every other frame, and any batch
/// holding one, goes through `JSONEncoder` / `JSONDecoder`.
///
/// Guarantees: ``encode(_:)`` of any frame is read back by `JSONDecoder` as the same
/// frame, and ``decodeBatch(_:)`` reads whatever `JSONEncoder` writes (`BusCodecTests`).
enum BusCodec {
    /// One frame's JSON (an encoder is made only for the rare frames not written by hand).
    static func encode(_ frame: BusFrame) throws -> String {
        switch frame {
        case .deliver(let connections, let text):
            var out = #"{"deliver":{"connections":["#
            for (index, connection) in connections.enumerated() {
                if index > 0 { out += "," }
                appendString(connection, to: &out)
            }
            out += #"],"text":"#
            appendString(text, to: &out)
            out += "}}"
            return out
        case .input(let connection, let text):
            var out = #"{"input":{"connection":"#
            appendString(connection, to: &out)
            out += #","text":"#
            appendString(text, to: &out)
            out += "}}"
            return out
        case .roundTrip(let connection, let milliseconds):
            var out = #"{"roundTrip":{"connection":"#
            appendString(connection, to: &out)
            out += #","milliseconds":\#(milliseconds)}}"#
            return out
        case .gone(let connection):
            var out = #"{"gone":{"connection":"#
            appendString(connection, to: &out)
            out += "}}"
            return out
        default:
            return String(decoding: try JSONEncoder().encode(frame), as: UTF8.self)
        }
    }

    /// `text` as a JSON string literal (RFC 8259 §7): quote, backslash and the control
    /// characters escaped, everything else as it is (a Swift string is valid UTF-8).
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        var plain = text.utf8.startIndex
        let utf8 = text.utf8
        var index = plain
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 {
                out.append(contentsOf: Substring(utf8[plain..<index]))
                switch byte {
                case UInt8(ascii: "\""): out += "\\\""
                case UInt8(ascii: "\\"): out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out += "\\u00" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
                }
                plain = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        out.append(contentsOf: Substring(utf8[plain..<utf8.endIndex]))
        out += "\""
    }

    /// A notification's batch, or `nil` if it is not one.
    static func decodeBatch(_ text: String) -> BusBatch? {
        if let batch = decodeByHand(text) { return batch }
        return try? JSONDecoder().decode(BusBatch.self, from: Data(text.utf8))
    }

    /// The batch read with the protocol's own parser, if every frame in it is one of the four
    /// written by hand; `nil` otherwise (the caller falls back to `JSONDecoder`).
    private static func decodeByHand(_ text: String) -> BusBatch? {
        guard let value = try? parser.parse(text), let object = value.object,
            let from = object["from"]?.string, case .int(let sentAt)? = object["sentAt"], let items = object["frames"]?.array
        else { return nil }
        var frames: [BusFrame] = []
        frames.reserveCapacity(items.count)
        for item in items {
            guard let frame = handFrame(item) else { return nil }
            frames.append(frame)
        }
        return BusBatch(from: from, sentAt: sentAt, frames: frames)
    }

    private static func handFrame(_ item: JSONValue) -> BusFrame? {
        guard let object = item.object, object.count == 1, let (kind, body) = object.first, let fields = body.object else { return nil }
        switch kind {
        case "deliver":
            guard fields.count == 2, let list = fields["connections"]?.array, let text = fields["text"]?.string else { return nil }
            var connections: [ClientID] = []
            connections.reserveCapacity(list.count)
            for entry in list {
                guard let connection = entry.string else { return nil }
                connections.append(connection)
            }
            return .deliver(connections: connections, text: text)
        case "input":
            guard fields.count == 2, let connection = fields["connection"]?.string, let text = fields["text"]?.string else { return nil }
            return .input(connection: connection, text: text)
        case "roundTrip":
            guard fields.count == 2, let connection = fields["connection"]?.string, case .int(let milliseconds)? = fields["milliseconds"], milliseconds >= 0
            else { return nil }
            return .roundTrip(connection: connection, milliseconds: UInt64(milliseconds))
        case "gone":
            guard fields.count == 1, let connection = fields["connection"]?.string else { return nil }
            return .gone(connection: connection)
        default:
            return nil
        }
    }

    /// Deep enough for a batch (object → frames → frame → body → connections), no deeper.
    private static let parser = StrictJSONParser(maxDepth: 8)
}
