import Prometheus

/// The process's Prometheus registry and the metrics the server records into it.
///
/// Every metric is registered here once, with HELP text, through swift-prometheus's native
/// API; `/metrics` serves ``exposition()``. Tests create their own instance (no global
/// bootstrap), so several servers can live in one test process.
public final class MetricsRegistry: Sendable {
    public let registry: PrometheusCollectorRegistry

    let connectionsActive: Gauge
    let connectionsTotal: Counter

    public init(version: String, protocolVersion: Int) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        registry.makeGauge(
            name: "owp_build_info",
            labels: [("version", version), ("protocol_version", String(protocolVersion))],
            help: "Build information; the value is always 1."
        ).set(to: 1.0)
        connectionsActive = registry.makeGauge(name: "owp_connections_active", help: "WebSocket connections currently open.")
        connectionsTotal = registry.makeCounter(name: "owp_connections_total", help: "WebSocket connections accepted since start.")
    }

    public func connectionOpened() {
        connectionsActive.increment()
        connectionsTotal.increment()
    }

    public func connectionClosed() {
        connectionsActive.decrement()
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> String {
        registry.emitToString()
    }
}
