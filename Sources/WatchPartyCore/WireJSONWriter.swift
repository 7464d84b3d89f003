/// Writes JSON text byte for byte as Foundation's `JSONEncoder` with `.sortedKeys` writes the
/// same values, without its cost (an intermediate tree, a dictionary per object, a sort per
/// object, existential boxes): the server encodes every message it sends once, and with
/// Foundation's encoder that was the largest share of its own CPU after the socket writes.
///
/// Guarantees (checked against `JSONEncoder` by `WireJSONTests` over every server message
/// kind and randomised strings, numbers and trees):
/// - strings: `"`, `\` and `/` escaped as `\"`, `\\`, `\/`; U+0008, U+0009, U+000A, U+000C and
///   U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; every other code point below U+0020 as `\u00xx`
///   (lower-case hex); everything else, DEL and U+2028 included, as its UTF-8 bytes;
/// - numbers: integers in decimal; a `Double` as its `description` with a trailing `.0`
///   dropped (`3`, `12.5`, `1e+21`, `-0`). Only finite values: every `Double` the server
///   writes is finite by construction (a parsed JSON number cannot be anything else);
/// - objects: the caller writes the keys in UTF-8 byte order (``object(_:)`` sorts a
///   dictionary's keys that way, as `JSONEncoder` does); no whitespace anywhere.
struct WireJSONWriter: Sendable {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// The text written so far.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Punctuation and literals, written as they are (`{`, `,`, `null`…).
    mutating func raw(_ literal: StaticString) {
        literal.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Text that is already JSON (a fragment written by this writer before).
    mutating func json(_ fragment: String) {
        bytes.append(contentsOf: fragment.utf8)
    }

    /// `"key":` — the key must need no escaping (the server's own field names).
    mutating func key(_ name: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "/") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                start = index + 1
                appendEscape(of: byte)
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func string(_ value: String?) {
        if let value { string(value) } else { raw("null") }
    }

    mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    mutating func int(_ value: some FixedWidthInteger) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            digits(of: value.magnitude)
        } else {
            digits(of: value.magnitude)
        }
    }

    mutating func int(_ value: (some FixedWidthInteger)?) {
        if let value { int(value) } else { raw("null") }
    }

    mutating func double(_ value: Double) {
        let description = value.description
        if description.utf8.count > 2, description.hasSuffix(".0") {
            bytes.append(contentsOf: description.utf8.dropLast(2))
        } else {
            bytes.append(contentsOf: description.utf8)
        }
    }

    /// Any parsed value, objects with their keys in UTF-8 byte order.
    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let bool): self.bool(bool)
        case .int(let int): self.int(int)
        case .double(let double): self.double(double)
        case .string(let string): self.string(string)
        case .array(let elements):
            raw("[")
            for (index, element) in elements.enumerated() {
                if index > 0 { raw(",") }
                self.value(element)
            }
            raw("]")
        case .object(let members): object(members)
        }
    }

    mutating func object(_ members: [String: JSONValue]) {
        raw("{")
        let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for (index, key) in keys.enumerated() {
            if index > 0 { raw(",") }
            string(key)
            raw(":")
            value(members[key]!)
        }
        raw("}")
    }

    private mutating func appendEscape(of byte: UInt8) {
        bytes.append(UInt8(ascii: "\\"))
        switch byte {
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x20...: bytes.append(byte)  // " \ /
        default:
            bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Self.hexDigit(byte >> 4), Self.hexDigit(byte & 0xF)])
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    private mutating func digits(of magnitude: some UnsignedInteger) {
        var value = UInt64(magnitude)
        guard value > 0 else {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var start = 20
            while value > 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<20]))
        }
    }
}
