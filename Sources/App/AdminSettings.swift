import ArgumentParser
import Foundation

/// The admin API's listener (docs/operations.md § Admin API): present only when `ADMIN_PORT` is
/// set, and then only with a token. Safe to log: the token redacts itself.
struct AdminSettings: Sendable {
    static let defaultHost = "127.0.0.1"
    /// Shorter tokens are refused at start: a bearer token is the only thing between the
    /// network and closing everyone's party.
    static let minimumTokenBytes = 24

    var host = AdminSettings.defaultHost
    var port: Int
    var token: Secret

    /// `nil` when `ADMIN_PORT` is not set. Refuses a port without a token, a token shorter than
    /// ``minimumTokenBytes``, both `ADMIN_TOKEN` and `ADMIN_TOKEN_FILE`, and an unreadable file.
    static func resolve(_ options: AdminOptions, env: SettingSource) throws -> AdminSettings? {
        guard let port = try env.optionalValue(options.adminPort, "ADMIN_PORT", valid: { (0...65_535).contains($0) }) else {
            return nil
        }
        let host = try env.value(options.adminHost, "ADMIN_HOST", default: defaultHost) { !$0.isEmpty }
        let inline = env.environment["ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let file = options.adminTokenFile ?? env.environment["ADMIN_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        let token: String
        switch (inline, file) {
        case (nil, nil):
            throw ValidationError("ADMIN_PORT is set but there is no token: set ADMIN_TOKEN or ADMIN_TOKEN_FILE (at least \(minimumTokenBytes) bytes)")
        case (_?, _?):
            throw ValidationError("ADMIN_TOKEN and ADMIN_TOKEN_FILE are both set: keep one")
        case (let value?, nil):
            token = value
        case (nil, let path?):
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw ValidationError("ADMIN_TOKEN_FILE: cannot read '\(path)'")
            }
            token = String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard token.utf8.count >= minimumTokenBytes else {
            throw ValidationError("The admin token must be at least \(minimumTokenBytes) bytes (got \(token.utf8.count))")
        }
        return AdminSettings(host: host, port: port, token: Secret(token))
    }
}
