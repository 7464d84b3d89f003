import Foundation
import Logging
import Observability
import PostgresNIO
import Synchronization
import WatchPartyCore

/// The shared store (PROTOCOL.md §14): the state in this process's memory as with the
/// embedded default, and every room this replica owns written to PostgreSQL as it changes.
///
/// Guarantees:
/// - **Written as it changes.** Every update's ``Outcome/changes`` marks its rooms; every
///   ``flushInterval`` the marked rooms' records are written, in one transaction, each under
///   this replica's claim (``RoomTable``'s fencing rule). A record equal to the last one
///   written is not written again. While the database answers, a crash loses at most the
///   changes of the last ``flushInterval`` plus one write's time (PROTOCOL.md: 200 ms); while
///   it does not, at most those of the claim's remaining time (``isActing``).
/// - **Writes in order.** Each write carries a sequence number the database compares, so a
///   write given up on that lands after a later one changes nothing; a room another owner
///   closed is never brought back (only rooms made here are ever inserted).
/// - **One owner.** Claims are renewed every ``renewInterval``. This replica acts on its
///   rooms only while the last successful renewal began less than the lease minus a margin
///   ago (``isActing``), so by the time another replica may claim a room (the lease has run
///   out by the database's clock) this one has stopped acting on it. A room whose claim is
///   found taken is removed here (``whenLost(_:)``).
/// - **Taken over on demand.** A room is brought here when an input names it (a resume token,
///   an identity, a join) and no live replica owns it; concurrent requests for one room share
///   one claim.
/// - Writes are serialised: one flush at a time, so a room's records reach the database in
///   the order they were taken.
final class PostgresPartyStore: PartyStore, SharedRoomStore {
    private struct Lease {
        var epoch: Int64
        /// Made here and its row not yet known to exist: its writes may insert it. Cleared by
        /// the first confirmed write, so that afterwards a write that misses means the claim was
        /// lost (a room another owner closed is never inserted again).
        var created: Bool
        /// A write of it was sent (its row may exist, even if that write was given up on).
        var writeSent = false
        /// The room is in memory here (made here, or adopted after its claim): only then can its
        /// absence from memory mean it closed (and its row be deleted).
        var adopted: Bool
        /// When the statement that began this claim (the claim, or the first insert) was sent:
        /// the claim lasts at least a lease from then.
        var since: ContinuousClock.Instant
    }

    private struct Ledger {
        var dirty: Set<RoomID> = []
        var leases: [RoomID: Lease] = [:]
        /// The last record written per room, as JSON (to skip writing an unchanged one).
        var written: [RoomID: String] = [:]
        /// Rooms whose claim was lost or handed over, until they are gone from memory: never
        /// claimed anew by a change that touches them in between.
        var relinquished: Set<RoomID> = []
        /// When the last successful renewal round began: every claim held then lasts a lease from it.
        var renewedAt: ContinuousClock.Instant
        /// Orders this replica's writes (``RoomTable/Write``).
        var nextSeq: Int64 = 0
        /// Identities whose rooms are being looked up.
        var identitiesRecovering: Set<String> = []
        var reachable = false
        var handingOver = false
        var flushing = false
    }

    static let flushInterval: Duration = .milliseconds(100)
    static let renewInterval: Duration = .seconds(1)
    /// Waits for a room whose owner is gone to be claimable (its lease to run out), polling.
    static let claimPoll: Duration = .milliseconds(250)
    /// How much longer than expected a lease must have become to count as renewed, seconds.
    static let renewalSign = 0.5
    /// Recoveries (claims and look-ups) at once; the others wait their turn, and one whose turn
    /// comes only after ``recoveryQueueWait`` gets SERVICE_UNAVAILABLE. Their look-ups go in batches
    /// (``BatchedLookup``), so the bound costs the database a few calls, not one per recovery.
    static let recoveryLimit = 256
    static let recoveryQueueWait: Duration = .seconds(5)
    /// How many more times a room not in the database is looked for, ``flushInterval`` × 3
    /// apart, before it is taken not to exist: a room another replica made a moment ago may not
    /// be written yet.
    static let missingLooks = 3
    /// How often the rooms other replicas own are read for the lobby (PROTOCOL.md §14: up to 1 s late).
    static let listingInterval: Duration = .seconds(1)
    /// How often rooms nobody came back to are removed from the database.
    static let janitorInterval: Duration = .seconds(30)

    private let party: Mutex<Party>
    private let ledger: Mutex<Ledger>
    private let claims = Mutex<[RoomID: Task<RecoveryVerdict, Never>]>([:])
    /// Recoveries under way (bounded: clients cause them).
    private let recoveries = TurnGate(limit: PostgresPartyStore.recoveryLimit)
    private let lostHandler = Mutex<(@Sendable ([RoomID]) -> Void)?>(nil)
    /// Who is told of the rooms other replicas own, and what it was told last.
    private let listing = Mutex<(handler: (@Sendable ([ListedRoom]) -> Void)?, last: [ListedRoom])>((nil, []))
    let table: RoomTable
    private let leaseDuration: Duration
    /// How long before its lease runs out this replica stops acting on its rooms.
    private let safetyMargin: Duration
    private let metrics: MetricsRegistry
    private let health: HealthState?
    /// RESUME_GRACE_SECONDS: a room unclaimed for longer than this and a lease is abandoned.
    private let graceSeconds: Int
    private let logger: Logger
    /// With the bus: which replicas listen on it (an owner that does serves its rooms' members
    /// connected here, through it).
    private let directory: ReplicaDirectory?
    /// A reconnect storm's look-ups, made together (``BatchedLookup``): the room of a resume
    /// token, the rooms of an identity, and which of the rooms named is served by another live
    /// replica (relayed there without a claim attempt).
    private let roomsByToken: BatchedLookup<String, RoomID>
    private let roomsByIdentity: BatchedLookup<String, [RoomID]>
    private let liveOwnersElsewhere: BatchedLookup<RoomID, String>
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    init(_ party: Party, table: RoomTable, metrics: MetricsRegistry, health: HealthState? = nil, directory: ReplicaDirectory? = nil, logger: Logger) {
        self.directory = directory
        self.graceSeconds = Int(party.rules.resumeGraceMs / 1000)
        self.party = Mutex(party)
        self.table = table
        self.leaseDuration = .seconds(table.leaseSeconds)
        self.safetyMargin = max(.seconds(1), .seconds(table.leaseSeconds) / 5)
        self.metrics = metrics
        self.health = health
        self.logger = logger
        self.ledger = Mutex(Ledger(renewedAt: .now))
        roomsByToken = BatchedLookup { [table, metrics] digests in
            try await Self.measured(.locate, metrics) { try await table.rooms(resumedBy: digests) }
        }
        roomsByIdentity = BatchedLookup { [table, metrics] identities in
            try await Self.measured(.locate, metrics) { try await table.rooms(of: identities) }
        }
        liveOwnersElsewhere = BatchedLookup { [table, metrics, directory] rooms in
            guard let directory else { return [:] }
            let owners = try await Self.measured(.locate, metrics) { try await table.ownersElsewhere(of: rooms) }
            guard !owners.isEmpty else { return [:] }
            let live = try await Self.measured(.locate, metrics) { try await directory.live(among: Array(Set(owners.values))) }
            return owners.filter { live.contains($0.value) }
        }
    }

    // MARK: PartyStore

    func update<Extra>(_ body: (inout Party) -> (outcome: Outcome, extra: Extra)) -> (outcome: Outcome, extra: Extra) {
        party.withLock { party in
            let result = body(&party)
            let changes = result.outcome.changes
            guard !changes.isEmpty else { return result }
            var rooms = changes.rooms
            for session in changes.sessions {
                if let room = party.sessions[session]?.roomID { rooms.insert(room) }
            }
            ledger.withLock { ledger in
                for room in rooms {
                    if party.rooms[room] == nil { ledger.relinquished.remove(room) }
                    if ledger.leases[room] == nil, party.rooms[room] != nil, !ledger.handingOver, !ledger.relinquished.contains(room) {
                        // Created here: its claim starts with its first write.
                        ledger.leases[room] = Lease(epoch: 1, created: true, adopted: true, since: .now)
                        // `since` stays at the creation: the row's lease, set by its first insert, lasts longer.
                    }
                    if ledger.leases[room] != nil { ledger.dirty.insert(room) }
                }
            }
            return result
        }
    }

    func read<Result>(_ body: (Party) -> Result) -> Result {
        party.withLock { body($0) }
    }

    // MARK: SharedRoomStore

    var isActing: Bool {
        ledger.withLock { !$0.handingOver && ContinuousClock.now < $0.renewedAt + leaseDuration - safetyMargin }
    }

    var isReachable: Bool { ledger.withLock { $0.reachable } }

    /// Messages that change a room (or put a connection into one).
    private static let roomInputs: Set<ClientMessageType> = [
        .createRoom, .joinRoom, .leaveRoom, .closeRoom, .ready, .playerEvent, .stateUpdate, .chatMessage, .participantStatus, .resume,
    ]
    /// Messages that need the database itself.
    private static let databaseInputs: Set<ClientMessageType> = [.createRoom, .joinRoom]

    func refuses(_ type: ClientMessageType) -> Bool {
        guard Self.roomInputs.contains(type) else { return false }
        if !isActing { return true }
        return Self.databaseInputs.contains(type) && !isReachable
    }

    func whenLost(_ handler: @escaping @Sendable ([RoomID]) -> Void) {
        lostHandler.withLock { $0 = handler }
    }

    func whenRoomsElsewhereChange(_ handler: @escaping @Sendable ([ListedRoom]) -> Void) {
        listing.withLock { $0.handler = handler }
    }

    /// Reads the rooms other replicas own and tells the handler if they changed.
    func listRoomsElsewhere() async {
        guard let listed = try? await timed(.list, affectsReachability: false, { [table] in try await table.roomsElsewhere() }) else { return }
        let handler = listing.withLock { listing -> (@Sendable ([ListedRoom]) -> Void)? in
            guard listing.last != listed else { return nil }
            listing.last = listed
            return listing.handler
        }
        handler?(listed)
    }

    func recover(_ need: RecoveryNeed, adopt: @escaping @Sendable (RoomRecord, ServerTime?) -> Bool) async -> RecoveryVerdict {
        // Draining: the core refuses it (SERVER_SHUTTING_DOWN); no room is pulled onto this replica.
        if ledger.withLock({ $0.handingOver }) || party.withLock({ $0.draining }) { return .proceed }
        // At most `recoveryLimit` at once; the others wait their turn (a reconnect storm is many
        // at once, each connection at most one); one whose turn comes only after
        // `recoveryQueueWait` gives up (TurnGate).
        guard await recoveries.enter(by: .now + Self.recoveryQueueWait) else { return .unavailable }
        defer { recoveries.leave() }
        if case .identity(let identity) = need {
            // One look-up per identity at a time (every auth of the user starts one).
            guard ledger.withLock({ $0.identitiesRecovering.insert(identity).inserted }) else { return .proceed }
        }
        defer {
            if case .identity(let identity) = need { ledger.withLock { _ = $0.identitiesRecovering.remove(identity) } }
        }
        let rooms: [RoomID]
        do {
            switch need {
            case .room(let room): rooms = [room]
            case .token(let digest): rooms = try await roomsByToken.value(for: digest.hex).map { [$0] } ?? []
            case .identity(let identity): rooms = try await roomsByIdentity.value(for: identity) ?? []
            }
        } catch {
            return .unavailable
        }
        var verdict = RecoveryVerdict.proceed
        for room in rooms {
            // Served by another live replica (most of a storm, once its rooms have moved): relayed
            // there, with no claim tried. A failed look-up falls back to the claim, which decides.
            if party.withLock({ $0.rooms[room] == nil }), let owner = try? await liveOwnersElsewhere.value(for: room) {
                if verdict == .proceed { verdict = .elsewhere(owner) }
                continue
            }
            switch await takeOver(room, adopt: adopt) {
            case .proceed: break
            case .unavailable: verdict = .unavailable
            case .elsewhere(let owner): if verdict == .proceed { verdict = .elsewhere(owner) }
            }
        }
        return verdict
    }

    /// Claims `room` and takes it over here, or waits for the claim of another request for it.
    private func takeOver(_ room: RoomID, adopt: @escaping @Sendable (RoomRecord, ServerTime?) -> Bool) async -> RecoveryVerdict {
        let task = claims.withLock { claims -> Task<RecoveryVerdict, Never> in
            if let running = claims[room] { return running }
            let task = Task { await self.claimAndAdopt(room, adopt: adopt) }
            claims[room] = task
            return task
        }
        let verdict = await task.value
        claims.withLock { claims in
            if claims[room] == task { claims[room] = nil }
        }
        return verdict
    }

    private func claimAndAdopt(_ room: RoomID, adopt: @escaping @Sendable (RoomRecord, ServerTime?) -> Bool) async -> RecoveryVerdict {
        // Its owner may be gone without a handover: wait (at most a lease) for its claim to run out.
        let deadline = ContinuousClock.now + leaseDuration + .seconds(1)
        // The other owner's lease as first seen: a lease that got longer since was renewed (a live owner).
        var seen: (remaining: Double, at: ContinuousClock.Instant)?
        var looksAgain = Self.missingLooks
        while true {
            if party.withLock({ $0.rooms[room] != nil }) { return .proceed }
            let claim: RoomTable.Claim
            let sent = ContinuousClock.now
            do {
                claim = try await timed(.claim, affectsReachability: false) { [table] in try await table.claim(room) }
            } catch {
                return .unavailable
            }
            switch claim {
            case .missing:
                // A room made on another replica in the last write interval is not written yet:
                // looked for again, every 300 ms, for up to ``missingLooks`` times (a write under
                // load can take longer than its interval).
                guard looksAgain > 0, ContinuousClock.now + Self.flushInterval * 3 < deadline else { return .proceed }
                looksAgain -= 1
                try? await Task.sleep(for: Self.flushInterval * 3)
            case .released:
                guard ContinuousClock.now < deadline else { return .unavailable }
                continue  // claimable now: claim it
            case .ownedHere:
                // Ours in the database but not here (a claim given up on that landed anyway):
                // nothing serves it until its lease runs out; then it is claimed like any other.
                if ledger.withLock({ $0.leases[room] != nil }) { return .proceed }
                guard ContinuousClock.now + Self.claimPoll < deadline else { return .unavailable }
                try? await Task.sleep(for: Self.claimPoll)
            case .ownedElsewhere(let owner, let remaining):
                // An owner that listens on the bus serves the room's members wherever they are connected.
                if let directory, let live = try? await directory.live(among: [owner]), live.contains(owner) { return .elsewhere(owner) }
                // A live owner renews every second: a lease that grew since it was first seen is
                // not worth waiting for. One that only runs down is a dead owner's: wait it out.
                let now = ContinuousClock.now
                if let seen, remaining > seen.remaining - (now - seen.at).seconds + Self.renewalSign { return .unavailable }
                if seen == nil { seen = (remaining, now) }
                guard now + Self.claimPoll < deadline, !ledger.withLock({ $0.handingOver }) else { return .unavailable }
                try? await Task.sleep(for: Self.claimPoll)
            case .claimed(let epoch, let json, let silentMs):
                guard let record = try? JSONDecoder().decode(RoomRecord.self, from: Data(json.utf8)) else {
                    logger.error("Stored room record cannot be read: left claimed, not taken over", metadata: ["room_id": .string(room)])
                    return .unavailable
                }
                // Installed only if no drain began meanwhile (one critical section with handOver's;
                // the drain's delay, before it, is read first: the party's lock is never taken
                // inside the ledger's).
                let draining = party.withLock { $0.draining }
                let installed = !draining && ledger.withLock { ledger -> Bool in
                    guard !ledger.handingOver else { return false }
                    ledger.leases[room] = Lease(epoch: epoch, created: false, adopted: false, since: sent)
                    ledger.relinquished.remove(room)
                    return true
                }
                guard installed else {
                    try? await timed(.release) { [table] in try await table.release([(room, epoch)]) }
                    return .proceed
                }
                let silent = ServerTime(clamping: silentMs)
                let ownerGoneAt = ServerTime(Date().timeIntervalSince1970 * 1000) - silent
                guard adopt(record, ownerGoneAt) else {
                    ledger.withLock { $0.leases[room] = nil }
                    try? await timed(.release) { [table] in try await table.release([(room, epoch)]) }
                    logger.warning("Stored room not taken over: it conflicts with the state here", metadata: ["room_id": .string(room)])
                    return .proceed
                }
                ledger.withLock { $0.leases[room]?.adopted = true }
                metrics.roomTakenOver()
                logger.notice("Room taken over from the store", metadata: [
                    "room_id": .string(room), "epoch": .stringConvertible(epoch), "members": .stringConvertible(record.members.count),
                ])
                return .proceed
            }
        }
    }

    func handOver(release: @escaping @Sendable (RoomID) -> Bool) async -> RoomHandover {
        ledger.withLock { ledger in
            ledger.handingOver = true
            ledger.dirty.formUnion(ledger.leases.filter(\.value.adopted).keys)
            ledger.written = [:]
        }
        await flush()
        // Every claim, written or not (releasing a row that does not exist changes nothing).
        let leases = ledger.withLock { ledger in ledger.leases.map { (room: $0.key, epoch: $0.value.epoch) } }
        var released = false
        do {
            try await timed(.release) { [table] in try await table.release(leases) }
            released = true
        } catch {
            logger.error("Drain: the rooms' claims could not be released; other replicas take them over when their leases run out", metadata: [
                "rooms": .stringConvertible(leases.count), "error": .string(StoreFailure.describe(error)),
            ])
        }
        let rooms = ledger.withLock { ledger -> [RoomID] in
            defer {
                ledger.relinquished.formUnion(ledger.leases.keys)
                ledger.leases = [:]
            }
            return Array(ledger.leases.keys)
        }
        var handedOver: [RoomID] = []
        for room in rooms.sorted() where release(room) {
            handedOver.append(room)
            metrics.roomHandedOver()
        }
        return RoomHandover(rooms: handedOver, released: released)
    }

    // MARK: Writing and renewing

    /// Runs the writer and the renewer until cancelled: writes every ``flushInterval``, renews
    /// every ``renewInterval``. Stops with a last write.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    await self.flush()
                    try? await Task.sleep(for: Self.flushInterval)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    await self.renew()
                    try? await Task.sleep(for: Self.renewInterval)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.janitorInterval)
                    await self.removeAbandoned()
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    await self.listRoomsElsewhere()
                    try? await Task.sleep(for: Self.listingInterval)
                }
            }
        }
        await flush()
    }

    /// Writes the marked rooms now (waits for a write already under way first).
    func flush() async {
        while ledger.withLock({ ledger in
            if ledger.flushing { return true }
            ledger.flushing = true
            return false
        }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        defer { ledger.withLock { $0.flushing = false } }
        let dirty = ledger.withLock { ledger -> [RoomID] in
            defer { ledger.dirty = [] }
            return ledger.dirty.sorted()
        }
        guard !dirty.isEmpty else { return }
        let records = party.withLock { party in dirty.map { ($0, party.record(of: $0)) } }
        let encoded = records.map { room, record in (room, record, record.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) }) }
        let writes = ledger.withLock { ledger -> [RoomTable.Write] in
            var writes: [RoomTable.Write] = []
            for (room, record, json) in encoded {
                guard let lease = ledger.leases[room] else { continue }
                if let record {
                    guard let json else {
                        logger.error("Room record could not be encoded: not written", metadata: ["room_id": .string(room)])
                        continue
                    }
                    guard ledger.written[room] != json else { continue }
                    ledger.nextSeq += 1
                    ledger.leases[room]?.writeSent = true
                    writes.append(.upsert(record, json: json, epoch: lease.epoch, seq: ledger.nextSeq, created: lease.created))
                } else if !lease.adopted {
                    ledger.dirty.insert(room)  // being taken over right now: look again next time
                } else if lease.created && !lease.writeSent {
                    ledger.leases[room] = nil  // made and closed here between two writes: no row
                } else {
                    writes.append(.delete(room, epoch: lease.epoch))
                }
            }
            return writes
        }
        guard !writes.isEmpty else { return }
        do {
            let result = try await timed(.write) { [table] in try await table.write(writes) }
            let written = Set(result.written)
            ledger.withLock { ledger in
                for write in writes where written.contains(write.room) && ledger.leases[write.room]?.epoch == write.epoch {
                    switch write {
                    case .upsert(_, let json, _, _, _):
                        ledger.leases[write.room]?.created = false  // its row exists: only updates from now on
                        ledger.written[write.room] = json
                    case .delete(let room, _):
                        ledger.leases[room] = nil
                        ledger.written[room] = nil
                    }
                }
                for room in result.failed {
                    ledger.written[room] = nil
                    ledger.dirty.insert(room)
                }
            }
            lose(result.lost)
        } catch {
            // Written next time (with whatever changed meanwhile); what was last written is no
            // longer known (a write given up on may still land), so nothing is skipped as unchanged.
            ledger.withLock { ledger in
                for write in writes {
                    ledger.written[write.room] = nil
                    ledger.dirty.insert(write.room)
                }
            }
        }
    }

    /// Rooms nobody came back to (unclaimed past every grace) are removed from the database.
    func removeAbandoned() async {
        guard let removed = try? await timed(.write, { [table, graceSeconds] in try await table.removeAbandoned(graceSeconds: graceSeconds) }), removed > 0 else { return }
        logger.info("Shared store: abandoned rooms removed", metadata: ["rooms": .stringConvertible(removed)])
    }

    /// One renewal round: every stored claim renewed, or found lost. A claim this round did
    /// not include (begun after it took its list) counts from when that claim began, so
    /// ``isActing`` never trusts a round for more than it renewed.
    func renew() async {
        let started = ContinuousClock.now
        let leases = ledger.withLock { ledger in
            ledger.leases.filter { !$0.value.created }.map { (room: $0.key, epoch: $0.value.epoch) }
        }
        do {
            let held = try await timed(leases.isEmpty ? .ping : .renew) { [table] in try await table.renew(leases) }
            let lost = ledger.withLock { ledger -> [(room: RoomID, epoch: Int64)] in
                let covered = Set(leases.map(\.room))
                let uncovered = ledger.leases.filter { !covered.contains($0.key) }.map(\.value.since)
                ledger.renewedAt = ([started] + uncovered).min() ?? started
                return leases.filter { !held.contains($0.room) }
            }
            lose(lost)
        } catch {
            // Not acting on the rooms from the margin on (SERVICE_UNAVAILABLE, timers wait), but
            // keeping them: PROTOCOL.md §14. When the database is back, the next round renews the
            // claims nobody took meanwhile and removes the others.
            if !isActing, ledger.withLock({ !$0.leases.isEmpty && !$0.handingOver }) {
                logger.error("Shared store: claims not renewed in time; not acting on this replica's rooms until they are", metadata: [
                    "error": .string(StoreFailure.describe(error))
                ])
            }
        }
    }

    /// Rooms whose claim another replica holds now: removed here, never written again.
    /// Only claims still held under the epoch given count (a room lost and claimed again since is kept).
    private func lose(_ claims: [(room: RoomID, epoch: Int64)]) {
        guard !claims.isEmpty else { return }
        let rooms = ledger.withLock { ledger -> [RoomID] in
            var rooms: [RoomID] = []
            for (room, epoch) in claims where ledger.leases[room]?.epoch == epoch {
                ledger.leases[room] = nil
                ledger.written[room] = nil
                ledger.dirty.remove(room)
                ledger.relinquished.insert(room)
                rooms.append(room)
            }
            return rooms
        }
        guard !rooms.isEmpty else { return }
        for room in rooms {
            metrics.leaseLost()
            logger.error("Room claim lost to another replica: removed here, its members reconnect", metadata: ["room_id": .string(room)])
        }
        lostHandler.withLock { $0 }?(rooms)
    }

    /// One database call, timed and counted; a failure or a success updates reachability.
    /// `affectsReachability`: false for the calls clients cause (claims, look-ups), so that a
    /// flood of them never turns readiness off; the replica's own upkeep says whether the
    /// database is there.
    private func timed<Value: Sendable>(
        _ operation: StoreOperation, affectsReachability: Bool = true, _ call: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        do {
            let value = try await Self.measured(operation, metrics, call)
            if affectsReachability { setReachable(true, error: nil) }
            return value
        } catch {
            if affectsReachability, !RoomTable.isStatementError(error) { setReachable(false, error: error) }
            throw error
        }
    }

    /// One database call, its time recorded under `operation`, failed or not.
    private static func measured<Value: Sendable>(
        _ operation: StoreOperation, _ metrics: MetricsRegistry, _ call: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let start = ContinuousClock.now
        do {
            let value = try await call()
            metrics.storeCall(operation.rawValue, seconds: (ContinuousClock.now - start).seconds, failed: false)
            return value
        } catch {
            metrics.storeCall(operation.rawValue, seconds: (ContinuousClock.now - start).seconds, failed: true)
            throw error
        }
    }

    private func setReachable(_ reachable: Bool, error: (any Error)?) {
        let changed = ledger.withLock { ledger in
            defer { ledger.reachable = reachable }
            return ledger.reachable != reachable
        }
        health?.markStore(reachable: reachable)
        metrics.storeReachability(reachable)
        guard changed else { return }
        if reachable {
            logger.notice("Shared store reachable")
        } else {
            logger.error("Shared store unreachable: readiness 503; rooms here keep working while their claims last", metadata: [
                "error": .string(error.map(StoreFailure.describe) ?? "?")
            ])
        }
    }
}
