import Foundation
import Testing

@testable import WatchPartyCore

/// `ping` and `client_log` (PROTOCOL.md §9).
@Suite struct PingAndLogTests {
    @Test func pongEchoesRoomAndPayload() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.now = t0 + 99
        h.send("c", "ping", room: "room-7", payload: ["client_ts": 1_732_699_999_000, "nested": ["a": [1, 2.5, "x", true]]], ts: 5)
        let pong = try #require(h.only("c"))
        #expect(pong.type == "pong")
        #expect(pong.room == "room-7", "room is echoed even when it names no room")
        #expect(pong.client == nil)
        #expect(pong.ts == t0 + 99)
        #expect(pong.serverTs == t0 + 99)
        #expect(pong.payloadKeys == ["client_ts", "nested"])
        #expect(pong.int("client_ts") == 1_732_699_999_000)
        let nested = try #require(pong.payload["nested"] as? [String: Any])
        #expect((nested["a"] as? [Any])?.count == 4)
        #expect(pong.json.contains(#""a":[1,2.5,"x",true]"#))
    }

    @Test func pongWithoutPayloadOrRoom() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.send("c", "ping")
        let pong = try #require(h.only("c"))
        #expect(pong.keys == ["type", "ts", "server_ts"])
    }

    @Test func pongEchoesNonObjectPayloads() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.sendText("c", #"{"type":"ping","payload":[1,"two"],"ts":1}"#)
        #expect(h.only("c")?.json.contains(#""payload":[1,"two"]"#) == true)
    }

    @Test func clientLogHasNoReplyAndIsCounted() throws {
        let h = Harness()
        let room = h.room(guests: ["g"])
        h.send("g", "client_log", room: room, payload: ["category": "Sync_01-x", "message": "drift \u{0007}0.3s\nok"])
        #expect(h.inboxes.isEmpty)
        #expect(h.lastOutcome.deliveries.isEmpty)
        #expect(h.events == [.clientLog(client: "g", category: "Sync_01-x", message: "drift 0.3sok")])
    }

    @Test func clientLogMessageIsCutTo500Characters() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        let long = "\u{0001}" + String(repeating: "é", count: 1500)
        h.send("c", "client_log", payload: ["category": "player", "message": long])
        #expect(h.events == [.clientLog(client: "c", category: "player", message: String(repeating: "é", count: 500))])
        #expect(h.inboxes.isEmpty)
    }

    @Test(
        "bad categories are ignored",
        arguments: [
            #"{"category":"","message":"m"}"#,
            #"{"category":"has space","message":"m"}"#,
            #"{"category":"aaaaaaaaaaaaaaaaaaaaaaaaa","message":"m"}"#,  // 25
            #"{"category":"ümlaut","message":"m"}"#,
            #"{"category":"dot.ted","message":"m"}"#,
            #"{"category":7,"message":"m"}"#,
            #"{"message":"m"}"#,
            #"{"category":"ok"}"#,
            #"{"category":"ok","message":5}"#,
            #""text""#,
            "null",
        ])
    func badCategory(json: String) throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        h.sendText("c", #"{"type":"client_log","payload":\#(json),"ts":1}"#)
        #expect(h.inboxes.isEmpty)
        #expect(h.events.isEmpty)
    }

    @Test func longestCategoryIsAccepted() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        let category = String(repeating: "Z", count: 24)
        h.send("c", "client_log", payload: ["category": category, "message": ""])
        #expect(h.events == [.clientLog(client: "c", category: category, message: "")])
    }

    /// One connection wrote 22.6 MB of log in 4.8 s when `client_log` was free: now a burst of
    /// 100 lines (the upstream client's flush), then 2 lines a second, the rest dropped and counted.
    @Test func clientLogHasABurstThenAStrictRateAndNeverCloses() throws {
        let h = Harness()
        h.connect("c")
        h.clear()
        func log(_ count: Int) -> (logged: Int, dropped: Int) {
            h.clear()
            for index in 0..<count {
                h.send("c", "client_log", payload: ["category": "flood", "message": "line \(index)"])
            }
            let logged = h.events.filter { if case .clientLog = $0 { true } else { false } }.count
            return (logged, h.events.filter { $0 == .clientLogDropped }.count)
        }
        let burst = log(150)
        #expect(burst.logged == 100)
        #expect(burst.dropped == 50)
        #expect(h.closes.isEmpty, "a log flush never disconnects")
        h.advance(by: 999)
        #expect(log(5) == (1, 4), "1.998 lines earned in 999 ms: one whole line")
        h.advance(by: 1_500)
        #expect(log(5) == (3, 2), "0.998 left over + 3 earned")
        h.advance(by: 3_600_000)
        #expect(log(200).logged == 100, "the allowance never grows past the burst")
        h.send("c", "ping")
        #expect(h.types("c") == ["pong"], "the connection is unharmed")
    }
}
