import Foundation
import Testing

@testable import WatchPartyCore

/// `chat_message` (PROTOCOL.md §9, §10).
@Suite struct ChatTests {
    @Test func chatGoesToEveryMemberIncludingTheSender() throws {
        let h = Harness()
        let room = h.room(guests: ["g1", "g2"])
        h.room(host: "other")
        h.connect("l")
        h.clear()
        h.now += 42
        h.send("g1", "chat_message", room: room, payload: ["text": "hello there"])
        for member in ["h", "g1", "g2"] {
            let chat = try #require(h.only(member))
            #expect(chat.type == "chat_message")
            #expect(chat.room == room)
            #expect(chat.client == "g1")
            #expect(chat.ts == h.now)
            #expect(chat.serverTs == h.now)
            #expect(chat.payloadKeys == ["username", "text"])
            #expect(chat.string("username") == "G1")
            #expect(chat.string("text") == "hello there")
        }
        #expect(h.lastOutcome.deliveries.map(\.recipients) == [["h", "g1", "g2"]])
        #expect(h.inbox("l").isEmpty)
        #expect(h.inbox("other").isEmpty)
    }

    @Test func controlCharactersAreRemovedExceptNewline() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.send("g", "chat_message", room: room, payload: ["text": "a\u{0007}b\nc\u{0000}d\te\u{001B}f\u{0085}g"])
        #expect(h.last("h", "chat_message")?.string("text") == "ab\ncdefg")
    }

    @Test func usernameFollowsTheSanitisedName() throws {
        let h = Harness()
        let room = h.room()
        h.send("h", "auth", payload: ["user_name": "\u{0002} Hedwig "])
        h.send("h", "chat_message", room: room, payload: ["text": "hi"])
        #expect(h.last("h", "chat_message")?.string("username") == "Hedwig")
    }

    @Test func errorOrder() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.connect("x")
        h.clear()
        let tooLong = String(repeating: "a", count: 501)
        // Each line: the first failing check wins, even when later ones would fail too.
        h.send("x", "chat_message", payload: ["nope": 1])  // no room, no text
        h.send("x", "chat_message", room: "room-404", payload: ["text": 5])  // bad payload before unknown room
        h.send("x", "chat_message", room: "room-404")  // no payload at all
        h.send("x", "chat_message", room: "room-404", payload: ["text": " \n\t "])  // empty before unknown room
        h.send("x", "chat_message", room: "room-404", payload: ["text": tooLong])  // too long before unknown room
        h.send("x", "chat_message", room: "room-404", payload: ["text": "hi"])
        h.send("x", "chat_message", room: room, payload: ["text": "hi"])
        #expect(
            h.errorCodes("x") == [
                "ROOM_ID_REQUIRED", "INVALID_CHAT_PAYLOAD", "INVALID_CHAT_PAYLOAD", "CHAT_MESSAGE_EMPTY", "CHAT_MESSAGE_TOO_LONG",
                "ROOM_NOT_FOUND", "NOT_ROOM_MEMBER",
            ])
        #expect(
            h.inbox("x").map { $0.string("message") } == [
                "Room ID is required", "Chat payload must contain text", "Chat payload must contain text", "Chat message cannot be empty",
                "Chat message too long (max 500 characters)", "Room not found", "Client is not a member of this room",
            ])
        #expect(h.inbox("h").isEmpty)
        #expect(h.inbox("g").isEmpty)
    }

    @Test func emptyAfterRemovingControlCharacters() throws {
        let h = Harness()
        let room = h.room()
        h.send("h", "chat_message", room: room, payload: ["text": ""])
        h.send("h", "chat_message", room: room, payload: ["text": "\u{0001}\u{0002} \n"])
        #expect(h.errorCodes("h") == ["CHAT_MESSAGE_EMPTY", "CHAT_MESSAGE_EMPTY"])
    }

    @Test(
        "length is counted in UTF-8 bytes as sent",
        arguments: [
            (String(repeating: "a", count: 500), true),
            (String(repeating: "a", count: 501), false),
            (String(repeating: "é", count: 250), true),  // 500 bytes
            (String(repeating: "é", count: 251), false),  // 251 characters, 502 bytes
            (String(repeating: "😀", count: 125), true),  // 500 bytes
            (String(repeating: "😀", count: 126), false),  // 126 characters, 504 bytes
            ("x" + String(repeating: " ", count: 499), true),
            ("x" + String(repeating: " ", count: 500), false),  // over the limit as sent, though short once trimmed
            (String(repeating: "a", count: 499) + "\u{0007}", true),
            (String(repeating: "a", count: 500) + "\u{0007}", false),  // control characters count as sent
        ])
    func chatLength(text: String, accepted: Bool) throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.send("g", "chat_message", room: room, payload: ["text": text])
        if accepted {
            #expect(h.errorCodes("g").isEmpty)
            #expect(h.messages("h", "chat_message").count == 1)
        } else {
            #expect(h.errorCodes("g") == ["CHAT_MESSAGE_TOO_LONG"])
            #expect(h.inbox("h").isEmpty)
        }
    }

    @Test func multiByteTextArrivesIntact() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        let text = "Grüße 👋🏽 — line one\nline two"
        h.send("g", "chat_message", room: room, payload: ["text": text])
        #expect(h.last("h", "chat_message")?.string("text") == text)
    }
}

extension ChatTests {
    /// PROTOCOL.md §10 removes control characters and nothing else: spaces stay where they were.
    @Test func surroundingSpacesAndIndentationAreRelayedAsSent() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        let text = "  indented\n    code block  "
        h.send("g", "chat_message", room: room, payload: ["text": text])
        #expect(h.last("h", "chat_message")?.string("text") == text)
    }
}
