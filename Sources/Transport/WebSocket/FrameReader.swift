import NIOCore

/// Reads a client's WebSocket frames (RFC 6455 §5.2) from the byte stream as it arrives: each
/// header once it is complete, then its payload in whatever pieces the network delivers,
/// already unmasked, then the frame's end. Nothing waits for a whole frame, so a handler can
/// judge a frame by its header (masking, reserved bits, length) before its payload arrives,
/// and validate a text payload piece by piece.
///
/// Guarantees: never buffers a payload (pieces are slices of the input); never reads past
/// the bytes it was given; a 64-bit length with its top bit set is refused (§5.2).
struct FrameReader: Sendable {
    struct Header: Sendable, Equatable {
        var fin: Bool
        var rsv1: Bool
        var rsv2: Bool
        var rsv3: Bool
        /// The raw 4-bit opcode (reserved values included: the handler refuses them).
        var opcode: UInt8
        /// `nil` for an unmasked frame (a client must mask every frame, §5.1).
        var maskKey: (UInt8, UInt8, UInt8, UInt8)?
        var length: UInt64

        var isControl: Bool { opcode & 0x8 != 0 }

        static func == (lhs: Header, rhs: Header) -> Bool {
            lhs.fin == rhs.fin && lhs.rsv1 == rhs.rsv1 && lhs.rsv2 == rhs.rsv2 && lhs.rsv3 == rhs.rsv3 && lhs.opcode == rhs.opcode
                && lhs.length == rhs.length && lhs.maskKey.map { [$0.0, $0.1, $0.2, $0.3] } == rhs.maskKey.map { [$0.0, $0.1, $0.2, $0.3] }
        }
    }

    enum Event: Sendable {
        case header(Header)
        /// The next piece of the current frame's payload, unmasked.
        case payload(ByteBuffer)
        /// The current frame's payload is complete.
        case end
    }

    struct LengthError: Error {}

    private enum State: Sendable {
        case header
        case payload(remaining: UInt64, mask: (UInt8, UInt8, UInt8, UInt8)?, offset: Int)
    }

    private var state = State.header

    /// The next event from `buffer` (consuming what it used), or `nil` when more bytes are
    /// needed; a header split across reads is left unread in `buffer` for the caller to keep.
    mutating func next(from buffer: inout ByteBuffer) throws(LengthError) -> Event? {
        switch state {
        case .header:
            guard let header = try Self.readHeader(from: &buffer) else { return nil }
            state = .payload(remaining: header.length, mask: header.maskKey, offset: 0)
            return .header(header)
        case .payload(let remaining, let mask, let offset):
            if remaining == 0 {
                state = .header
                return .end
            }
            guard buffer.readableBytes > 0 else { return nil }
            let count = Int(min(remaining, UInt64(buffer.readableBytes)))
            if let mask {
                withUnsafeBytes(of: mask) { key in
                    buffer.withUnsafeMutableReadableBytes { bytes in
                        for index in 0..<count {
                            bytes[index] ^= key[(offset + index) & 3]
                        }
                    }
                }
            }
            let piece = buffer.readSlice(length: count)!
            state = .payload(remaining: remaining - UInt64(count), mask: mask, offset: (offset + count) & 3)
            return .payload(piece)
        }
    }

    /// A whole header, or `nil` (nothing consumed) when `buffer` does not hold one yet.
    private static func readHeader(from buffer: inout ByteBuffer) throws(LengthError) -> Header? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= 2, let first = buffer.getInteger(at: start, as: UInt8.self),
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return nil }
        let masked = second & 0x80 != 0
        let short = second & 0x7F
        let lengthBytes = short == 126 ? 2 : short == 127 ? 8 : 0
        let size = 2 + lengthBytes + (masked ? 4 : 0)
        guard buffer.readableBytes >= size else { return nil }
        var length = UInt64(short)
        if lengthBytes == 2 {
            length = UInt64(buffer.getInteger(at: start + 2, as: UInt16.self)!)
        } else if lengthBytes == 8 {
            length = buffer.getInteger(at: start + 2, as: UInt64.self)!
            guard length & (1 << 63) == 0 else { throw LengthError() }
        }
        var maskKey: (UInt8, UInt8, UInt8, UInt8)?
        if masked {
            let at = start + 2 + lengthBytes
            maskKey = (
                buffer.getInteger(at: at, as: UInt8.self)!, buffer.getInteger(at: at + 1, as: UInt8.self)!,
                buffer.getInteger(at: at + 2, as: UInt8.self)!, buffer.getInteger(at: at + 3, as: UInt8.self)!
            )
        }
        buffer.moveReaderIndex(forwardBy: size)
        return Header(
            fin: first & 0x80 != 0, rsv1: first & 0x40 != 0, rsv2: first & 0x20 != 0, rsv3: first & 0x10 != 0, opcode: first & 0x0F,
            maskKey: maskKey, length: length)
    }
}

/// Server-to-client frames (unmasked, §5.1), header and payload in one buffer, so a message
/// encoded once can be written to every recipient as it is.
enum FrameWriter {
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA

    static func frame(opcode: UInt8, payload: ByteBuffer, compressed: Bool = false, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        let count = payload.readableBytes
        var frame = allocator.buffer(capacity: count + 10)
        frame.writeInteger(0x80 | (compressed ? 0x40 : 0) | opcode, as: UInt8.self)
        if count < 126 {
            frame.writeInteger(UInt8(count))
        } else if count <= Int(UInt16.max) {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(count))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(count))
        }
        frame.writeImmutableBuffer(payload)
        return frame
    }

    /// A close frame: the code, then as much of `reason` as fits a control frame (123 bytes,
    /// cut on a character boundary).
    static func close(code: UInt16, reason: String) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        var text = Substring(reason)
        while text.utf8.count > 123 { text = text.dropLast() }
        payload.writeString(String(text))
        return frame(opcode: close, payload: payload)
    }
}
