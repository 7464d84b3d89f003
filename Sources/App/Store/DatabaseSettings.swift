import Foundation
import NIOSSL
import PostgresNIO

/// Where the shared store is (`DATABASE_URL`, PROTOCOL.md §14) and how rooms are leased.
///
/// Guarantees: the password is a ``Secret`` (a settings dump, a log line or an error shows
/// `<redacted>`), and ``description`` is the URL with the password replaced. A URL that is
/// not a PostgreSQL URL the server can use is refused at start, naming what is wrong.
struct DatabaseSettings: Sendable, CustomStringConvertible {
    enum TLSMode: String, Sendable, CaseIterable {
        /// libpq's `sslmode=disable`: plain TCP.
        case disable
        /// libpq's default: TLS if the server offers it, plain otherwise.
        case prefer
        /// TLS or nothing; the certificate is verified (libpq's `verify-full`; `require` is taken to mean the same).
        case require
    }

    var host: String
    var port: Int
    var username: String
    var password: Secret?
    var database: String?
    var tls: TLSMode
    /// Seconds a room's lease lasts unless renewed (`ROOM_LEASE_SECONDS`).
    var leaseSeconds: Int = 10

    static let defaultLeaseSeconds = 10
    static let leaseRange = 3...300

    /// Reads `postgres://user:password@host:port/database?sslmode=…` (`postgresql://` too).
    init(url text: String) throws(SettingsError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), ["postgres", "postgresql"].contains(scheme) else {
            throw SettingsError("DATABASE_URL: not a postgres:// URL (expected postgres://user:password@host:5432/database)")
        }
        guard let host = components.host, !host.isEmpty else { throw SettingsError("DATABASE_URL: the URL names no host") }
        guard let user = components.user, !user.isEmpty else { throw SettingsError("DATABASE_URL: the URL names no user") }
        self.host = host
        self.port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw SettingsError("DATABASE_URL: port \(port) is out of range") }
        self.username = user  // URLComponents has decoded %xx already
        self.password = components.password.map(Secret.init)
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? nil : path
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable": tls = .disable
                case "allow", "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw SettingsError("DATABASE_URL: sslmode '\(item.value ?? "")' is not one of disable, prefer, require, verify-full")
                }
            default:
                throw SettingsError("DATABASE_URL: parameter '\(item.name)' is not supported (only sslmode)")
            }
        }
        self.tls = tls
    }

    /// The URL as given, with the password shown as `<redacted>`.
    var description: String {
        let credentials = password == nil ? username : "\(username):\(Secret.redacted)"
        return "postgres://\(credentials)@\(host):\(port)/\(database ?? "")?sslmode=\(tls.rawValue)"
    }

    /// One connection's configuration: for the check at start, which must fail at once with
    /// the server's reason (the pool would keep retrying a refused login).
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tlsConfiguration: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable: tlsConfiguration = .disable
        case .prefer: tlsConfiguration = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: tlsConfiguration = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password?.revealed, database: database, tls: tlsConfiguration)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// Connections of the pool the look-ups clients cause go through (resumes, joins, logins).
    static let lookupConnections = 8

    /// The client's configuration: short connect timeout (a vanished database is noticed
    /// quickly), a small pool (the store's work is a few statements per 100 ms).
    func clientConfiguration(connections: Int = lookupConnections) -> PostgresClient.Configuration {
        let tlsConfiguration: PostgresClient.Configuration.TLS
        switch tls {
        case .disable: tlsConfiguration = .disable
        case .prefer: tlsConfiguration = .prefer(.makeClientConfiguration())
        case .require: tlsConfiguration = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password?.revealed, database: database, tls: tlsConfiguration)
        configuration.options.connectTimeout = .seconds(2)
        configuration.options.maximumConnections = connections
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(5))
        return configuration
    }
}

/// A setting that cannot be used, with the message that says why (never a secret's value).
struct SettingsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
