import NIOHTTP1
import Testing

@testable import Transport

/// permessage-deflate offers (RFC 7692 §5, §7.1) and the opening handshake (RFC 6455 §4.2.1):
/// what each request gets.
@Suite struct NegotiationTests {
    static let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    @Test(arguments: [
        // What Chromium and Firefox send, and Python websockets.
        (["permessage-deflate; client_max_window_bits"], both),
        (["permessage-deflate"], both),
        (["permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"], both + "; server_max_window_bits=12"),
        (["permessage-deflate; client_max_window_bits=\"10\""], both),
        (["PerMessage-Deflate; Server_No_Context_Takeover"], both),
        // Every offer of every line is read: another extension first, on one line or two.
        (["x-foo, permessage-deflate"], both),
        (["x-foo", "permessage-deflate; client_max_window_bits"], both),
        // An offer that cannot be taken is passed over for the next one.
        (["permessage-deflate; server_max_window_bits=8, permessage-deflate"], both),
        (["permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10"], both + "; server_max_window_bits=10"),
        // Declined: nothing to answer with, and never a 400.
        (["permessage-deflate; server_max_window_bits=8"], nil),
        (["permessage-deflate; server_max_window_bits"], nil),
        (["permessage-deflate; server_max_window_bits=16"], nil),
        (["permessage-deflate; server_max_window_bits=010"], nil),
        (["permessage-deflate; client_max_window_bits=7"], nil),
        (["permessage-deflate; server_no_context_takeover=1"], nil),
        (["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], nil),
        (["permessage-deflate; unknown"], nil),
        (["permessage-deflate; client_max_window_bits=\"10"], nil),
        (["x-foo"], nil),
        ([String](), nil),
    ] as [([String], String?)])
    func offersGetThisAnswer(_ offers: [String], _ answer: String?) {
        #expect(DeflateParameters.negotiate(offers: offers)?.responseHeader == answer, "\(offers)")
    }

    @Test func theWindowTheClientAllowsIsTheOneCompressedWith() {
        #expect(DeflateParameters.negotiate(offers: ["permessage-deflate; server_max_window_bits=9"])?.serverMaxWindowBits == 9)
        #expect(DeflateParameters.negotiate(offers: ["permessage-deflate"])?.serverMaxWindowBits == 15)
    }

    static func head(
        method: HTTPMethod = .GET, version: HTTPVersion = .http1_1, dropping: String? = nil, replacing: (String, String)? = nil, adding: (String, String)? = nil
    ) -> HTTPRequestHead {
        var headers: HTTPHeaders = [
            "Host": "localhost:3000", "Upgrade": "websocket", "Connection": "keep-alive, Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        ]
        if let dropping { headers.remove(name: dropping) }
        if let (name, value) = replacing { headers.replaceOrAdd(name: name, value: value) }
        if let (name, value) = adding { headers.add(name: name, value: value) }
        return HTTPRequestHead(version: version, method: method, uri: "/ws", headers: headers)
    }

    @Test func aBrowsersHandshakeIsAccepted() {
        #expect(UpgradeRequest.check(Self.head()) == .success("dGhlIHNhbXBsZSBub25jZQ=="))
    }

    @Test(arguments: [
        (head(method: .POST), UpgradeRequest.Defect.method),
        (head(version: .http1_0), .httpVersion),
        (head(dropping: "Host"), .host),
        (head(replacing: ("Upgrade", "h2c")), .upgradeHeader),
        (head(replacing: ("Connection", "keep-alive")), .connectionHeader),
        (head(dropping: "Sec-WebSocket-Key"), .key),
        (head(replacing: ("Sec-WebSocket-Key", "short")), .key),
        (head(replacing: ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")), .key),  // unpadded
        (head(replacing: ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==")), .key),  // non-canonical spare bits
        (head(replacing: ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==dGhl")), .key),
        (head(adding: ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")), .key),  // twice
        (head(dropping: "Sec-WebSocket-Version"), .version),
        (head(replacing: ("Sec-WebSocket-Version", "8")), .version),
        (head(adding: ("Content-Length", "1")), .body),
        (head(adding: ("Transfer-Encoding", "chunked")), .body),
    ])
    func aBrokenHandshakeIsRefused(_ head: HTTPRequestHead, _ defect: UpgradeRequest.Defect) {
        #expect(UpgradeRequest.check(head) == .failure(defect))
    }

    @Test func aWrongVersionIs426AndTheRestIs400() {
        #expect(UpgradeRequest.Defect.version.status == .upgradeRequired)
        for defect in UpgradeRequest.Defect.allCases where defect != .version {
            #expect(defect.status == .badRequest)
        }
    }

    @Test func theAcceptKeyIsRFC6455sExample() {
        #expect(UpgradeRequest.acceptValue(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }
}

/// The streaming validator against Swift's own UTF-8 decoding, whole and cut at every byte.
@Suite struct UTF8StreamTests {
    static let samples: [[UInt8]] = [
        Array("plain ascii".utf8), Array("κόσμε".utf8), Array("🎬 watch party ✓".utf8), [0xF4, 0x8F, 0xBF, 0xBF],
        [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0x80],
        [0xCE, 0xBA, 0xE1], [0x61, 0xFF, 0x62], [0xEF, 0xBF, 0xBF], [0xF0, 0x9F, 0x98],
    ]

    @Test(arguments: samples)
    func agreesWithSwiftWhereverTheInputIsCut(_ bytes: [UInt8]) {
        let valid = String(validating: bytes, as: UTF8.self) != nil
        for cut in 0...bytes.count {
            var stream = UTF8Stream()
            let first = stream.feed(Array(bytes[..<cut]))
            let ok = first && stream.feed(Array(bytes[cut...])) && stream.isComplete
            #expect(ok == valid, "\(bytes) cut at \(cut)")
        }
    }

    @Test func failsAtTheFirstBadByteNotLater() {
        var stream = UTF8Stream()
        let prefix = stream.feed(Array("abc".utf8))
        let bad = stream.feed([0xC1])
        #expect(prefix && !bad)
    }

    @Test func randomBytesAgreeWithSwift() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0...12, using: &generator)).map { _ in
                // Mostly the bytes that make multi-byte sequences, where the edge cases are.
                UInt8.random(in: Bool.random(using: &generator) ? 0x80...0xF5 : 0x00...0xFF, using: &generator)
            }
            var stream = UTF8Stream()
            let fed = stream.feed(bytes)
            let ok = fed && stream.isComplete
            #expect(ok == (String(validating: bytes, as: UTF8.self) != nil), "\(bytes)")
        }
    }
}
