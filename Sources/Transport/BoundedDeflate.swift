import CompressNIO
import NIOWebSocket
import HummingbirdWSCompression
import HummingbirdWebSocket

/// permessage-deflate whose inflation is capped, reporting an over-large message as 1009.
///
/// The library's extension already stops inflating at `maxDecompressedFrameSize`, but reports
/// it as an internal error (1011). Wrapping it turns that into "message too big" (1009), as
/// PROTOCOL.md §1 asks, without ever allocating more than the cap (no zip bombs).
struct BoundedDeflateBuilder: WebSocketExtensionBuilder {
    static var name: String { "permessage-deflate" }
    let inner: any WebSocketExtensionBuilder

    init(maxMessageSize: Int, compressionThreshold: Int) {
        // One byte over the limit is enough to tell "too big" from "exactly the limit".
        inner = WebSocketExtensionFactory.perMessageDeflate(
            maxDecompressedFrameSize: maxMessageSize + 1,
            minFrameSizeToCompress: compressionThreshold
        ).build()
    }

    func clientRequestHeader() -> String { inner.clientRequestHeader() }

    func serverReponseHeader(to request: WebSocketExtensionHTTPParameters) -> String? {
        inner.serverReponseHeader(to: request)
    }

    func serverExtension(from request: WebSocketExtensionHTTPParameters) throws -> (any WebSocketExtension)? {
        try inner.serverExtension(from: request).map(BoundedExtension.init)
    }

    func clientExtension(from request: WebSocketExtensionHTTPParameters) throws -> (any WebSocketExtension)? {
        try inner.clientExtension(from: request).map(BoundedExtension.init)
    }
}

private struct BoundedExtension: WebSocketExtension {
    let inner: any WebSocketExtension

    var name: String { inner.name }
    var reservedBits: WebSocketFrame.ReservedBits { inner.reservedBits }

    func processReceivedFrame(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame {
        do {
            return try await inner.processReceivedFrame(frame, context: context)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw NIOWebSocketError.invalidFrameLength  // the library answers this with 1009
        }
    }

    func processFrameToSend(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame {
        try await inner.processFrameToSend(frame, context: context)
    }

    func shutdown() async { await inner.shutdown() }
}
