import CompressNIO
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import Transport

/// Client frames as a client (or an attacker) would write them.
enum ClientFrame {
    static func make(
        _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv1: Bool = false, rsv2: Bool = false, rsv3: Bool = false, masked: Bool = true,
        mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
    ) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (rsv2 ? 0x20 : 0) | (rsv3 ? 0x10 : 0) | opcode, as: UInt8.self)
        writeLength(UInt64(payload.count), masked: masked, to: &buffer)
        if masked {
            buffer.writeBytes(mask)
            buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        } else {
            buffer.writeBytes(payload)
        }
        return buffer
    }

    static func text(_ text: String, fin: Bool = true) -> ByteBuffer { make(0x1, Array(text.utf8), fin: fin) }

    /// A header alone, declaring `length` bytes of payload that do not follow.
    static func header(_ opcode: UInt8, length: UInt64, fin: Bool = true) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger((fin ? 0x80 : 0) | opcode, as: UInt8.self)
        writeLength(length, masked: true, to: &buffer)
        buffer.writeBytes([0, 0, 0, 0])  // a zero mask: the payload bytes go as they are
        return buffer
    }

    static func close(_ code: UInt16, reason: String = "") -> ByteBuffer {
        make(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
    }

    /// A permessage-deflate payload (RFC 7692 §7.2.1: the trailing 00 00 FF FF removed).
    static func deflated(_ bytes: [UInt8]) throws -> [UInt8] {
        let compressor = try ZlibCompressor(algorithm: .deflate)
        var input = ByteBuffer(bytes: bytes)
        var output = ByteBuffer()
        output.reserveCapacity(compressor.maxSize(from: input))
        try compressor.deflate(from: &input, to: &output, flush: .sync)
        return Array(output.readableBytesView.dropLast(4))
    }

    private static func writeLength(_ length: UInt64, masked: Bool, to buffer: inout ByteBuffer) {
        let bit: UInt8 = masked ? 0x80 : 0
        if length < 126 {
            buffer.writeInteger(bit | UInt8(length))
        } else if length <= UInt64(UInt16.max) {
            buffer.writeInteger(bit | 126)
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(bit | 127)
            buffer.writeInteger(length)
        }
    }
}

/// A frame the server wrote.
struct ServerFrame: Equatable {
    var fin: Bool
    var rsv1: Bool
    var opcode: UInt8
    var payload: [UInt8]

    var closeCode: UInt16? {
        guard opcode == 0x8, payload.count >= 2 else { return nil }
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }
    var text: String { String(decoding: payload, as: UTF8.self) }

    /// Every frame in `bytes`; fails the test on a truncated or masked frame.
    static func parse(_ bytes: [UInt8]) -> [ServerFrame] {
        var frames: [ServerFrame] = []
        var index = 0
        while index < bytes.count {
            guard bytes.count - index >= 2 else {
                Issue.record("truncated frame")
                return frames
            }
            let first = bytes[index]
            let second = bytes[index + 1]
            #expect(second & 0x80 == 0, "server frames are never masked")
            var length = Int(second & 0x7F)
            index += 2
            if length == 126 {
                length = Int(bytes[index]) << 8 | Int(bytes[index + 1])
                index += 2
            } else if length == 127 {
                length = bytes[index..<index + 8].reduce(0) { $0 << 8 | Int($1) }
                index += 8
            }
            frames.append(ServerFrame(fin: first & 0x80 != 0, rsv1: first & 0x40 != 0, opcode: first & 0x0F, payload: Array(bytes[index..<index + length])))
            index += length
        }
        return frames
    }
}

/// Records what the transport hands the application; optionally echoes like the conformance mode.
final class RecordingSession: ConnectionSession {
    struct Log {
        var texts: [String] = []
        var stamps: [ReadStamp] = []
        var binaries: [[UInt8]] = []
        var roundTrips: [Duration] = []
        var closes: [UInt16?] = []
    }

    let log = Mutex(Log())
    let echo: Mutex<Connection?> = Mutex(nil)

    func received(text: String, readAt: ReadStamp) {
        log.withLock {
            $0.texts.append(text)
            $0.stamps.append(readAt)
        }
        echo.withLock { $0 }?.send(OutboundText(text))
    }

    func received(binary: [UInt8], readAt: ReadStamp) { log.withLock { $0.binaries.append(binary) } }
    func measured(roundTrip: Duration) { log.withLock { $0.roundTrips.append(roundTrip) } }
    func closed(code: UInt16?) { log.withLock { $0.closes.append(code) } }

    var texts: [String] { log.withLock { $0.texts } }
    var stamps: [ReadStamp] { log.withLock { $0.stamps } }
    var closes: [UInt16?] { log.withLock { $0.closes } }
}

/// One connection handler on an `EmbeddedChannel`: frames in, frames out, virtual time.
struct HandlerHarness {
    let channel = EmbeddedChannel()
    let handler: WebSocketConnectionHandler
    let connection: Connection
    let session = RecordingSession()
    let configuration: TransportConfiguration

    init(_ configure: (inout TransportConfiguration) -> Void = { _ in }, deflate: DeflateParameters? = nil, echo: Bool = false) throws {
        var configuration = TransportConfiguration()
        configure(&configuration)
        self.configuration = configuration
        let budget = OutboundBudget(capacity: configuration.outboundQueueCapacity)
        handler = WebSocketConnectionHandler(configuration: configuration, deflate: deflate, traffic: TrafficCounters(), budget: budget)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        try channel.pipeline.syncOperations.addHandler(handler)
        connection = Connection(remoteAddress: "127.0.0.1", negotiatedExtensions: [], channel: channel, handler: handler, budget: budget)
        handler.session = session
        if echo { session.echo.withLock { $0 = connection } }
    }

    func send(_ buffers: ByteBuffer...) throws {
        for buffer in buffers { try channel.writeInbound(buffer) }
        channel.embeddedEventLoop.run()
    }

    /// Everything written and flushed so far, as frames.
    func written() throws -> [ServerFrame] {
        channel.embeddedEventLoop.run()  // hops and deferred work first
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        return ServerFrame.parse(bytes)
    }

    func advance(_ duration: Duration) {
        channel.embeddedEventLoop.advanceTime(by: TimeAmount(duration))
        channel.embeddedEventLoop.run()
    }

    var isOpen: Bool { channel.isActive }
}
