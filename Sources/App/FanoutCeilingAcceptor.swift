import Synchronization
import Transport

/// Benchmark ceiling mode (`--fanout-ceiling`): the very same transport with the cheapest
/// possible fan-out, so a benchmark can compare the watch party with what the transport itself
/// can do on the same machine. A connection's first text message names its group; every later
/// message is sent, verbatim and without any JSON decoding, to every member of that group
/// (the sender included, like `chat_message`). Never the default.
final class FanoutCeilingAcceptor: ConnectionAcceptor {
    private let groups = Mutex<[String: [ObjectIdentifier: Connection]]>([:])

    func accept(_ connection: Connection) -> any ConnectionSession {
        FanoutSession(acceptor: self, connection: connection)
    }

    /// Benchmark ceiling runs are not operated: nothing is counted.
    func refused(reason: RefusalReason, client: String, origin: String?) {}

    func join(_ group: String, _ connection: Connection) {
        groups.withLock { $0[group, default: [:]][ObjectIdentifier(connection)] = connection }
    }

    func leave(_ group: String, _ connection: Connection) {
        groups.withLock { groups in
            groups[group]?[ObjectIdentifier(connection)] = nil
            if groups[group]?.isEmpty == true { groups[group] = nil }
        }
    }

    func broadcast(_ text: String, to group: String) {
        let message = OutboundText(text)
        let members = groups.withLock { Array($0[group]?.values ?? [:].values) }
        Connection.send(message, to: members)
    }

    final class FanoutSession: ConnectionSession {
        let acceptor: FanoutCeilingAcceptor
        let connection: Connection
        private let group = Mutex<String?>(nil)

        init(acceptor: FanoutCeilingAcceptor, connection: Connection) {
            self.acceptor = acceptor
            self.connection = connection
        }

        func received(text: String, readAt: ReadStamp) {
            if let name = group.withLock({ $0 }) {
                acceptor.broadcast(text, to: name)
            } else {
                group.withLock { $0 = text }
                acceptor.join(text, connection)
            }
        }

        func received(binary: [UInt8], readAt: ReadStamp) {}

        func measured(roundTrip: Duration) {}

        func closed(code: UInt16?) {
            if let name = group.withLock({ $0 }) { acceptor.leave(name, connection) }
        }
    }
}
