import Foundation
import Testing

@testable import App

/// A token is verified off the event loop; what the client sends meanwhile waits its turn
/// (ClientHandle's inbox), so the core sees every message in the order it was sent.
@Suite struct AuthOrderTests {
    /// A JWT-mode server and one upgraded raw socket to it.
    func withSocket(rateLimit: Int, _ body: @Sendable (RawSocket) async throws -> Void) async throws {
        try await withLiveServer({ settings in
            settings.jwt = JWTSettings(secret: Secret(TestTokens.secret))
            settings.rules.rateLimitPerSecond = rateLimit
        }) { port, _, _ in
            let socket = try RawSocket(port: port)
            _ = try await offPool { try socket.upgrade() }
            try await body(socket)
        }
    }

    @Test func messagesSentRightBehindAnAuthAreHandledAfterIt() async throws {
        try await withSocket(rateLimit: 1000) { socket in
            // One write: the auth, then requests that need it, before any verdict can exist.
            let auth = #"{"type":"auth","payload":{"token":"\#(TestTokens.token())"},"ts":1}"#
            try socket.sendTexts([auth] + Array(repeating: #"{"type":"list_rooms","ts":2}"#, count: 5))
            // Text frames only: a heartbeat ping (opcode 9) may come between them on a slow run.
            let frames = try await offPool { try socket.readFrames { $0.filter { $0.opcode != 9 }.count >= 7 } }.filter { $0.opcode != 9 }
            let types = frames.map { frame -> String in
                let message = (try? JSONSerialization.jsonObject(with: Data(frame.payload))) as? [String: Any] ?? [:]
                let code = (message["payload"] as? [String: Any])?["code"] as? String
                return code.map { "error \($0)" } ?? message["type"] as? String ?? "opcode \(frame.opcode)"
            }
            #expect(types == ["client_hello", "auth_success"] + Array(repeating: "room_list", count: 5), "none refused as unauthenticated")
        }
    }

    @Test func aClientFloodingWhileItsTokenIsCheckedIsClosedAsRateLimited() async throws {
        try await withSocket(rateLimit: 100_000) { socket in
            // More than the inbox holds, in one write right behind the auth: all read before
            // the verdict can come back to the event loop.
            let auth = #"{"type":"auth","payload":{"token":"\#(TestTokens.token())"},"ts":1}"#
            let pings = (0...ClientHandle.heldLimit).map { #"{"type":"ping","ts":\#($0)}"# }
            try socket.sendTexts([auth] + pings)
            let frames = try await offPool { try socket.readFramesUntilClosed() }
            let close = try #require(frames.last)
            #expect(close.opcode == 0x8)
            #expect(close.payload.count >= 2 && (Int(close.payload[0]) << 8 | Int(close.payload[1])) == 4002)
        }
    }
}
