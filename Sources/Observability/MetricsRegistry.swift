import Foundation
import Prometheus
import Synchronization

/// The process's Prometheus registry and every metric the server records.
///
/// Metrics are registered once, here, with HELP text, base units (`_seconds`, `_bytes`),
/// `_total` on counters and the `owp_` prefix. Label values come only from closed sets
/// (message types, error codes, reasons, close codes) — never room, client or user ids.
/// Tests create their own instance; nothing is global.
public final class MetricsRegistry: Sendable {
    public let registry: PrometheusCollectorRegistry
    let startTime: Double

    // Connections
    let connectionsActive: Gauge
    let connectionsTotal: Counter
    let connectionsAuthenticated: Gauge
    let connectionsRejected: Labeled<Counter>
    /// Keyed by close code label (`client` or the number); each series carries code and reason.
    let connectionsClosed: Labeled<Counter>
    let tcpConnections: Gauge
    let tcpConnectionLimit: Gauge
    let tcpAcceptPauses: MonotonicCounter
    let requestHeadTimeouts: MonotonicCounter
    let requestBodiesTooLarge: MonotonicCounter
    // Sessions (PROTOCOL.md §13)
    let sessionsAway: Gauge
    let sessionResumes: Labeled<Counter>
    let sessionGracesExpired: Counter
    // The shared store (PROTOCOL.md §14)
    let storeReachable: Gauge
    let storeCallSeconds: Labeled<ValueHistogram>
    let storeErrors: Labeled<Counter>
    let roomsTakenOver: Counter
    let roomsHandedOver: Counter
    let roomsOffered: Counter
    let leasesLost: Counter
    let storeUnavailableReplies: Counter
    // The bus between replicas (PROTOCOL.md §14)
    let busFramesSent: Counter
    let busFramesReceived: Counter
    let busNotificationsReceived: Counter
    let busLatency: ValueHistogram
    let busSpills: Counter
    let busLinksDropped: Labeled<Counter>
    let relayedConnections: Gauge
    let remoteSessions: Gauge
    // Rooms
    let roomsActive: Gauge
    let roomsCreated: Counter
    let roomsClosed: Labeled<Counter>
    let roomsByMembers: Labeled<Gauge>
    // Messages
    let messagesReceived: Labeled<Counter>
    let messagesSent: Labeled<Counter>
    let errorsSent: Labeled<Counter>
    let handlingSeconds: Labeled<ValueHistogram>
    let messageBytesReceived: Counter
    let messageBytesSent: Counter
    let wireBytesReceived: MonotonicCounter
    let wireBytesSent: MonotonicCounter
    // Sync
    let stateUpdates: Labeled<Counter>
    let syncDrift: ValueHistogram
    let schedulingLateness: ValueHistogram
    let barrierReleases: Labeled<Counter>
    let barrierWait: ValueHistogram
    let participantsByStatus: Labeled<Gauge>
    let roomsBySync: Labeled<Gauge>
    let roomHostOffsetMax: Gauge
    let roomClockUncertaintyMax: Gauge
    let clientRTT: ValueHistogram
    let playLead: ValueHistogram
    // Outbound
    let slowClientDisconnects: Counter
    let queuePeakDepth: Gauge
    // Logs
    let clientLogLinesDropped: Counter
    let logLinesSuppressed: Labeled<Counter>
    // Lifecycle and process
    let draining: Gauge
    let participantStatusLabels: [String]
    let roomSyncLabels: [String]
    let processStart: Gauge
    let residentMemory: Gauge
    let virtualMemory: Gauge
    let openFDs: Gauge
    let maxFDs: Gauge
    let cpuSeconds: MonotonicCounter

    public init(version: String, revision: String, protocolVersion: Int, labels: MetricLabels) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        startTime = Date().timeIntervalSince1970
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: .init(metricName: name, unitName: "", helpText: help))
        }
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: .init(metricName: name, unitName: "", helpText: help))
        }
        func histogram(_ name: String, _ help: String, _ buckets: [Double]) -> ValueHistogram {
            registry.makeValueHistogram(descriptor: .init(metricName: name, unitName: "", helpText: help), buckets: buckets)
        }

        registry.makeGauge(
            descriptor: .init(metricName: "owp_build_info", unitName: "", helpText: "Build information; the value is always 1."),
            labels: [("version", version), ("revision", revision), ("protocol_version", String(protocolVersion))]
        ).set(to: 1)

        connectionsActive = gauge("owp_connections_active", "WebSocket connections currently open.")
        connectionsTotal = counter("owp_connections_total", "WebSocket connections accepted since start.")
        connectionsAuthenticated = gauge("owp_connections_authenticated", "Open connections that are authenticated.")
        connectionsRejected = Labeled(
            registry, "owp_connections_rejected_total", "Upgrade requests refused (400 bad handshake, 426 WebSocket version, 403 origin, 429 limits, 503 draining), by reason.",
            label: "reason", values: labels.refusalReasons)
        let closed = MetricNameDescriptor(
            metricName: "owp_connections_closed_total", unitName: "",
            helpText: "Connections closed, by close code and its reason (code client = the client closed first).")
        connectionsClosed = Labeled(
            labels.closeReasons.map { ($0.codeLabel, [("code", $0.codeLabel), ("reason", $0.reason)]) },
            other: ("other", [("code", "other"), ("reason", "other")])
        ) { registry.makeCounter(descriptor: closed, labels: $0) }

        tcpConnections = gauge("owp_tcp_connections", "TCP connections open, HTTP and WebSocket.")
        tcpConnectionLimit = gauge("owp_tcp_connection_limit", "The bound on open TCP connections (below the descriptor limit).")
        tcpAcceptPauses = MonotonicCounter(counter("owp_tcp_accept_pauses_total", "Times the TCP connection bound stopped the listener."))
        requestHeadTimeouts = MonotonicCounter(
            counter("owp_request_head_timeouts_total", "Connections closed because their request head did not arrive in time."))
        requestBodiesTooLarge = MonotonicCounter(
            counter("owp_request_bodies_too_large_total", "HTTP connections closed because a request body passed the bound."))

        sessionsAway = gauge("owp_sessions_away", "Room members whose connection ended and who may still resume (within RESUME_GRACE_SECONDS), read at scrape.")
        let resumes = MetricNameDescriptor(
            metricName: "owp_session_resumes_total", unitName: "",
            helpText: "Resume attempts, by way (token: a resume message; identity: an auth as the same user) and result.")
        sessionResumes = Labeled(
            labels.resumeWays.flatMap { way in labels.resumeResults.map { result in ("\(way)/\(result)", [("way", way), ("result", result)]) } },
            other: ("other", [("way", "other"), ("result", "other")])
        ) { registry.makeCounter(descriptor: resumes, labels: $0) }
        sessionGracesExpired = counter("owp_session_graces_expired_total", "Away sessions whose grace ran out without a resume (they then left their room).")

        storeReachable = gauge("owp_store_reachable", "1 while the shared store (DATABASE_URL) answered its last call; always 1 without one.")
        storeReachable.set(to: 1)
        storeCallSeconds = Labeled(
            registry, "owp_store_call_seconds", "Round trips to the shared store's database, by operation (failed calls included).",
            label: "operation", values: labels.storeOperations, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])
        storeErrors = Labeled(
            registry, "owp_store_errors_total", "Calls to the shared store's database that failed or timed out, by operation.",
            label: "operation", values: labels.storeOperations)
        roomsTakenOver = counter("owp_store_rooms_taken_over_total", "Rooms this replica took over from their stored state (after a handover, or a lease that ran out).")
        roomsHandedOver = counter("owp_store_rooms_handed_over_total", "Rooms this replica handed away as they were (drain with a shared store, or a lost claim).")
        roomsOffered = counter(
            "owp_store_rooms_offered_total", "Rooms this replica, handing them over at a drain, offered to another live replica to take over at once.")
        leasesLost = counter("owp_store_leases_lost_total", "Rooms whose claim this replica found taken by another (it stopped acting on them).")
        storeUnavailableReplies = counter(
            "owp_store_unavailable_replies_total", "Messages answered SERVICE_UNAVAILABLE because the shared store could not be reached or the room's claim was not current.")
        busFramesSent = counter("owp_bus_frames_sent_total", "Frames sent to other replicas over the bus (a client's message relayed, a delivery, a close).")
        busFramesReceived = counter("owp_bus_frames_received_total", "Frames received from other replicas over the bus.")
        busNotificationsReceived = counter("owp_bus_notifications_received_total", "Bus notifications received (each a batch of frames).")
        busLatency = histogram(
            "owp_bus_latency_seconds", "From a bus notification's sending on one replica to its receipt here (the cross-replica hop, wall clocks).",
            [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])
        busSpills = counter("owp_bus_spilled_total", "Bus notifications too big for NOTIFY, passed through the owp_bus_spill table instead.")
        busLinksDropped = Labeled(
            registry, "owp_bus_links_dropped_total", "Links with another replica dropped (their relayed connections reconnect and resume), by reason.",
            label: "reason", values: labels.busLinkDrops)
        relayedConnections = gauge("owp_bus_relayed_connections", "Connections here whose session another replica (the room's owner) serves, read at scrape.")
        remoteSessions = gauge("owp_bus_remote_sessions", "Sessions served here whose connection is on another replica, read at scrape.")

        roomsActive = gauge("owp_rooms_active", "Rooms currently open.")
        roomsCreated = counter("owp_rooms_created_total", "Rooms created since start.")
        roomsClosed = Labeled(registry, "owp_rooms_closed_total", "Rooms closed, by reason.", label: "reason", values: labels.roomCloseReasons)
        roomsByMembers = Labeled(
            registry, "owp_rooms_by_members", "Open rooms by how many members they have now (hosts included), read at scrape.",
            label: "members", values: MetricLabels.roomSizeClasses.map(\.label))

        messagesReceived = Labeled(registry, "owp_messages_received_total", "Client messages received, by type.", label: "type", values: labels.clientTypes)
        messagesSent = Labeled(registry, "owp_messages_sent_total", "Server messages queued for clients, by type (one per recipient).", label: "type", values: labels.serverTypes)
        errorsSent = Labeled(registry, "owp_errors_sent_total", "Error messages sent, by code.", label: "code", values: labels.errorCodes)
        handlingSeconds = Labeled(
            registry, "owp_message_handling_seconds",
            "Time from a client message's last frame being read off the socket to every resulting message being queued, by type.",
            label: "type", values: labels.clientTypes, buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
        )
        messageBytesReceived = counter("owp_message_received_bytes_total", "Bytes of client messages received, as decoded text (before decompression counts).")
        messageBytesSent = counter("owp_message_sent_bytes_total", "Bytes of server messages queued, as text, once per recipient (before compression).")
        wireBytesReceived = MonotonicCounter(
            counter("owp_websocket_received_bytes_total", "Bytes read from WebSocket sockets (framing and compression included)."))
        wireBytesSent = MonotonicCounter(
            counter("owp_websocket_sent_bytes_total", "Bytes written to WebSocket sockets (framing and compression included)."))

        stateUpdates = Labeled(registry, "owp_state_updates_total", "Host state reports, by result (accepted or the drop reason).", label: "result", values: labels.stateResults)
        syncDrift = histogram(
            "owp_sync_drift_seconds", "|Host-reported position - projected room position| on every host state report.",
            [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600])
        schedulingLateness = histogram(
            "owp_scheduling_lateness_seconds", "How late a scheduled release (barrier timeout, status flush) ran after its due time.",
            [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1])
        barrierReleases = Labeled(registry, "owp_barrier_releases_total", "Pending plays released, by cause.", label: "cause", values: labels.barrierCauses)
        barrierWait = histogram("owp_barrier_wait_seconds", "How long a pending play waited on the ready barrier.", [0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5])
        roomsBySync = Labeled(
            registry, "owp_rooms_by_sync",
            "Open rooms by how far their members are from the room's timeline as the server sees it (docs/sync.md: the host's reports, the members' statuses), read at scrape.",
            label: "sync", values: labels.roomSyncVerdicts)
        roomHostOffsetMax = gauge(
            "owp_room_host_offset_max_seconds",
            "The largest |host - room timeline| offset among playing rooms, smoothed over the host's reports since the timeline last changed (0 when none), read at scrape.")
        roomClockUncertaintyMax = gauge(
            "owp_room_clock_uncertainty_max_seconds",
            "Half the worst recent round trip among the members of playing rooms: how far a member's clock estimate can be off, read at scrape.")
        clientRTT = histogram(
            "owp_client_rtt_seconds", "Round trips to clients measured by the server's WebSocket pings.",
            [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2])
        playLead = histogram(
            "owp_play_lead_seconds", "Lead of each scheduled play (target - release): fixed, or adaptive to the room's round trips.",
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.45, 1.5, 1.55, 2])
        participantsByStatus = Labeled(
            registry, "owp_participants", "Room members by their last reported status (none = no status reported; hosts included).",
            label: "status", values: labels.statuses + [MetricLabels.noStatus])

        slowClientDisconnects = counter("owp_slow_client_disconnects_total", "Clients disconnected because their outbound queue was full.")
        queuePeakDepth = gauge("owp_outbound_queue_peak_depth", "Deepest any connection's outbound queue was since the previous scrape, in messages.")

        clientLogLinesDropped = counter("owp_client_log_lines_dropped_total", "client_log lines dropped because a connection was over its log budget.")
        logLinesSuppressed = Labeled(
            registry, "owp_log_lines_suppressed_total", "Log lines not written because their kind was over its rate (the count is logged).",
            label: "kind", values: LogKind.allCases.map(\.rawValue))

        draining = gauge("owp_draining", "1 while the server drains for shutdown, else 0.")
        processStart = gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
        residentMemory = gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        virtualMemory = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
        openFDs = gauge("process_open_fds", "Number of open file descriptors.")
        maxFDs = gauge("process_max_fds", "Maximum number of open file descriptors.")
        cpuSeconds = MonotonicCounter(counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
        processStart.set(to: startTime)
        participantStatusLabels = labels.statuses + [MetricLabels.noStatus]
        roomSyncLabels = labels.roomSyncVerdicts
    }
}

/// A counter that follows a running total read elsewhere (CPU time, socket bytes): each
/// `advance(to:)` adds what the total grew by since the last one.
final class MonotonicCounter: Sendable {
    private let counter: Counter
    private let last = Mutex<Double>(0)

    init(_ counter: Counter) {
        self.counter = counter
    }

    func advance(to total: Double) {
        let delta = last.withLock { last -> Double in
            defer { last = max(last, total) }
            return max(0, total - last)
        }
        if delta > 0 { counter.increment(by: delta) }
    }
}

/// A family of metrics over one label with a closed set of values, all created up front (so
/// each series exists from the start at zero) and looked up without touching the registry.
struct Labeled<Metric: AnyObject & Sendable>: Sendable {
    private let series: [String: Metric]
    private let other: Metric

    init(_ series: [String: Metric], other: Metric) {
        self.series = series
        self.other = other
    }

    /// The series for `value`; values outside the set share the `other` series.
    subscript(_ value: String) -> Metric { series[value] ?? other }
}

extension Labeled {
    /// One series per value (and `other`), each made by `make` with its label pair.
    init(label: String, values: [String], make: ([(String, String)]) -> Metric) {
        self.init(values.map { ($0, [(label, $0)]) }, other: ("other", [(label, "other")]), make: make)
    }

    /// One series per key, each with its own label set (several labels per series).
    init(_ keyed: [(key: String, labels: [(String, String)])], other: (key: String, labels: [(String, String)]), make: ([(String, String)]) -> Metric) {
        var series: [String: Metric] = [:]
        for (key, labels) in keyed + [other] {
            series[key] = make(labels)
        }
        self.init(series, other: series[other.key]!)
    }
}

extension Labeled where Metric == Counter {
    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String, label: String, values: [String]) {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        self.init(label: label, values: values) { registry.makeCounter(descriptor: descriptor, labels: $0) }
    }
}

extension Labeled where Metric == Gauge {
    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String, label: String, values: [String]) {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        self.init(label: label, values: values) { registry.makeGauge(descriptor: descriptor, labels: $0) }
    }
}

extension Labeled where Metric == ValueHistogram {
    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String, label: String, values: [String], buckets: [Double]) {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        self.init(label: label, values: values) { registry.makeValueHistogram(descriptor: descriptor, labels: $0, buckets: buckets) }
    }
}
