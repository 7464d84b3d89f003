import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
import Transport

/// A peer that floods and resets must not keep the server busy: what it sent but the server
/// had not yet handled when it went is dropped, not decoded (issue 10).
@Suite struct ClosedInputTests {
    /// Holds the first message's handling until the socket is gone, and records what it is handed.
    final class StallingAcceptor: ConnectionAcceptor {
        let handed = Mutex<[String]>([])
        let closed = Mutex(false)

        func accept(_ connection: Connection) async -> any ConnectionSession {
            Session(connection: connection, owner: self)
        }

        func refused(reason: RefusalReason, client: String, origin: String?) {}

        struct Session: ConnectionSession {
            let connection: Connection
            let owner: StallingAcceptor

            func received(text: String, readAt: UInt64) async {
                let first = owner.handed.withLock { handed in
                    handed.append(text)
                    return handed.count == 1
                }
                guard first else { return }
                let deadline = ContinuousClock.now + .seconds(10)
                while connection.isOpen && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }

            func received(binary: [UInt8], readAt: UInt64) async {}
            func measured(roundTrip: Duration) {}
            func closed(code: UInt16?) async { owner.closed.withLock { $0 = true } }
        }
    }

    @Test func inputReadBeforeAResetIsNotHandedOver() async throws {
        let acceptor = StallingAcceptor()
        let transport = WebSocketTransport(configuration: TransportConfiguration(), acceptor: acceptor)
        let app = Application(router: Router(), server: transport.serverBuilder(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let socket = try RawSocket(port: port)
            _ = try await offPool { try socket.upgrade() }
            for index in 0..<20 {
                try socket.sendText(#"{"type":"ping","ts":\#(index)}"#)
            }
            #expect(try await eventually { acceptor.handed.withLock { $0.count } == 1 }, "the first message is being handled")
            try await Task.sleep(for: .milliseconds(300))  // the other 19 are read into the server's buffers meanwhile
            socket.reset()
            #expect(try await eventually { acceptor.closed.withLock { $0 } }, "the session hears of the close")
            #expect(acceptor.handed.withLock { $0.count } == 1, "nothing after the reset was handed to the session")
        }
    }
}
