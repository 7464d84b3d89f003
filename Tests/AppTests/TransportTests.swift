import Foundation
import NIOWebSocket
import Testing
@testable import App

/// The transport's promises over real sockets: path, compression, size limit, slow readers.
@Suite struct TransportTests {
    @Test func deflateIsNegotiatedOnlyWhenOffered() async throws {
        try await withLiveServer { port, _, _ in
            let offering = try RawSocket(port: port)
            let head = try await offPool { try offering.upgrade(extraHeaders: ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]) }
            #expect(head.hasPrefix("HTTP/1.1 101"))
            #expect(head.lowercased().contains("sec-websocket-extensions: permessage-deflate"))

            let plain = try RawSocket(port: port)
            let plainHead = try await offPool { try plain.upgrade() }
            #expect(plainHead.hasPrefix("HTTP/1.1 101"))
            #expect(!plainHead.lowercased().contains("sec-websocket-extensions"))
        }
    }

    @Test func compressedAndPlainClientsShareARoom() async throws {
        try await withLiveServer { port, _, _ in
            let compressed = try await LiveClient(port: port, compression: true)
            let plain = try await LiveClient(port: port)
            try await compressed.send(["type": "create_room", "payload": ["name": String(repeating: "long room name ", count: 5)]])
            let roomID = try #require(try await compressed.next("room_state")["room"] as? String)
            try await plain.send(["type": "join_room", "room": roomID])
            _ = try await plain.next("room_state")
            let text = String(repeating: "compressible chat text ", count: 20)
            try await compressed.send(["type": "chat_message", "room": roomID, "payload": ["text": text]])
            for client in [compressed, plain] {
                let chat = try await client.next("chat_message")
                #expect((chat["payload"] as? [String: Any])?["text"] as? String == text, "relayed as sent: §10 removes control characters only")
            }
            try await compressed.close()
            try await plain.close()
        }
    }

    @Test func onlyTheExactPathUpgrades() async throws {
        try await withLiveServer { port, _, _ in
            let socket = try RawSocket(port: port)
            let head = try await offPool { try socket.upgrade(path: "/ws/anything") }
            #expect(head.hasPrefix("HTTP/1.1 404"))
        }
    }

    @Test func messageOverTheLimitClosesWith1009() async throws {
        try await withLiveServer { port, server, _ in
            let client = try await LiveClient(port: port)
            _ = try await client.next("room_list")
            try await client.sendRaw(#"{"type":"ping","ts":1,"payload":""# + String(repeating: "x", count: 70_000) + #""}"#)
            let frame = try await client.closeFrame()
            #expect(frame?.closeCode == .messageTooLarge)
            #expect(try await eventually { server.gateway.connectionCount == 0 })
        }
    }

    @Test func compressedBombClosesWith1009() async throws {
        try await withLiveServer { port, _, _ in
            let client = try await LiveClient(port: port, compression: true)
            _ = try await client.next("room_list")
            // ~1 MB of one repeated byte deflates to about a kilobyte.
            try await client.sendRaw(#"{"type":"ping","ts":1,"payload":""# + String(repeating: "a", count: 1_000_000) + #""}"#)
            let frame = try await client.closeFrame()
            #expect(frame?.closeCode == .messageTooLarge)
        }
    }

    @Test func slowReaderIsDisconnectedWhileOthersKeepReceiving() async throws {
        try await withLiveServer({
            $0.transport.outboundQueueCapacity = 50
            $0.rules.rateLimitPerSecond = 1_000_000  // the fast member floods on purpose
            $0.transport.closeTimeout = .seconds(30)  // room for the test to start reading before the socket is dropped
        }) { port, server, _ in
            let fast = try await LiveClient(port: port)
            try await fast.send(["type": "create_room"])
            let roomID = try #require(try await fast.next("room_state")["room"] as? String)

            let slow = try RawSocket(port: port, receiveBuffer: 4096)
            _ = try await offPool { try slow.upgrade() }
            try slow.sendText(#"{"type":"join_room","room":"\#(roomID)","ts":1}"#)
            _ = try await fast.next("participants_update")
            // From here on the slow client reads nothing. ~8 MB for it: more than the loopback
            // socket buffers (a few MB) plus the queue can hold.
            let text = String(repeating: "z", count: 450)
            let count = 12_000
            // In batches, each echoed back before the next, so the fast member never has more
            // than one batch queued: it stays a fast reader however loaded the machine is.
            var received = 0
            for _ in 0..<(count / 20) {
                for _ in 0..<20 {
                    try await fast.send(["type": "chat_message", "room": roomID, "payload": ["text": text]])
                }
                var echoed = 0
                while echoed < 20 {
                    let message = try await fast.next(timeout: .seconds(10))
                    if message["type"] as? String == "chat_message" { echoed += 1 }
                }
                received += echoed
            }
            #expect(received == count)
            let frames = try await offPool { try slow.readFramesUntilClosed() }
            let close = try #require(frames.last)
            #expect(close.opcode == 0x8)
            #expect(close.payload.count >= 2 && (Int(close.payload[0]) << 8 | Int(close.payload[1])) == 4003)
            #expect(String(decoding: close.payload.dropFirst(2), as: UTF8.self) == "Client cannot accept messages")
            #expect(frames.count < count, "the slow client must not have been sent everything")
            #expect(try await eventually { server.gateway.connectionCount == 1 })
            try await fast.close()
        }
    }
}
