/// Why a text is not JSON the server accepts (see ``StrictJSONParser``).
public enum JSONSyntaxError: Error, Sendable, Equatable {
    /// The grammar of RFC 8259 is broken at this byte offset (trailing commas, comments,
    /// single quotes, `NaN`, unquoted keys, leading zeros, control characters in strings, …).
    case unexpected(offset: Int)
    /// An object or array opens deeper than the parser's depth limit, at this offset.
    case tooDeep(offset: Int)
    /// An object names the same member twice; the key is not echoed (it is client data).
    case duplicateKey(offset: Int)
    /// A number that no `Double` holds (e.g. `1e999`).
    case numberOutOfRange(offset: Int)
    /// The bytes of a string are not UTF-8.
    case invalidUTF8(offset: Int)
}

/// A strict RFC 8259 parser from UTF-8 bytes to ``JSONValue``.
///
/// Guarantees:
/// - Accepts exactly the JSON text of RFC 8259: no trailing commas, comments, single quotes,
///   `NaN`/`Infinity`, hexadecimal or `+` numbers, byte-order mark or JSON5 of any kind.
/// - Work is linear in the input: one pass, each byte looked at a bounded number of times.
/// - Nesting deeper than `maxDepth` is refused at the first bracket past it, before anything
///   after that bracket is read; recursion is bounded by `maxDepth`, so no input can exhaust
///   the stack.
/// - An object with a repeated member name is refused (RFC 8259 §4 leaves the meaning of
///   duplicates open; refusing them means no two readers of one message can disagree).
/// - Integers without fraction or exponent that fit `Int64` become `.int`; every other number
///   becomes a finite `.double`.
/// - A `\u` escape of a lone UTF-16 surrogate becomes U+FFFD (what JavaScript's
///   `JSON.stringify` emits for a string cut in the middle of an emoji).
public struct StrictJSONParser: Sendable {
    /// The protocol's default: an envelope is two levels deep, and no payload needs more than a few.
    public static let defaultMaxDepth = 32

    public let maxDepth: Int

    public init(maxDepth: Int = StrictJSONParser.defaultMaxDepth) {
        precondition(maxDepth >= 1, "a JSON text needs at least one level")
        self.maxDepth = maxDepth
    }

    public func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        var text = text
        return try text.withUTF8 { bytes in Result { () throws(JSONSyntaxError) in try parse(bytes) } }.get()
    }

    public func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { bytes in Result { () throws(JSONSyntaxError) in try parse(bytes) } }.get()
    }

    public func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> JSONValue {
        var reader = Reader(bytes: bytes, maxDepth: maxDepth)
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.atEnd else { throw .unexpected(offset: reader.offset) }
        return value
    }
}

extension StrictJSONParser {
    /// The cursor over the input; every method consumes what it recognises.
    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        let maxDepth: Int
        var offset = 0

        init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        var atEnd: Bool { offset >= bytes.count }

        var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == .space || byte == .tab || byte == .lineFeed || byte == .carriageReturn {
                offset += 1
            }
        }

        mutating func expect(_ byte: UInt8) throws(JSONSyntaxError) {
            guard current == byte else { throw .unexpected(offset: offset) }
            offset += 1
        }

        /// One value; `depth` is the number of containers around it.
        mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard let byte = current else { throw .unexpected(offset: offset) }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw .unexpected(offset: offset)
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
            let count = word.utf8CodeUnitCount
            guard bytes.count - offset >= count else { throw .unexpected(offset: offset) }
            for index in 0..<count where bytes[offset + index] != word.utf8Start[index] {
                throw .unexpected(offset: offset + index)
            }
            offset += count
        }

        mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard depth <= maxDepth else { throw .tooDeep(offset: offset) }
            offset += 1  // {
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                offset += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                let keyOffset = offset
                guard current == UInt8(ascii: "\"") else { throw .unexpected(offset: offset) }
                let key = try string()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                let member = try value(depth: depth)
                guard members.updateValue(member, forKey: key) == nil else { throw .duplicateKey(offset: keyOffset) }
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): offset += 1
                case UInt8(ascii: "}"): offset += 1; return .object(members)
                default: throw .unexpected(offset: offset)
                }
            }
        }

        mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard depth <= maxDepth else { throw .tooDeep(offset: offset) }
            offset += 1  // [
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                offset += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth))
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): offset += 1
                case UInt8(ascii: "]"): offset += 1; return .array(elements)
                default: throw .unexpected(offset: offset)
                }
            }
        }

        /// A string token, from its opening quote; escapes decoded.
        mutating func string() throws(JSONSyntaxError) -> String {
            offset += 1  // "
            let start = offset
            // Fast path: no escapes, the bytes are the string.
            while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                guard byte >= 0x20 else { throw .unexpected(offset: offset) }
                offset += 1
            }
            guard let stop = current else { throw .unexpected(offset: offset) }
            if stop == UInt8(ascii: "\"") {
                let text = try utf8String(UnsafeBufferPointer(rebasing: bytes[start..<offset]), at: start)
                offset += 1
                return text
            }
            var decoded = Array(bytes[start..<offset])
            while true {
                guard let byte = current else { throw .unexpected(offset: offset) }
                switch byte {
                case UInt8(ascii: "\""):
                    offset += 1
                    return try decoded.withUnsafeBufferPointer { buffer in Result { () throws(JSONSyntaxError) in try utf8String(buffer, at: start) } }.get()
                case UInt8(ascii: "\\"):
                    offset += 1
                    try escape(into: &decoded)
                case ..<0x20:
                    throw .unexpected(offset: offset)
                default:
                    decoded.append(byte)
                    offset += 1
                }
            }
        }

        /// One escape after its backslash (RFC 8259 §7).
        mutating func escape(into decoded: inout [UInt8]) throws(JSONSyntaxError) {
            guard let byte = current else { throw .unexpected(offset: offset) }
            offset += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(byte)
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(.lineFeed)
            case UInt8(ascii: "r"): decoded.append(.carriageReturn)
            case UInt8(ascii: "t"): decoded.append(.tab)
            case UInt8(ascii: "u"):
                let unit = try hexQuad()
                var scalar = Unicode.Scalar(0xFFFD as UInt32)!
                if (0xD800...0xDBFF).contains(unit) {
                    // A high surrogate counts only with a low one right after it.
                    if bytes.count - offset >= 6, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") {
                        let saved = offset
                        offset += 2
                        let low = try hexQuad()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = Unicode.Scalar(0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00))!
                        } else {
                            offset = saved  // not a pair: the next escape stands on its own
                        }
                    }
                } else if let single = Unicode.Scalar(UInt32(unit)) {
                    scalar = single  // a lone low surrogate has no scalar and stays U+FFFD
                }
                decoded.append(contentsOf: UTF8.encode(scalar)!)
            default:
                throw .unexpected(offset: offset - 1)
            }
        }

        mutating func hexQuad() throws(JSONSyntaxError) -> UInt16 {
            guard bytes.count - offset >= 4 else { throw .unexpected(offset: offset) }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw .unexpected(offset: offset)
                }
                value = value << 4 | UInt16(digit)
                offset += 1
            }
            return value
        }

        func utf8String(_ buffer: UnsafeBufferPointer<UInt8>, at start: Int) throws(JSONSyntaxError) -> String {
            guard let text = String(validating: buffer, as: UTF8.self) else { throw .invalidUTF8(offset: start) }
            return text
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` (RFC 8259 §6).
        mutating func number() throws(JSONSyntaxError) -> JSONValue {
            let start = offset
            if current == UInt8(ascii: "-") { offset += 1 }
            switch current ?? 0 {
            case UInt8(ascii: "0"):
                offset += 1
            case UInt8(ascii: "1")...UInt8(ascii: "9"):
                skipDigits()
            default:
                throw .unexpected(offset: offset)
            }
            var integral = true
            if current == UInt8(ascii: ".") {
                integral = false
                offset += 1
                guard skipAtLeastOneDigit() else { throw .unexpected(offset: offset) }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                integral = false
                offset += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { offset += 1 }
                guard skipAtLeastOneDigit() else { throw .unexpected(offset: offset) }
            }
            let token = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
            if integral, let int = Int64(token) { return .int(int) }
            guard let double = Double(token), double.isFinite else { throw .numberOutOfRange(offset: start) }
            return .double(double)
        }

        mutating func skipDigits() {
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { offset += 1 }
        }

        mutating func skipAtLeastOneDigit() -> Bool {
            let before = offset
            skipDigits()
            return offset > before
        }
    }
}

extension UInt8 {
    fileprivate static let space = UInt8(ascii: " ")
    fileprivate static let tab = UInt8(ascii: "\t")
    fileprivate static let lineFeed = UInt8(ascii: "\n")
    fileprivate static let carriageReturn = UInt8(ascii: "\r")
}
