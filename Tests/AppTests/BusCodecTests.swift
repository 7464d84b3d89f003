import Foundation
import Testing
import WatchPartyCore
@testable import App

/// The bus's hand-written JSON is the JSON `Codable` writes and reads: a replica of the
/// previous version (Foundation's coders only) and this one read each other in a rolling update.
@Suite struct BusCodecTests {
    /// Texts a client or the server may send: quotes, backslashes, every control character,
    /// non-ASCII, an emoji, an empty string, raw JSON.
    static let texts: [String] = [
        "", "plain", #"{"type":"chat_message","room":"r","payload":{"text":"a \"quoted\" \\ word"}}"#,
        "line\nbreak\r\ttab", String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }), "\u{7F}\u{2028}\u{2029}",
        "héllo wörld ✓ 🎬", "\\u0041 is not an escape here", "ends with a backslash \\",
    ]

    static var frames: [BusFrame] {
        var frames: [BusFrame] = []
        for text in texts {
            frames.append(.deliver(connections: ["c-1", "c-\"2\"", "c\n3"], text: text))
            frames.append(.input(connection: "conn-\(text.count)", text: text))
        }
        frames += [
            .deliver(connections: [], text: "nobody"), .roundTrip(connection: "c", milliseconds: 0), .roundTrip(connection: "c", milliseconds: 86_400_000),
            .gone(connection: "gone \"one\""), .binary(connection: "b", bytes: 12), .probed(probe: 7, answered: true),
            .close(connection: "c", code: 1012, reason: "Service restart"), .probe(connection: "p", probe: 9, withinMs: 500), .takeOver(rooms: ["r1", "r2"]), .unlinked,
        ]
        return frames
    }

    @Test func everyFrameWrittenByHandIsReadByFoundation() throws {
        for frame in Self.frames {
            let json = try BusCodec.encode(frame)
            #expect(try JSONDecoder().decode(BusFrame.self, from: Data(json.utf8)) == frame, "\(json)")
        }
    }

    @Test func batchesFoundationWritesAreReadByHand() throws {
        let batch = BusBatch(from: "pod-a/1234", sentAt: 1_764_000_000_123_456, frames: Self.frames)
        let json = String(decoding: try JSONEncoder().encode(batch), as: UTF8.self)
        let decoded = try #require(BusCodec.decodeBatch(json))
        #expect(decoded.from == batch.from && decoded.sentAt == batch.sentAt && decoded.frames == batch.frames)
    }

    /// The frames read by the parser, not by the fallback: a batch of only those kinds, as
    /// `payloads` writes it, comes back the same (and a wrong hand decoder would fail here, as
    /// the fallback is not used for them).
    @Test func theHotFramesRoundTripThroughPayloads() throws {
        let hot = Self.frames.filter {
            switch $0 {
            case .deliver, .input, .roundTrip, .gone: true
            default: false
            }
        }
        let payloads = try ReplicaBus.payloads(hot, from: "r/1")
        let decoded = payloads.compactMap(BusCodec.decodeBatch).flatMap(\.frames)
        #expect(decoded == hot)
        #expect(try payloads.flatMap { try JSONDecoder().decode(BusBatch.self, from: Data($0.utf8)).frames } == hot)
    }

    @Test func notABatchIsNil() {
        for text in ["", "{}", "[]", #"{"from":"a","sentAt":1}"#, #"{"from":"a","sentAt":1,"frames":[{"nope":{}}]}"#, "E", String(repeating: "[", count: 100)] {
            #expect(BusCodec.decodeBatch(text) == nil, "\(text)")
        }
    }
}
