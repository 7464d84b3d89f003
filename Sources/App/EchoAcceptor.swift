import Transport

/// Conformance mode (`--echo-conformance`): the very same transport, with a handler that
/// echoes every message back unchanged. For Autobahn|Testsuite only; never the default.
struct EchoAcceptor: ConnectionAcceptor {
    func accept(_ connection: Connection) async -> any ConnectionSession {
        EchoSession(connection: connection)
    }

    struct EchoSession: ConnectionSession {
        let connection: Connection

        func received(text: String) async { connection.send(OutboundText(text)) }
        func received(binary: [UInt8]) async { connection.send(binary: binary) }
        func closed(code: UInt16?) async {}
    }
}
