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
                #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
                #expect(Self.families(String(buffer: response.body)) == Self.expectedFamilies)
            }
        }
    }

    /// Every metric family docs/operations.md documents, with its type: a family that goes
    /// missing, changes type or appears undocumented fails here.
    static let expectedFamilies: [String: String] = [
        "owp_build_info": "gauge", "owp_connections_active": "gauge", "owp_connections_total": "counter",
        "owp_tcp_connections": "gauge", "owp_tcp_connection_limit": "gauge", "owp_tcp_accept_pauses_total": "counter",
        "owp_request_head_timeouts_total": "counter", "owp_request_bodies_too_large_total": "counter",
        "owp_connections_authenticated": "gauge", "owp_sessions_away": "gauge", "owp_session_resumes_total": "counter",
        "owp_session_graces_expired_total": "counter", "owp_store_reachable": "gauge", "owp_store_call_seconds": "histogram",
        "owp_store_errors_total": "counter", "owp_store_rooms_taken_over_total": "counter", "owp_store_rooms_handed_over_total": "counter", "owp_store_rooms_offered_total": "counter",
        "owp_store_leases_lost_total": "counter", "owp_store_unavailable_replies_total": "counter",
        "owp_bus_frames_sent_total": "counter", "owp_bus_frames_received_total": "counter", "owp_bus_notifications_received_total": "counter",
        "owp_bus_latency_seconds": "histogram", "owp_bus_spilled_total": "counter", "owp_bus_links_dropped_total": "counter",
        "owp_bus_relayed_connections": "gauge", "owp_bus_remote_sessions": "gauge", "owp_connections_rejected_total": "counter", "owp_connections_closed_total": "counter",
        "owp_rooms_active": "gauge", "owp_rooms_created_total": "counter", "owp_rooms_closed_total": "counter", "owp_rooms_by_members": "gauge",
        "owp_messages_received_total": "counter", "owp_messages_sent_total": "counter", "owp_errors_sent_total": "counter",
        "owp_message_handling_seconds": "histogram", "owp_message_received_bytes_total": "counter", "owp_message_sent_bytes_total": "counter",
        "owp_websocket_received_bytes_total": "counter", "owp_websocket_sent_bytes_total": "counter",
        "owp_state_updates_total": "counter", "owp_sync_drift_seconds": "histogram", "owp_scheduling_lateness_seconds": "histogram",
        "owp_barrier_releases_total": "counter", "owp_barrier_wait_seconds": "histogram", "owp_participants": "gauge",
        "owp_rooms_by_sync": "gauge", "owp_room_host_offset_max_seconds": "gauge", "owp_room_clock_uncertainty_max_seconds": "gauge",
        "owp_client_rtt_seconds": "histogram", "owp_play_lead_seconds": "histogram",
        "owp_slow_client_disconnects_total": "counter", "owp_outbound_queue_peak_depth": "gauge",
        "owp_client_log_lines_dropped_total": "counter", "owp_log_lines_suppressed_total": "counter", "owp_draining": "gauge",
        "process_start_time_seconds": "gauge", "process_resident_memory_bytes": "gauge", "process_virtual_memory_bytes": "gauge",
        "process_open_fds": "gauge", "process_max_fds": "gauge", "process_cpu_seconds_total": "counter",
    ]

    /// `# TYPE` lines of an exposition: family → type.
    static func families(_ text: String) -> [String: String] {
        var families: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts.count == 4 { families[String(parts[2])] = String(parts[3]) }
        }
        return families
    }

    /// HAProxy, F5 and uptime checkers probe with HEAD: the same status as GET, no body.
    @Test func headAnswersLikeGet() async throws {
        try await withLiveServer { port, server, _ in
            for (path, status) in [("/healthz", "200"), ("/health", "200"), ("/readyz", "200"), ("/ready", "200"), ("/metrics", "200"), ("/nope", "404")] {
                let response = try await offPool {
                    let socket = try RawSocket(port: port)
                    try socket.write(Array("HEAD \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
                    return String(decoding: try socket.read(count: 1 << 16), as: UTF8.self)
                }
                #expect(response.hasPrefix("HTTP/1.1 \(status)"), "HEAD \(path): \(response)")
                #expect(response.hasSuffix("\r\n\r\n"), "HEAD \(path) has no body")
            }
            server.health.markDraining()
            let draining = try await offPool {
                let socket = try RawSocket(port: port)
                return try socket.request("HEAD /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            }
            #expect(draining.hasPrefix("HTTP/1.1 503"))
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

    /// With several replicas, a replica that does not listen on the bus (starting, or its
    /// listener lost) cannot serve a member relayed through it: not ready until it does.
    @Test func readinessWaitsForTheBusListener() async throws {
        try await withLiveServer { _, server, client in
            server.health.markBus(listening: false)
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body) == #"{"status":"starting"}"#)
            }
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok, "liveness does not depend on the bus")
            }
            server.health.markBus(listening: true)
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }
}
