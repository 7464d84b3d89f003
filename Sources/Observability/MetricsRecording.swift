import Foundation
import Prometheus

/// The recording API: one method per thing worth counting. Callers never see Prometheus types.
extension MetricsRegistry {
    // MARK: Connections

    public func connectionOpened() {
        connectionsActive.increment()
        connectionsTotal.increment()
    }

    /// A connection ended with close `code` (`nil`: the client closed or vanished first).
    public func connectionClosed(code: UInt16?) {
        connectionsActive.decrement()
        connectionsClosed[code.map(String.init) ?? "client"].increment()
    }

    public func connectionRejected(reason: String) {
        connectionsRejected[reason].increment()
    }

    // MARK: Messages

    public func messageReceived(type: String, bytes: Int) {
        messagesReceived[type].increment()
        messageBytesReceived.increment(by: Int64(bytes))
    }

    public func messageHandled(type: String, seconds: Double) {
        handlingSeconds[type].record(seconds)
    }

    /// `count` recipients were queued one message of `bytes` bytes.
    public func messagesSent(type: String, count: Int, bytes: Int) {
        messagesSent[type].increment(by: Int64(count))
        messageBytesSent.increment(by: Int64(count * bytes))
    }

    public func errorSent(code: String) {
        errorsSent[code].increment()
    }

    // MARK: Sessions

    /// A resume attempt (PROTOCOL.md §13): `way` and `result` from the closed sets of ``MetricLabels``.
    public func sessionResume(way: String, result: String) {
        sessionResumes["\(way)/\(result)"].increment()
    }

    public func sessionGraceExpired() {
        sessionGracesExpired.increment()
    }

    // MARK: The shared store (PROTOCOL.md §14)

    /// One database call of the shared store, `operation` from its closed set.
    public func storeCall(_ operation: String, seconds: Double, failed: Bool) {
        storeCallSeconds[operation].record(seconds)
        if failed { storeErrors[operation].increment() }
    }

    public func storeReachability(_ reachable: Bool) {
        storeReachable.set(to: reachable ? 1 : 0)
    }

    public func roomTakenOver() { roomsTakenOver.increment() }
    public func roomHandedOver() { roomsHandedOver.increment() }
    public func roomsOffered(_ count: Int) { roomsOffered.increment(by: Int64(count)) }
    public func leaseLost() { leasesLost.increment() }
    public func storeUnavailableReply() { storeUnavailableReplies.increment() }

    // MARK: The bus between replicas (PROTOCOL.md §14)

    public func busSent(frames: Int) { busFramesSent.increment(by: Double(frames)) }

    /// One notification received: its frames, and how long it took from its sender.
    public func busReceived(frames: Int, latencySeconds: Double) {
        busNotificationsReceived.increment()
        busFramesReceived.increment(by: Double(frames))
        busLatency.record(latencySeconds)
    }

    public func busSpilled() { busSpills.increment() }

    /// `reason` from the bus's closed set of ``MetricLabels/busLinkDrops``.
    public func busLinkDropped(reason: String) { busLinksDropped[reason].increment() }

    // MARK: Rooms and sync

    public func roomCreated() {
        roomsCreated.increment()
    }

    public func roomClosed(reason: String) {
        roomsClosed[reason].increment()
    }

    public func stateUpdate(result: String, driftSeconds: Double) {
        stateUpdates[result].increment()
        syncDrift.record(driftSeconds)
    }

    public func barrierReleased(cause: String, waitSeconds: Double) {
        barrierReleases[cause].increment()
        barrierWait.record(waitSeconds)
    }

    public func roundTrip(seconds: Double) {
        clientRTT.record(seconds)
    }

    public func playScheduled(leadSeconds: Double) {
        playLead.record(leadSeconds)
    }

    public func scheduledRelease(latenessSeconds: Double) {
        schedulingLateness.record(max(0, latenessSeconds))
    }

    // MARK: Outbound, logs and lifecycle

    public func slowClientDisconnected() {
        slowClientDisconnects.increment()
    }

    public func clientLogLineDropped() {
        clientLogLinesDropped.increment()
    }

    public func logLineSuppressed(kind: LogKind) {
        logLinesSuppressed[kind.rawValue].increment()
    }

    public func drainStarted() {
        draining.set(to: 1)
    }

    public func drainFinished() {
        draining.set(to: 0)
    }

    // MARK: Scrape

    /// Values read from the live state at scrape time rather than tracked per event.
    public struct Snapshot: Sendable {
        public var roomsActive: Int
        public var authenticatedConnections: Int
        /// Members by status label (``MetricLabels/noStatus`` for members without one).
        public var participantsByStatus: [String: Int]
        /// Rooms by their number of members.
        public var roomSizes: [Int]
        /// The deepest any outbound queue was since the previous scrape.
        public var queuePeakDepth: Int
        /// Running totals of WebSocket socket bytes.
        public var wireBytesReceived: Int
        public var wireBytesSent: Int
        /// The TCP connection bound: connections open, the bound, running totals of pauses and head timeouts.
        public var tcpConnections: Int
        public var tcpConnectionLimit: Int
        public var tcpAcceptPauses: Int
        public var requestHeadTimeouts: Int
        public var requestBodiesTooLarge: Int
        /// Room members away from their connection, resumable.
        public var sessionsAway: Int
        /// Connections here served by another replica, and sessions here carried by another's connections.
        public var relayedConnections = 0
        public var remoteSessions = 0
        /// Rooms by sync verdict label; the largest host offset (seconds, absolute) and clock
        /// uncertainty (seconds) among playing rooms.
        public var roomsBySync: [String: Int] = [:]
        public var roomHostOffsetMax: Double = 0
        public var roomClockUncertaintyMax: Double = 0

        public init(
            roomsActive: Int, authenticatedConnections: Int, participantsByStatus: [String: Int], roomSizes: [Int], queuePeakDepth: Int,
            wireBytesReceived: Int, wireBytesSent: Int, tcpConnections: Int, tcpConnectionLimit: Int, tcpAcceptPauses: Int, requestHeadTimeouts: Int,
            requestBodiesTooLarge: Int, sessionsAway: Int = 0
        ) {
            self.sessionsAway = sessionsAway
            self.tcpConnections = tcpConnections
            self.tcpConnectionLimit = tcpConnectionLimit
            self.tcpAcceptPauses = tcpAcceptPauses
            self.requestHeadTimeouts = requestHeadTimeouts
            self.requestBodiesTooLarge = requestBodiesTooLarge
            self.roomsActive = roomsActive
            self.authenticatedConnections = authenticatedConnections
            self.participantsByStatus = participantsByStatus
            self.roomSizes = roomSizes
            self.queuePeakDepth = queuePeakDepth
            self.wireBytesReceived = wireBytesReceived
            self.wireBytesSent = wireBytesSent
        }
    }

    /// The Prometheus text exposition (format 0.0.4), after refreshing the scrape-time values.
    public func exposition(_ snapshot: Snapshot) -> String {
        roomsActive.set(to: Double(snapshot.roomsActive))
        connectionsAuthenticated.set(to: Double(snapshot.authenticatedConnections))
        sessionsAway.set(to: Double(snapshot.sessionsAway))
        relayedConnections.set(to: Double(snapshot.relayedConnections))
        remoteSessions.set(to: Double(snapshot.remoteSessions))
        for status in participantStatusLabels {
            participantsByStatus[status].set(to: Double(snapshot.participantsByStatus[status] ?? 0))
        }
        for verdict in roomSyncLabels {
            roomsBySync[verdict].set(to: Double(snapshot.roomsBySync[verdict] ?? 0))
        }
        roomHostOffsetMax.set(to: snapshot.roomHostOffsetMax)
        roomClockUncertaintyMax.set(to: snapshot.roomClockUncertaintyMax)
        for sizeClass in MetricLabels.roomSizeClasses {
            roomsByMembers[sizeClass.label].set(to: Double(snapshot.roomSizes.filter(sizeClass.range.contains).count))
        }
        queuePeakDepth.set(to: Double(snapshot.queuePeakDepth))
        wireBytesReceived.advance(to: Double(snapshot.wireBytesReceived))
        wireBytesSent.advance(to: Double(snapshot.wireBytesSent))
        tcpConnections.set(to: Double(snapshot.tcpConnections))
        tcpConnectionLimit.set(to: Double(snapshot.tcpConnectionLimit))
        tcpAcceptPauses.advance(to: Double(snapshot.tcpAcceptPauses))
        requestHeadTimeouts.advance(to: Double(snapshot.requestHeadTimeouts))
        requestBodiesTooLarge.advance(to: Double(snapshot.requestBodiesTooLarge))
        let process = ProcessStats.read()
        residentMemory.set(to: Double(process.residentBytes))
        virtualMemory.set(to: Double(process.virtualBytes))
        openFDs.set(to: Double(process.openFDs))
        maxFDs.set(to: Double(process.maxFDs))
        cpuSeconds.advance(to: process.cpuSeconds)
        return registry.emitToString()
    }
}
