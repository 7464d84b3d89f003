import Transport

/// Conformance mode (`--echo-conformance`): the very same transport, with a handler that
/// echoes every message back unchanged. For Autobahn|Testsuite only; never the default.
struct EchoAcceptor: ConnectionAcceptor {
    func accept(_ connection: Connection) -> any ConnectionSession {
        EchoSession(connection: connection)
    }

    /// Conformance runs are not operated: nothing is counted.
    func refused(reason: RefusalReason, client: String, origin: String?) {}

    struct EchoSession: ConnectionSession {
        let connection: Connection

        func received(text: String, readAt: ReadStamp) { connection.send(OutboundText(text)) }
        func received(binary: [UInt8], readAt: ReadStamp) { connection.send(binary: binary) }
        func measured(roundTrip: Duration) {}
        func closed(code: UInt16?) {}
    }
}
