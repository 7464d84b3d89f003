/// Validates UTF-8 (RFC 3629) as it arrives, in pieces of any size: a text message is judged
/// byte by byte, so invalid input fails the connection as soon as it is seen (RFC 6455 §8.1)
/// rather than once the whole message has been read.
///
/// Guarantees: `feed` returns false at the first byte that cannot be part of well-formed
/// UTF-8 (overlong forms, surrogates, code points above U+10FFFF, stray continuation bytes);
/// `isComplete` is false while a sequence is cut off at the end of what was fed.
struct UTF8Stream: Sendable, Equatable {
    /// Continuation bytes still expected for the current sequence.
    private var remaining = 0
    /// Bounds of the next continuation byte (narrower than 80...BF right after E0, ED, F0, F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    /// Whether no sequence is left unfinished.
    var isComplete: Bool { remaining == 0 }

    /// Feeds more bytes; false as soon as they cannot be UTF-8.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            index += 1
            if remaining == 0 {
                if byte < 0x80 { continue }
                switch byte {
                case 0xC2...0xDF: remaining = 1
                case 0xE0: (remaining, lower) = (2, 0xA0)
                case 0xE1...0xEC, 0xEE...0xEF: remaining = 2
                case 0xED: (remaining, upper) = (2, 0x9F)
                case 0xF0: (remaining, lower) = (3, 0x90)
                case 0xF1...0xF3: remaining = 3
                case 0xF4: (remaining, upper) = (3, 0x8F)
                default: return false  // 80...C1 (stray continuation, overlong) or F5...FF
                }
            } else {
                guard byte >= lower && byte <= upper else { return false }
                (lower, upper) = (0x80, 0xBF)
                remaining -= 1
            }
        }
        return true
    }

    mutating func feed(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { feed($0) }
    }
}
