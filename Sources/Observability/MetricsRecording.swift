import Foundation
import Prometheus

/// The recording API: one method per thing worth counting. Callers never see Prometheus types.
extension MetricsRegistry {
    // MARK: Connections

    public func connectionOpened() {
        connectionsActive.increment()
        connectionsTotal.increment()
    }

    /// A connection ended; `code` is the close code as a string, or `client`.
    public func connectionClosed(code: String) {
        connectionsActive.decrement()
        connectionsClosed[code].increment()
    }

    public func connectionRejected(reason: String) {
        connectionsRejected[reason].increment()
    }

    // MARK: Messages

    public func messageReceived(type: String) {
        messagesReceived[type].increment()
    }

    public func messageHandled(type: String, seconds: Double) {
        handlingSeconds[type].record(seconds)
    }

    public func messagesSent(type: String, count: Int) {
        messagesSent[type].increment(by: Int64(count))
    }

    public func errorSent(code: String) {
        errorsSent[code].increment()
    }

    // MARK: Rooms and sync

    public func roomCreated() {
        roomsCreated.increment()
    }

    public func roomClosed(reason: String) {
        roomsClosed[reason].increment()
    }

    public func roomMembership(members: Int) {
        roomMembers.record(Double(members))
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

    // MARK: Outbound and lifecycle

    public func slowClientDisconnected() {
        slowClientDisconnects.increment()
    }

    public func drainStarted() {
        draining.set(to: 1)
    }

    public func drainFinished(seconds: Double) {
        draining.set(to: 0)
        drainDuration.set(to: seconds)
    }

    // MARK: Scrape

    /// Values read from the live state at scrape time rather than tracked per event.
    public struct Snapshot: Sendable {
        public var roomsActive: Int
        public var authenticatedConnections: Int
        public var participantsByStatus: [String: Int]
        /// The deepest any outbound queue has been since start (open and closed connections).
        public var queueHighWater: Int

        public init(roomsActive: Int, authenticatedConnections: Int, participantsByStatus: [String: Int], queueHighWater: Int) {
            self.roomsActive = roomsActive
            self.authenticatedConnections = authenticatedConnections
            self.participantsByStatus = participantsByStatus
            self.queueHighWater = queueHighWater
        }
    }

    /// The Prometheus text exposition (format 0.0.4), after refreshing the scrape-time values.
    public func exposition(_ snapshot: Snapshot) -> String {
        roomsActive.set(to: Double(snapshot.roomsActive))
        connectionsAuthenticated.set(to: Double(snapshot.authenticatedConnections))
        for status in participantStatusLabels {
            participantsByStatus[status].set(to: Double(snapshot.participantsByStatus[status] ?? 0))
        }
        queueHighWater.set(to: Double(snapshot.queueHighWater))
        let process = ProcessStats.read()
        residentMemory.set(to: Double(process.residentBytes))
        openFDs.set(to: Double(process.openFDs))
        return registry.emitToString()
    }
}

/// Resident memory and open descriptors of this process, from /proc (Linux).
public struct ProcessStats: Sendable {
    public var residentBytes: Int
    public var openFDs: Int

    public static func read() -> ProcessStats {
        var resident = 0
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) {
                resident = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
            }
        }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        return ProcessStats(residentBytes: resident, openFDs: fds)
    }
}
