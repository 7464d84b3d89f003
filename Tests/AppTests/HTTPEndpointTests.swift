import Foundation
import HummingbirdTesting
import Testing
@testable import App

@Suite struct HTTPEndpointTests {
    @Test func healthReadyAndMetrics() async throws {
        try await withLiveServer { _, _, client in
            for path in ["/healthz", "/health"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok)
                    let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect(body?["status"] as? String == "ok")
                    #expect(body?["auth_enabled"] as? Bool == false)
                    #expect(body?["protocol_version"] as? Int == 1)
                    #expect(body?["version"] is String)
                }
            }
            for path in ["/readyz", "/ready"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body) == #"{"status":"ready"}"#)
                }
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("owp_build_info"))
            }
        }
    }

    @Test func readinessIsFalseDuringDrain() async throws {
        try await withLiveServer { _, server, client in
            server.health.markDraining()
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body) == #"{"status":"shutting_down"}"#)
            }
        }
    }
}
