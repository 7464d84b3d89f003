import Testing

@testable import WatchPartyCore

/// RFC 8259, strictly (docs/protocol.md § Envelope): what the decoder refuses, what it
/// accepts and what it makes of it, and what nesting costs.
@Suite struct StrictJSONTests {
    let parser = StrictJSONParser()

    /// Each is invalid JSON; every one of them wrapped into an otherwise valid ping.
    static let invalidTexts: [String] = [
        #"{"type":"ping","ts":0,}"#,  // trailing comma in an object
        #"{"type":"ping","ts":0,"payload":[1,2,]}"#,  // trailing comma in an array
        #"{"type":"ping",,"ts":0}"#,  // empty member
        #"{"type":"ping","ts":0 /* comment */}"#,
        "{\"type\":\"ping\",\"ts\":0} // comment",
        "{\"type\":\"ping\",\"ts\":0}\n# comment",
        #"{'type':'ping','ts':0}"#,  // single quotes
        #"{type:"ping",ts:0}"#,  // unquoted keys (JSON5)
        #"{"type":"ping","ts":0,"payload":NaN}"#,
        #"{"type":"ping","ts":0,"payload":Infinity}"#,
        #"{"type":"ping","ts":0,"payload":-Infinity}"#,
        #"{"type":"ping","ts":0x10}"#,  // hexadecimal
        #"{"type":"ping","ts":+1}"#,  // leading plus
        #"{"type":"ping","ts":01}"#,  // leading zero
        #"{"type":"ping","ts":0,"payload":.5}"#,  // no integer part
        #"{"type":"ping","ts":0,"payload":1.}"#,  // no fraction digits
        #"{"type":"ping","ts":0,"payload":1e}"#,  // no exponent digits
        #"{"type":"ping","ts":0,"payload":1e999}"#,  // no Double holds it
        #"{"type":"ping","ts":0,"payload":-}"#,
        #"{"type":"ping","ts":0,"payload":tru}"#,
        #"{"type":"ping","ts":0,"payload":True}"#,
        #"{"type":"ping","ts":0,"payload":nul}"#,
        #"{"type":"ping","ts":0,"payload":undefined}"#,
        "{\"type\":\"ping\",\"ts\":0,\"payload\":\"tab\tinside\"}",  // raw control character in a string
        "{\"type\":\"ping\",\"ts\":0,\"payload\":\"line\nbreak\"}",
        #"{"type":"ping","ts":0,"payload":"\x41"}"#,  // not a JSON escape
        #"{"type":"ping","ts":0,"payload":"\u12"}"#,  // short \u escape
        #"{"type":"ping","ts":0,"payload":"\uZZZZ"}"#,
        #"{"type":"ping","ts":0,"payload":"\'"}"#,
        #"{"type":"ping","ts":0,"payload":"unterminated}"#,
        #"{"type":"ping","ts":0,"type":"chat_message"}"#,  // duplicate member name
        #"{"type":"ping","ts":0,"payload":{"a":1,"a":2}}"#,  // duplicate, nested
        #"{"type":"ping","ts":0}{"type":"ping","ts":0}"#,  // two texts
        #"{"type":"ping","ts":0} x"#,  // trailing garbage
        "\u{FEFF}{\"type\":\"ping\",\"ts\":0}",  // byte-order mark
        "{\"type\":\"ping\",\"ts\":0}\u{00A0}",  // not JSON whitespace
        "\u{000B}{\"type\":\"ping\",\"ts\":0}",  // vertical tab is not JSON whitespace
        #"{"type":"ping" "ts":0}"#,  // missing comma
        #"{"type" "ping","ts":0}"#,  // missing colon
        #"{"type":"ping","ts":0]"#,  // mismatched bracket
        #"{"type":"ping","ts":0,"payload":[1 2]}"#,
        #"{"type":"ping","ts":0,"payload":{1:2}}"#,  // number as a key
        #"{"type":"ping","ts":0,"payload":[}"#,
        "",
        " ",
        "{",
        "}",
    ]

    @Test("invalid JSON is INVALID_JSON, never handled", arguments: invalidTexts)
    func invalidTextIsRefused(text: String) throws {
        #expect(throws: JSONSyntaxError.self) { try parser.parse(text) }
        try CodecTests.expectInvalidJSON(text)
    }

    @Test func invalidUTF8BytesAreRefused() {
        let bytes: [UInt8] = Array(#"{"type":"ping","ts":0,"payload":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: JSONSyntaxError.invalidUTF8(offset: 33)) { try parser.parse(bytes) }
        #expect(ClientMessageDecoder.decode(bytes) == .failure(ProtocolError(.invalidJSON)))
    }

    static let validTexts: [(String, JSONValue)] = [
        (#" { "a" : [ 1 , -0 , 2.5 , -1e3 , 1E+2 , 0.25e-1 ] } "#, .object(["a": .array([.int(1), .int(0), .double(2.5), .double(-1000), .double(100), .double(0.025)])])),
        ("\t\r\n[true,false,null]\n", .array([.bool(true), .bool(false), .null])),
        (#""\"\\\/\b\f\n\r\t""#, .string("\"\\/\u{08}\u{0C}\n\r\t")),
        (#""\u00e9\u00E9é""#, .string("ééé")),
        (#""\ud83c\udfac film""#, .string("🎬 film")),  // a surrogate pair
        (#""cut \ud83c""#, .string("cut \u{FFFD}")),  // a lone high surrogate
        (#""\udfac\ud83c\u0041""#, .string("\u{FFFD}\u{FFFD}A")),  // lone low, lone high, then a letter
        ("9223372036854775807", .int(.max)),
        ("-9223372036854775808", .int(.min)),
        ("9223372036854775808", .double(9_223_372_036_854_775_808)),  // past Int64: a Double
        ("{}", .object([:])),
        ("[[]]", .array([.array([])])),
        (#""""#, .string("")),
    ]

    @Test func validTextsParseToTheirValues() throws {
        for (text, expected) in Self.validTexts {
            #expect(try parser.parse(text) == expected, "\(text)")
        }
    }

    @Test func wellFormedPingIsStillAPing() throws {
        let message = try ClientMessageDecoder.decode(#"{"type":"ping","ts":0,"payload":{"client_ts":5,"x":[1,{"y":null}]}}"#).get()
        #expect(message.type == .ping)
        #expect(message.payload?["client_ts"] == .int(5))
    }

    // MARK: Nesting

    static func nested(depth: Int) -> String {
        // An envelope is one level; the payload brings the rest.
        #"{"type":"ping","ts":0,"payload":"# + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}"
    }

    @Test func depthUpToTheCapIsAcceptedAndOneMoreIsRefused() throws {
        let cap = StrictJSONParser.defaultMaxDepth
        #expect(throws: Never.self) { try parser.parse(Self.nested(depth: cap)) }
        if case .success(let message) = ClientMessageDecoder.decode(Self.nested(depth: cap)) {
            #expect(message.type == .ping)
        } else {
            Issue.record("depth \(cap) refused")
        }
        let prefix = #"{"type":"ping","ts":0,"payload":"#.utf8.count
        #expect(throws: JSONSyntaxError.tooDeep(offset: prefix + cap - 1)) { try parser.parse(Self.nested(depth: cap + 1)) }
        #expect(ClientMessageDecoder.decode(Self.nested(depth: cap + 1)) == .failure(ProtocolError(.invalidJSON)))
    }

    @Test func deepNestingIsRefusedAtTheCapWhateverFollows() {
        // The refusal points at the first bracket past the cap: nothing after it was read, so
        // depth 100 and depth 1 000 cost the same.
        let prefix = #"{"type":"ping","ts":0,"payload":"#.utf8.count
        let expected = JSONSyntaxError.tooDeep(offset: prefix + StrictJSONParser.defaultMaxDepth - 1)
        for depth in [100, 1_000, 60_000] {
            #expect(throws: expected) { try parser.parse(Self.nested(depth: depth)) }
        }
        // Objects count like arrays.
        let objects = String(repeating: #"{"a":"#, count: 40) + "1" + String(repeating: "}", count: 40)
        #expect(throws: JSONSyntaxError.tooDeep(offset: 5 * StrictJSONParser.defaultMaxDepth)) { try parser.parse(objects) }
    }

    @Test func aSmallerCapIsHonoured() {
        let shallow = StrictJSONParser(maxDepth: 2)
        #expect(throws: Never.self) { try shallow.parse("[[1]]") }
        #expect(throws: JSONSyntaxError.tooDeep(offset: 2)) { try shallow.parse("[[[1]]]") }
    }
}
