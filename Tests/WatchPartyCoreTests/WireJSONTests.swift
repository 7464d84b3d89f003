import Foundation
import SyncSimulator
import Testing

@testable import WatchPartyCore

/// ``WireJSONWriter`` against the reference it replaces: every server message, written by it,
/// must be the very bytes Foundation's `JSONEncoder` (sorted keys) writes for the same value.
@Suite struct WireJSONTests {
    /// Characters that must be escaped, and ones that must not be (DEL, U+2028, non-ASCII).
    private static let alphabet: [String] = [
        "a", "Z", "0", " ", "\"", "\\", "/", "\u{0}", "\u{1}", "\u{8}", "\t", "\n", "\u{B}", "\u{C}", "\r", "\u{1F}",
        "\u{7F}", "\u{2028}", "\u{2029}", "é", "e\u{301}", "🙂", "\u{FFFF}", "\u{10000}", "_", ":", ",", "{", "}",
    ]

    private static func text(_ random: inout SplitMix64, maxLength: UInt64 = 12) -> String {
        (0..<random.next(upTo: maxLength + 1)).map { _ in random.pick(alphabet) }.joined()
    }

    private static func number(_ random: inout SplitMix64) -> Double {
        switch random.next(upTo: 8) {
        case 0: Double(random.next(upTo: 10_000))  // integral: written without ".0"
        case 1: -Double(random.next(upTo: 10_000)) - random.unit()
        case 2: random.unit() * 1e-9
        case 3: random.unit() * 1e22
        case 4: random.pick([0.0, -0.0, 0.1, 1e16, 1e21, 1e-7, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude])
        case 5: (random.unit() * 100_000).rounded() / 1000  // positions as players report them
        default: random.unit() * 7_200
        }
    }

    private static func value(_ random: inout SplitMix64, depth: Int = 0) -> JSONValue {
        switch random.next(upTo: depth > 3 ? 5 : 7) {
        case 0: .null
        case 1: .bool(random.chance(50))
        case 2: .int(Int64(bitPattern: random.next()) >> random.next(upTo: 64))
        case 3: .double(number(&random))
        case 4: .string(text(&random))
        case 5: .array((0..<random.next(upTo: 4)).map { _ in value(&random, depth: depth + 1) })
        default:
            .object(Dictionary((0..<random.next(upTo: 5)).map { _ in (text(&random, maxLength: 4), value(&random, depth: depth + 1)) }, uniquingKeysWith: { first, _ in first }))
        }
    }

    private static func payload(_ kind: ServerMessageType, _ random: inout SplitMix64) -> ServerPayload {
        func maybe<T>(_ make: () -> T) -> T? { random.chance(30) ? nil : make() }
        switch kind {
        case .clientHello:
            return .clientHello(clientID: text(&random), resumeToken: maybe { text(&random) }, resumed: random.chance(50))
        case .authSuccess:
            return .authSuccess(
                userName: text(&random), protocolVersion: maybe { Int(random.next(upTo: 5)) },
                features: maybe { (0..<random.next(upTo: 3)).map { _ in text(&random) } })
        case .roomList:
            return .roomList(RoomList((0..<random.next(upTo: 4)).map { _ in
                RoomSummary(id: text(&random), name: text(&random), count: Int(random.next(upTo: 50)), mediaID: maybe { text(&random) })
            }))
        case .roomState:
            return .roomState(RoomStatePayload(
                name: text(&random), hostID: text(&random), position: number(&random), playState: random.pick([.playing, .paused]),
                stateServerTs: random.next(), targetServerTs: maybe { random.next() }, participantCount: Int(random.next(upTo: 21)),
                mediaID: maybe { text(&random) }))
        case .participantList:
            return .participantList((0..<random.next(upTo: 4)).map { _ in ParticipantEntry(name: text(&random), isHost: random.chance(50)) })
        case .participantStatuses:
            return .participantStatuses((0..<random.next(upTo: 5)).map { _ in maybe { random.pick(ParticipantStatus.allCases) } })
        case .participantsUpdate: return .participantsUpdate(count: Int(random.next(upTo: 100)))
        case .clientLeft: return .clientLeft(count: Int(random.next(upTo: 100)))
        case .hostChanged: return .hostChanged(hostID: text(&random), hostName: text(&random))
        case .roomClosed: return .roomClosed(reason: text(&random))
        case .playerEvent:
            return .playerEvent(PlayerEventPayload(
                action: random.pick([.play, .pause, .seek, .buffering]), position: number(&random),
                playState: random.pick([.playing, .paused]), targetServerTs: random.next(upTo: 1 << 45)))
        case .stateUpdate: return .stateUpdate(position: number(&random), playState: random.pick([.playing, .paused]))
        case .chatMessage: return .chatMessage(username: text(&random), text: text(&random, maxLength: 40))
        case .pong: return .pong(maybe { value(&random) })
        case .error: return .error(random.pick(ErrorCode.allCases))
        }
    }

    @Test(arguments: ServerMessageType.allCases)
    func everyMessageIsWrittenAsTheEncoderWritesIt(_ kind: ServerMessageType) {
        var random = SplitMix64(seed: 0x5EED_0000 + UInt64(ServerMessageType.allCases.firstIndex(of: kind)!))
        for _ in 0..<400 {
            let message = ServerMessage(
                room: random.pick([nil, "", Self.text(&random)]), client: random.pick([nil, "", Self.text(&random)]),
                ts: random.next(upTo: 1 << 45), serverTs: random.chance(50) ? nil : random.next(), payload: Self.payload(kind, &random))
            let written = message.encodedJSON()
            let reference = message.encodedJSONByEncoder()
            #expect(written == reference)
            if written != reference { return }  // one counterexample is enough to read
            #expect(message.type == kind.rawValue)
        }
    }

    /// The rules spelled out, so a reader need not trust the reference: escapes, numbers, key order.
    @Test func theRulesAreTheEncodersOwn() {
        var writer = WireJSONWriter()
        writer.string("q\"b\\s/\u{8}\t\n\u{C}\r\u{0}\u{1F}\u{7F}\u{2028}é")
        #expect(writer.text == #""q\"b\\s\/\b\t\n\f\r\u0000\u001f"# + "\u{7F}\u{2028}é\"")
        var numbers = WireJSONWriter()
        for (index, number) in [3.0, -0.0, 12.5, 1e21, 1e-7, 100].enumerated() {
            if index > 0 { numbers.raw(",") }
            numbers.double(number)
        }
        numbers.raw(",")
        numbers.int(Int64.min)
        numbers.raw(",")
        numbers.int(UInt64.max)
        #expect(numbers.text == "3,-0,12.5,1e+21,1e-07,100,-9223372036854775808,18446744073709551615")
        var object = WireJSONWriter()
        object.object(["b": .int(1), "B": .int(2), "é": .int(3), "f": .int(4), "a": .null, "aa": .bool(true)])
        // UTF-8 byte order: "B" < "a" < "aa" < "b" < "f" < "é" (c3 a9), not the alphabet's.
        #expect(object.text == "{\"B\":2,\"a\":null,\"aa\":true,\"b\":1,\"f\":4,\"é\":3}")
    }
}
