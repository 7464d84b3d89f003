import Hummingbird
import Observability

/// The plain HTTP endpoints of PROTOCOL.md §12: health, readiness and metrics.
enum HTTPRoutes {
    static func register(on router: Router<BasicRequestContext>, health: HealthState, metrics: @escaping @Sendable () -> String, authEnabled: Bool) {
        let healthBody = #"{"status":"ok","auth_enabled":\#(authEnabled),"version":"\#(BuildInfo.version)","protocol_version":\#(BuildInfo.protocolVersion)}"#
        let healthz: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            json(.ok, healthBody)
        }
        let readyz: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            if health.isReady { return json(.ok, #"{"status":"ready"}"#) }
            return json(.serviceUnavailable, health.isDraining ? #"{"status":"shutting_down"}"# : #"{"status":"starting"}"#)
        }
        let exposition: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics()))
            )
        }
        // HEAD too: load balancers (HAProxy, F5) and uptime checkers probe with it. Same status
        // and headers, no body.
        for (path, handler) in [("/healthz", healthz), ("/health", healthz), ("/readyz", readyz), ("/ready", readyz), ("/metrics", exposition)] {
            router.get(RouterPath(path), use: handler)
            router.head(RouterPath(path)) { request, context in
                var response = try await handler(request, context)
                response.body = .init()
                return response
            }
        }
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
