import Foundation
import Testing
@testable import App

/// No secret in any log line, `--help`, metric, error message or description (issue 10).
@Suite(.serialized) struct SecretsTests {
    /// A secret nobody could mistake for other output.
    static let secret = "owp-test-secret-" + UUID().uuidString + "-do-not-print"
    static let adminToken = "owp-admin-token-" + UUID().uuidString

    @Test func settingsDescribeThemselvesWithoutTheSecret() throws {
        let settings = try ServerCommand.parse([]).resolve(environment: ["JWT_SECRET": Self.secret, "ADMIN_PORT": "3001", "ADMIN_TOKEN": Self.adminToken])
        #expect(settings.jwt?.secret.revealed == Self.secret, "the secret reached the settings")
        #expect(settings.admin?.token.revealed == Self.adminToken, "and the admin token")
        var dumped = ""
        dump(settings, to: &dumped)
        let renderings = [
            String(describing: settings), String(reflecting: settings), "\(settings)", dumped,
            String(describing: settings.jwt!), String(reflecting: settings.jwt!.secret), "\(settings.jwt!.secret)",
            Mirror(reflecting: settings.jwt!.secret).children.map { "\($0.value)" }.joined(),
        ]
        for text in renderings + [String(describing: settings.admin!), "\(settings.admin!.token)"] {
            #expect(!text.contains(Self.secret))
            #expect(!text.contains(Self.adminToken))
            #expect(!text.contains("do-not-print"))
        }
        #expect(String(describing: settings).contains("<redacted>"))
    }

    @Test func aRefusedSecretIsNotEchoedInTheError() throws {
        let short = "short-secret-do-not-print"
        do {
            _ = try ServerCommand.parse([]).resolve(environment: ["JWT_SECRET": short])
            Issue.record("a 25-byte secret was accepted")
        } catch {
            #expect(!String(describing: error).contains(short))
            #expect(String(describing: error).contains("JWT_SECRET"))
        }
    }

    @Test func helpNeverShowsTheSecret() async throws {
        let help = try ServerProcess(arguments: ["--help"], environment: ["JWT_SECRET": Self.secret, "ADMIN_TOKEN": Self.adminToken])
        #expect(try await help.exitStatus(within: .seconds(10)) == 0)
        #expect(help.logText.contains("JWT_SECRET"), "the help names the variable")
        #expect(!help.logText.contains(Self.secret))
        #expect(!help.logText.contains(Self.adminToken))
    }

    /// The real binary at `trace` with the secret set: a session with a valid token, a forged
    /// one, a room and a chat, then SIGTERM. Neither the secret nor any token is in the output,
    /// the metrics or the health body.
    @Test func aTraceLevelRunLogsNoSecretAndNoToken() async throws {
        let server = try ServerProcess(
            arguments: ["--log-level", "trace", "--admin-port", "0"],
            environment: ["JWT_SECRET": Self.secret, "ADMIN_TOKEN": Self.adminToken, "LOG_FORMAT": "json"])
        try await server.waitUntilListening()
        let valid = TestTokens.token(claims: TestTokens.claims(["sub": "viewer-7", "name": "Viewer"]), secret: Self.secret)
        let forged = TestTokens.token(header: ["kid": "k1"], claims: TestTokens.claims(), secret: Self.secret)
        let host = try await LiveClient(port: server.port)
        _ = try await host.next("client_hello")
        try await host.send(["type": "auth", "payload": ["token": forged]])
        _ = try await host.next("error")
        try await host.send(["type": "auth", "payload": ["token": valid, "user_name": "Viewer"]])
        _ = try await host.next("auth_success")
        try await host.send(["type": "create_room", "payload": ["name": "Secret screening"]])
        let room = try #require(try await host.next("room_state")["room"] as? String)
        try await host.send(["type": "chat_message", "room": room, "payload": ["text": "hello"]])
        _ = try await host.next("chat_message")
        try await host.send(["type": "client_log", "payload": ["category": "auth", "message": "token refreshed"]])
        let exposed = try await server.httpResponse("/metrics") + server.httpResponse("/healthz") + server.httpResponse("/readyz")
        _ = try await host.close()
        server.signal(SIGTERM)
        #expect(try await server.exitStatus(within: .seconds(15)) == 0)

        let log = server.logText
        #expect(log.contains("Token refused"), "the run logged the refusal: \(log.suffix(2000))")
        #expect(log.contains("<redacted>"), "the settings were dumped (service group, debug) and redacted")
        #expect(log.contains("trace") || log.contains("debug"), "verbose lines were written")
        let signatures = [valid, forged].map { String($0.split(separator: ".").last!) }
        for needle in [Self.secret, Self.adminToken, "do-not-print", valid, forged] + signatures {
            #expect(!log.contains(needle), "found in the log")
            #expect(!exposed.contains(needle), "found in metrics or health")
        }
    }
}
