import Hummingbird
import HummingbirdTesting
import Logging
@testable import App

/// Runs a real server on a free loopback port for the duration of `body`.
func withLiveServer(
    _ configure: (inout ServerSettings) -> Void = { _ in },
    logs: LogCapture? = nil,
    _ body: @Sendable (_ port: Int, _ server: SessionServer, _ client: any TestClientProtocol) async throws -> Void
) async throws {
    var settings = ServerSettings()
    settings.host = "127.0.0.1"
    settings.port = 0
    settings.transport.closeTimeout = .seconds(2)
    settings.admission.allowedOrigins = ["*"]  // the Swift test client always sends an Origin
    configure(&settings)
    var logger = logs?.logger() ?? Logger(label: "test-server")
    if logs == nil { logger.logLevel = .warning }
    let server = SessionServer(settings: settings, logger: logger)
    let app = server.makeApplication()
    try await app.test(.live) { client in
        guard let port = client.port else { throw TestFailure("no port") }
        try await body(port, server, client)
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
