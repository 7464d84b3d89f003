import PostgresNIO

/// The kinds of call the shared store makes (the `operation` label of its metrics).
enum StoreOperation: String, CaseIterable, Sendable {
    case migrate, claim, renew, write, release, locate, ping
    /// The rooms other replicas own, read for the lobby.
    case list
    /// The bus between replicas (ReplicaBus): a notification sent, a big one spilled or fetched.
    case notify, spill
}

/// A database error as the operator should read it: what failed and the server's own words,
/// never a query's parameters or the connection's password.
enum StoreFailure {
    /// What actually failed inside a transaction (its body, its BEGIN or its COMMIT); any other
    /// error as it is.
    static func cause(_ error: any Error) -> any Error {
        guard let error = error as? PostgresTransactionError else { return error }
        return error.closureError ?? error.beginError ?? error.commitError ?? error
    }

    static func describe(_ error: any Error) -> String {
        let error = cause(error)
        if let error = error as? PSQLError {
            var parts = ["\(error.code)"]
            if let info = error.serverInfo {
                if let state = info[.sqlState] { parts.append("SQLSTATE \(state)") }
                if let message = info[.message] { parts.append(message) }
            } else if let underlying = error.underlying {
                parts.append("\(underlying)")
            }
            return parts.joined(separator: ": ")
        }
        return "\(error)"
    }
}
