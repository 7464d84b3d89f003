import Crypto
import Foundation
import NIOHTTP1

/// What RFC 6455 §4.2.1 asks of an opening handshake, checked before anything else about it.
///
/// Guarantees: `GET`, HTTP/1.1, a `Host`, `Upgrade: websocket`, `Connection` naming
/// `upgrade`, exactly one `Sec-WebSocket-Key` that is the base64 of 16 bytes, and exactly
/// one `Sec-WebSocket-Version` of 13, and no body. A wrong or missing version is answered 426 with the
/// version this server speaks (§4.4); anything else wrong is 400.
enum UpgradeRequest {
    enum Defect: String, Error, Sendable, Equatable, CaseIterable {
        case method
        case httpVersion = "http_version"
        case host
        case upgradeHeader = "upgrade_header"
        case connectionHeader = "connection_header"
        case key
        case version
        /// A body (`Content-Length` other than 0, or `Transfer-Encoding`): an opening handshake
        /// has none, and waiting for one would hold the connection's slot.
        case body

        /// 426 for the WebSocket version, 400 for the rest.
        var status: HTTPResponseStatus { self == .version ? .upgradeRequired : .badRequest }
    }

    /// The first thing wrong with `head` as a WebSocket opening handshake, or its key.
    static func check(_ head: HTTPRequestHead) -> Result<String, Defect> {
        guard head.method == .GET else { return .failure(.method) }
        guard head.version == .http1_1 else { return .failure(.httpVersion) }
        guard head.headers["Host"].count == 1 else { return .failure(.host) }
        guard head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }) else { return .failure(.upgradeHeader) }
        guard head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" }) else { return .failure(.connectionHeader) }
        let keys = head.headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let key = keys.first, isValidKey(key) else { return .failure(.key) }
        let versions = head.headers["Sec-WebSocket-Version"]
        guard versions.count == 1, versions.first == "13" else { return .failure(.version) }
        guard head.headers["Transfer-Encoding"].isEmpty, head.headers["Content-Length"].allSatisfy({ $0 == "0" }) else { return .failure(.body) }
        return .success(key)
    }

    /// A nonce of 16 bytes in canonical base64: 24 characters, the last two `==`.
    static func isValidKey(_ key: String) -> Bool {
        guard key.utf8.count == 24, key.hasSuffix("=="), let bytes = Data(base64Encoded: key), bytes.count == 16 else { return false }
        return bytes.base64EncodedString() == key
    }

    /// `Sec-WebSocket-Accept` for `key` (§4.2.2): base64 of the SHA-1 of the key and the GUID.
    static func acceptValue(for key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Data(digest).base64EncodedString()
    }
}
