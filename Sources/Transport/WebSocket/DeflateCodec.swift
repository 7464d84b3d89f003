import CompressNIO
import NIOCore

/// The zlib state of one thread: a raw-deflate compressor per window size and one inflater,
/// shared by every connection whose frames that thread handles. Possible because the server
/// negotiates no context takeover both ways (``DeflateParameters``): each message starts
/// from an empty window, so nothing of one message is needed for the next, and the state is
/// reset after every use.
///
/// Guarantees: inflation never produces more than `limit + 1` bytes, whatever the input (a
/// compression bomb costs one bounded buffer); the output of `deflate` is the payload of one
/// RFC 7692 message (the trailing `00 00 FF FF` removed, §7.2.1).
///
/// Thread confinement: an instance is only reachable through ``current``, which hands each
/// thread its own; it never crosses threads (hence the unchecked `Sendable`, which only lets
/// the per-thread variable be a static).
final class DeflateCodec: @unchecked Sendable {
    private static let perThread = PerThread { DeflateCodec() }

    /// This thread's codec (made on first use).
    static var current: DeflateCodec { perThread.current }

    private var compressors: [Int: ZlibCompressor] = [:]
    private var inflater: ZlibDecompressor?
    /// Inflation output, reused: grown once to the message limit, never beyond.
    private var scratch = ByteBuffer()

    enum Inflated: Equatable {
        case message(ByteBuffer)
        case tooBig
        case corrupt
    }

    /// `payload` compressed as one message for a peer that allows `windowBits`; `nil` if zlib fails.
    func deflate(_ payload: ByteBuffer, windowBits: Int = 15) -> ByteBuffer? {
        guard let compressor = compressor(windowBits) else { return nil }
        defer { try? compressor.reset() }
        var input = payload
        var output = ByteBuffer()
        output.reserveCapacity(compressor.maxSize(from: input))
        do {
            try compressor.deflate(from: &input, to: &output, flush: .sync)
        } catch {
            return nil
        }
        if output.readableBytes >= 4, output.getBytes(at: output.writerIndex - 4, length: 4) == [0, 0, 0xFF, 0xFF] {
            output.moveWriterIndex(to: output.writerIndex - 4)
        }
        return output
    }

    /// The message `compressed` inflates to, if it is at most `limit` bytes and valid deflate.
    func inflate(_ compressed: ByteBuffer, limit: Int) -> Inflated {
        guard let inflater = inflater ?? makeInflater() else { return .corrupt }
        defer { try? inflater.reset() }
        var input = compressed
        input.writeBytes([0, 0, 0xFF, 0xFF])
        scratch.clear()
        if scratch.capacity < limit + 1 { scratch.reserveCapacity(limit + 1) }
        do {
            try inflater.inflate(from: &input, to: &scratch)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            return .tooBig
        } catch let error as CompressNIOError where error == .inputBufferOverflow {
            // No progress possible: an empty message inflates to nothing.
            if scratch.readableBytes == 0 && compressed.readableBytes <= 1 { return .message(ByteBuffer()) }
            return .corrupt
        } catch {
            return .corrupt
        }
        guard scratch.readableBytes <= limit else { return .tooBig }
        return .message(ByteBuffer(buffer: scratch))
    }

    private func compressor(_ windowBits: Int) -> ZlibCompressor? {
        if let compressor = compressors[windowBits] { return compressor }
        let configuration = ZlibConfiguration(windowSize: Int32(windowBits), compressionLevel: 6, memoryLevel: 8)
        guard let compressor = try? ZlibCompressor(algorithm: .deflate, configuration: configuration) else { return nil }
        compressors[windowBits] = compressor
        return compressor
    }

    private func makeInflater() -> ZlibDecompressor? {
        inflater = try? ZlibDecompressor(algorithm: .deflate, windowSize: 15)
        return inflater
    }
}

extension ByteBuffer {
    /// A copy of `buffer`'s readable bytes in storage of their own (the scratch is reused).
    fileprivate init(buffer: ByteBuffer) {
        self.init()
        self.reserveCapacity(buffer.readableBytes)
        self.writeImmutableBuffer(buffer)
    }
}
