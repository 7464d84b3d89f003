import DequeModule
import Foundation
import Logging
import NIOCore
import NIOPosix
import Observability
import Synchronization
import Transport
import WatchPartyCore

/// Connects the transport to the pure core.
///
/// The core addresses sessions (PROTOCOL.md §13); the gateway keeps which connection carries
/// each one now (``Carrier``). A resume moves a session to another connection (a
/// ``Handover``): the connection greeted with a fresh id carries the old session from then
/// on, and a connection that was taken over is closed with 4001 and heard no more.
///
/// The state itself is the ``PartyStore``'s. Every input (connect, message, disconnect, timer)
/// is one update: it reads the clock, runs the core and *posts* the resulting messages,
/// not yet encoded, to the recipients' connections before the update ends, so every client
/// sees messages in exactly the order the core produced them. Posting never blocks (bounded
/// per-connection backlogs); encoding (once per message) and the writes happen after the
/// update, on the connections' event loops. Round trips and timers never start an update on
/// their own: samples wait until the next input, timers are event-loop callbacks that run an
/// input.
///
/// With the embedded store every room is cut out of the party into a ``RoomCell`` of its own
/// (``partitioned``): an input only its room answers is an update of that cell alone, so rooms
/// never wait on one another. Any other input takes the party's lock and the locks of the rooms
/// it involves: connect, auth, create, join, leave, list, close, disconnect, resume, a lobby
/// session's messages and the party's own timers. Locks nest one way only: the store's, then the
/// gateway's own, then rooms' in order of id; a room's update takes no other room's nor the
/// party's. Everything the core reports becomes metrics and log lines here; lines whose rate a
/// client controls go through a ``LogThrottle``.
final class SessionGateway: ConnectionAcceptor {
    /// The connection carrying a session, and the handle that feeds its input to the core.
    /// The connection is here, or on another replica (``RemoteConnection``, PROTOCOL.md §14).
    struct Carrier {
        let connection: any Carriage
        let handle: ClientHandle
        /// The connection when it is on this replica (known once, not cast per delivery).
        let local: Connection?

        init(connection: any Carriage, handle: ClientHandle) {
            self.connection = connection
            self.handle = handle
            self.local = connection as? Connection
        }
    }

    /// Which connection carries which session, and the gateway's own bookkeeping; changed
    /// only inside a store update (so in the core's order), read under its own lock.
    struct State {
        /// Attached sessions only: an away session has none.
        var carriers: [ClientID: Carrier] = [:]
        /// Deepest outbound queue of any connection that closed since the previous scrape.
        var closedQueuePeak = 0
    }

    private let store: any PartyStore
    private let state = Mutex(State())
    /// The last time handed to the core, by any room; time never runs backwards for it.
    private let lastNow = Atomic<ServerTime>(0)
    /// True with the embedded store: every room lives in a ``RoomCell`` (a shared store keeps
    /// the party whole, as it writes each input's changes inside the input).
    let partitioned: Bool
    /// The rooms cut out of the party, by id: changed inside an input of the whole, looked up
    /// by a room's timers and by inspection (a lookup never waits on a room).
    private let cells = Mutex<[RoomID: RoomCell]>([:])
    /// Round trips measured since the core last took them (see ``recordRoundTrip(_:_:)``).
    private let roundTrips = Mutex(PendingRoundTrips())
    /// Every armed timer, an event-loop scheduled callback (no task), kept by its reason so
    /// that one whose reason has gone (its client disconnected, its token was refreshed) is
    /// cancelled instead of waiting on.
    private let timers = Mutex(ArmedTimers())
    /// Where timers are scheduled (any loop: firing runs the core like any other input).
    private let timerLoops: any EventLoopGroup
    let clock: any ServerClock
    let logger: Logger
    let metrics: MetricsRegistry
    private let throttle: LogThrottle
    /// JWT mode only.
    private let verifier: JWTVerifier?
    /// With `DATABASE_URL`: the store that shares rooms with other replicas (PROTOCOL.md §14).
    let shared: (any SharedRoomStore)?
    /// With `DATABASE_URL`: the bus to the other replicas, through which members connected to
    /// one are served by their room's owner (``SessionGateway+Relay``).
    let bus: ReplicaBus?
    /// Connections relayed either way over the bus.
    let relays = Mutex(RelayBook())
    /// Probes of connections on other replicas, awaiting their answer.
    let remoteProbes = RemoteProbes()
    /// The one loop where everything received over the bus is handled, in order.
    let busLoop: any EventLoop
    /// PartyRules.rateLimitPerSecond (the rules never change): what a relay answers pings up to.
    let rateLimitPerSecond: Int
    /// Set when a drain begins handing the rooms over: sessions from other replicas are no longer taken on.
    let handingOver = Atomic<Bool>(false)

    init(
        store: any PartyStore, clock: any ServerClock, metrics: MetricsRegistry, logger: Logger, verifier: JWTVerifier? = nil, throttle: LogThrottle = LogThrottle(),
        timerLoops: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, bus: ReplicaBus? = nil
    ) {
        self.timerLoops = timerLoops
        self.bus = bus
        self.rateLimitPerSecond = store.read { $0.rules.rateLimitPerSecond }
        self.busLoop = timerLoops.next()
        self.store = store
        self.shared = store as? any SharedRoomStore
        self.partitioned = shared == nil && bus == nil
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.verifier = verifier
        self.throttle = throttle
        shared?.whenLost { [weak self] rooms in self?.removeLost(rooms) }
        shared?.whenRoomsElsewhereChange { [weak self] listed in
            self?.apply { party, _, now in party.listRoomsElsewhere(listed, now: now) }
        }
        bus?.handle(
            received: { [weak self] delivery in self?.busReceived(delivery) },
            dropped: { [weak self] peer, _ in self?.linkDropped(with: peer) })
    }

    // MARK: ConnectionAcceptor

    func accept(_ connection: Connection) -> any ConnectionSession {
        let id = UUID().uuidString.lowercased()
        metrics.connectionOpened()
        logger.info("Connection opened", metadata: ["client_id": .string(id), "remote": .string(connection.remoteAddress ?? "?")])
        let handle = ClientHandle(id: id, gateway: self, connection: connection)
        apply(involving: { _ in [] }) { party, state, now in
            state.carriers[id] = Carrier(connection: connection, handle: handle)
            return party.connect(id, now: now)
        }
        return handle
    }

    func refused(reason: RefusalReason, client: String, origin: String?) {
        metrics.connectionRejected(reason: reason.rawValue)
        var metadata: Logger.Metadata = ["reason": .string(reason.rawValue), "status": .stringConvertible(reason.status), "remote": .string(client)]
        if let origin { metadata["origin"] = .string(String(origin.prefix(200))) }
        throttled(.refusal, .warning, "Upgrade refused", metadata)
    }

    /// The TCP connection bound stopped the listener (called once per pause, on an event loop).
    func connectionBoundReached(open: Int) {
        throttled(.refusal, .warning, "TCP connection bound reached: not accepting until a connection closes", ["open": .stringConvertible(open)])
    }

    /// What became of a text message handed to ``receive(_:from:readAt:resume:)``.
    enum Intake: Equatable {
        case handled
        /// An `auth` whose token is being verified, or a message whose room the shared store
        /// is looking up, off the event loop: `resume` gets the result, and the client's later
        /// messages wait for it (their order is kept).
        case verifying
    }

    /// A message made ready off the event loop: an `auth` with its token's verdict, or a
    /// message whose rooms the shared store brought here (or could not: `unavailable`).
    struct Verified: Sendable {
        let message: ClientMessage
        /// The message as it arrived (what a relay passes on).
        let text: String
        /// The token check of a JWT `auth`; `nil` when there was none.
        let result: Result<TokenVerdict, TokenRejection>?
        let readAt: ReadStamp
        var unavailable = false
        /// Its room is owned by this live replica: the connection is served through it from
        /// now on (PROTOCOL.md §14), this message first.
        var relayTo: String?
    }

    /// Decodes a text message and runs it through the core, unless it must be made ready
    /// first: an `auth` to verify (JWT mode), or, with a shared store, a message naming a room
    /// or seat that may be in the database and not here. That one is handed to
    /// ``verified(_:from:by:)`` through `resume`.
    func receive(_ text: String, from client: ClientID, by handle: ClientHandle, readAt: ReadStamp, resume: @escaping @Sendable (Verified) -> Void) -> Intake {
        let decoded = ClientMessageDecoder.decode(text)
        metrics.messageReceived(type: Self.type(of: decoded), bytes: text.utf8.count)
        guard case .success(let message) = decoded else {
            self.handle(decoded, from: client, by: handle, verdict: nil, readAt: readAt)
            return .handled
        }
        let token = message.type == .auth ? message.payload?["token"]?.string.flatMap { $0.isEmpty ? nil : $0 } : nil
        let verify = verifier.flatMap { verifier in token.map { (verifier, $0) } }
        let need = shared.flatMap { _ in recoveryNeed(of: message, from: client) }
        if case .identity? = need, verify == nil {
            // Open mode, RESUME_BY_USER_ID: the auth is served at once; its rooms are brought
            // here meanwhile, and taking one over resumes the member's seat (Party.adopt).
            self.handle(decoded, from: client, by: handle, verdict: nil, readAt: readAt)
            recoverInBackground(need, for: handle)
            return .handled
        }
        guard verify != nil || need != nil else {
            self.handle(decoded, from: client, by: handle, verdict: nil, readAt: readAt)
            return .handled
        }
        let now = clock.now()
        let shared = self.shared
        // JWT mode: the identity an auth may resume by is known once its token is checked.
        let identityAfterCheck = shared != nil && verify != nil && store.read { $0.rules.resumeGraceMs > 0 }
        let adopt = adopter
        // A session relayed here may be relayed on once more (it moves to a room a third replica owns).
        let mayRelay = bus != nil && Self.hops(of: handle) < Self.relayHopLimit
        Task {
            // The token is checked before the core sees the auth (and never logged).
            var result: Result<TokenVerdict, TokenRejection>?
            if let (verifier, token) = verify { result = await verifier.check(token: token, now: now) }
            var ready = Verified(message: message, text: text, result: result, readAt: readAt)
            if let shared, let need {
                switch await shared.recover(need, adopt: adopt) {
                case .proceed: break
                case .unavailable: ready.unavailable = true
                case .elsewhere(let owner):
                    if mayRelay, need.relays { ready.relayTo = owner } else { ready.unavailable = true }
                }
            }
            resume(ready)
            if identityAfterCheck, case .success(.valid(let userID, _, _))? = result {
                // The auth is served at once (its deadline runs); the user's rooms are brought
                // here meanwhile, and taking one over resumes the seat (Party.adopt).
                self.recoverInBackground(.identity(userID), for: handle)
            }
        }
        return .verifying
    }

    /// Takes a stored room over in the core, with when its previous owner was last heard of.
    var adopter: @Sendable (RoomRecord, ServerTime?) -> Bool {
        { [weak self] record, ownerGoneAt in self?.adopt(record, ownerGoneAt: ownerGoneAt) ?? false }
    }

    /// Brings `need`'s rooms here without holding any input for it. A room a live replica
    /// owns stays there: `handle`'s connection is served through that replica from then on
    /// (if its session is still in no room), and resumes its user's seat there.
    private func recoverInBackground(_ need: RecoveryNeed?, for handle: ClientHandle) {
        guard let shared, let need else { return }
        let adopt = adopter
        let mayRelay = bus != nil && Self.hops(of: handle) < Self.relayHopLimit
        Task {
            guard case .elsewhere(let owner) = await shared.recover(need, adopt: adopt), mayRelay else { return }
            handle.connection.onEventLoop { [weak self] in
                guard let self, let seat = handle.seat, handle.relayedTo == nil else { return }
                if !self.relay(handle, carrying: seat, to: owner, first: nil) {
                    // In a room here meanwhile, closing, or draining: its seat there waits for its next connection.
                    self.logger.info("Seat elsewhere not resumed: the connection stays here", metadata: ["client_id": .string(seat), "owner": .string(owner)])
                }
            }
        }
    }

    /// With a shared store: what `message` needs looked up there before the core sees it
    /// (`nil`: nothing, whatever it names is here or nowhere).
    private func recoveryNeed(of message: ClientMessage, from client: ClientID) -> RecoveryNeed? {
        // Before authentication nothing but an auth is served: no database work either.
        guard message.type == .auth || store.read({ $0.sessions[client]?.authenticated == true }) else { return nil }
        switch message.type {
        case .resume:
            guard let token = message.payload?["token"]?.string, !token.isEmpty, token.utf8.count <= Party.resumeTokenLimit else { return nil }
            return store.read { party in
                let digest = party.resumeDigest(of: token)
                return party.resumes(digest) ? nil : .token(digest)
            }
        case .joinRoom:
            guard let room = message.room, !room.isEmpty, room.utf8.count <= 64 else { return nil }
            return store.read { $0.rooms[room] == nil } ? .room(room) : nil
        case .auth where verifier == nil:
            // Open mode: a claimed user_id resumes by identity only with RESUME_BY_USER_ID.
            guard let userID = message.payload?["user_id"]?.string.flatMap(Sanitizer.name),
                store.read({ $0.rules.resumeByUserID && $0.rules.resumeGraceMs > 0 })
            else { return nil }
            return .identity(userID)
        default:
            return nil
        }
    }

    /// A message made ready off the event loop (see ``Verified``).
    func verified(_ verified: Verified, from client: ClientID, by handle: ClientHandle) {
        var verified = verified
        if let owner = verified.relayTo {
            if relay(handle, carrying: client, to: owner, first: verified.text) { return }
            verified.unavailable = true  // it could not move (it is closing, or in a room meanwhile)
        }
        var verdict: TokenVerdict?
        switch verified.result {
        case .success(let valid)?:
            verdict = valid
        case .failure(let rejection)?:
            verdict = .invalid
            throttled(.authentication, .info, "Token refused", ["client_id": .string(client), "reason": .string(rejection.rawValue)])
        case nil:
            verdict = nil
        }
        self.handle(.success(verified.message), from: client, by: handle, verdict: verdict, readAt: verified.readAt, unavailable: verified.unavailable)
    }

    private func handle(
        _ decoded: Result<ClientMessage, ProtocolError>, from client: ClientID, by handle: ClientHandle, verdict: TokenVerdict?, readAt: ReadStamp, unavailable: Bool = false
    ) {
        let type = Self.type(of: decoded)
        logger.debug("Message received", metadata: ["client_id": .string(client), "type": .string(type)])
        var refused = unavailable
        if !refused, let shared, case .success(let message) = decoded, shared.refuses(message.type) { refused = true }
        if refused { metrics.storeUnavailableReply() }
        let run = { (party: inout Party, now: ServerTime) -> Outcome in
            let arrival = Self.arrival(of: readAt, now: now)
            switch decoded {
            case .success(let message) where refused: return party.reject(client, .serviceUnavailable, room: message.room, now: now, arrival: arrival)
            case .success(let message): return party.receive(message, from: client, now: now, arrival: arrival, verdict: verdict)
            case .failure(let error): return party.reject(client, error.code, now: now, arrival: arrival)
            }
        }
        let message = try? decoded.get()
        let servedInRoom = !refused && serveInRoom(of: handle) { part, carriers, now in
            guard carriers[client]?.handle === handle, part.servesInRoom(message?.type, naming: message?.room, from: client) else { return nil }
            return run(&part, now)
        }
        if !servedInRoom {
            apply(involving: { $0.roomsInvolved(receiving: message, from: client, verdict: verdict) }) { party, state, now in
                // Read off a connection that a handover has taken the seat from meanwhile: not heard.
                guard state.carriers[client]?.handle === handle else { return Outcome() }
                return run(&party, now)
            }
        }
        metrics.messageHandled(type: type, seconds: Self.seconds(since: readAt.uptimeNanoseconds))
    }

    /// Takes a room over from its stored record (the shared store found it); false if the core refused it.
    private func adopt(_ record: RoomRecord, ownerGoneAt: ServerTime?) -> Bool {
        var adopted = false
        apply { party, _, now in
            switch party.adopt(record, now: now, ownerGoneAt: ownerGoneAt) {
            case .success(let outcome):
                adopted = true
                return outcome
            case .failure:
                return Outcome()
            }
        }
        return adopted
    }

    /// Rooms whose claim another replica took: removed at once, members' connections closed with 1012.
    private func removeLost(_ rooms: [RoomID]) {
        for room in rooms {
            apply { party, _, now in party.release(room, closing: .serviceRestart, now: now)?.outcome ?? Outcome() }
        }
    }

    private static func type(of decoded: Result<ClientMessage, ProtocolError>) -> String {
        switch decoded {
        case .success(let message): message.type.rawValue
        case .failure: "invalid"
        }
    }

    func receivedBinary(_ bytes: Int, from client: ClientID, by handle: ClientHandle, readAt: ReadStamp) {
        metrics.messageReceived(type: "binary", bytes: bytes)
        let servedInRoom = serveInRoom(of: handle) { part, carriers, now in
            guard carriers[client]?.handle === handle, part.servesInRoom(nil, naming: nil, from: client) else { return nil }
            return part.receiveBinary(from: client, now: now, arrival: Self.arrival(of: readAt, now: now))
        }
        if !servedInRoom {
            apply(involving: { $0.roomsInvolved(receiving: nil, from: client, verdict: nil) }) { party, state, now in
                guard state.carriers[client]?.handle === handle else { return Outcome() }
                return party.receiveBinary(from: client, now: now, arrival: Self.arrival(of: readAt, now: now))
            }
        }
        metrics.messageHandled(type: "binary", seconds: Self.seconds(since: readAt.uptimeNanoseconds))
    }

    /// `handle`'s connection ended. `seat`: the session it carried, `nil` if that session was
    /// taken over by another connection (it lives on there; nothing reaches the core).
    func disconnected(_ handle: ClientHandle, seat: ClientID?, code: UInt16?) {
        if relayEnded(handle, code: code) { return }
        // A connection on another replica is counted there.
        if !(handle.connection is RemoteConnection) { metrics.connectionClosed(code: code) }
        let reason = CloseReasons.reason(for: code)
        logger.info("Connection closed", metadata: [
            "client_id": .string(seat ?? handle.greetedAs), "code": code.map { .stringConvertible($0) } ?? .string("client"), "reason": .string(reason),
        ])
        guard let seat else { return }
        apply(involving: { $0.roomsInvolved(disconnecting: seat) }) { party, state, now in
            // Only the connection that still carries the seat ends it (a handover may have moved it since).
            guard let carrier = state.carriers[seat], carrier.handle === handle else { return Outcome() }
            state.carriers[seat] = nil
            state.closedQueuePeak = max(state.closedQueuePeak, carrier.connection.takeQueuePeak())
            return party.disconnect(seat, now: now)
        }
    }

    /// A ping's round trip to `client`: exported, and kept for the core (adaptive scheduling).
    /// A pong never takes the party's lock nor a room's: the sample waits in ``roundTrips`` (or
    /// in its room's, `room` the cell its connection was last seen in) and reaches the core at
    /// the start of the next input handled there (or the next inspection), in order.
    func recordRoundTrip(_ client: ClientID, _ rtt: Duration, room: RoomCell? = nil) {
        metrics.roundTrip(seconds: rtt.seconds)
        let milliseconds = UInt64(max(0, (rtt.seconds * 1000).rounded()))
        if let room {
            room.roundTrips.withLock { $0.add(milliseconds, for: client) }
        } else {
            roundTrips.withLock { $0.add(milliseconds, for: client) }
        }
    }

    /// The probe of `probe.session`'s connection ended (on the claimant's event loop).
    private func settle(_ probe: ProbeRequest, answered: Bool) {
        apply(involving: { $0.roomsInvolved(clients: [probe.session, probe.claimant]) }) { party, _, now in party.settleProbe(of: probe.session, for: probe.claimant, answered: answered, now: now) }
    }

    func fire(_ timer: TimerRequest) {
        if let shared, !shared.isActing, Self.concernsARoom(timer.key) {
            // The room's claim may not be current: it waits, and fires once it is (or is gone with the room).
            var deferred = timer
            deferred.due = clock.now() + Self.deferredTimerMs
            schedule(deferred, unlessReplaced: true)
            return
        }
        let cell = Party.roomOfTimer(timer.key).flatMap { room in partitioned ? cells.withLock { $0[room] } : nil }
        let servedInRoom = cell.map { serveInRoom($0) { part, _, now in part.fire(timer.key, now: now) } } ?? false
        if !servedInRoom {
            apply(involving: { $0.roomsInvolved(firing: timer.key) }) { party, _, now in party.fire(timer.key, now: now) }
        }
        // Measured after the handler ran, with sub-millisecond precision: timer delay + handling.
        let lateness = (clock.preciseNow() - Double(timer.due)) / 1000
        metrics.scheduledRelease(latenessSeconds: lateness)
    }

    /// How long a room's timer waits while the room's claim is not current.
    static let deferredTimerMs: ServerTime = 250

    private static func concernsARoom(_ key: TimerKey) -> Bool {
        switch key {
        // A token's expiry ends a member's connection and so changes its room (it goes away).
        case .readyWait, .statusFlush, .resumeGrace, .sessionExpiry: true
        case .lobbyFlush, .authTimeout: false
        }
    }

    // MARK: Drain (PROTOCOL.md §11)

    /// True with `DATABASE_URL`: a drain hands the rooms over instead of closing them.
    var sharesRooms: Bool { shared != nil }

    /// The drain with a shared store (PROTOCOL.md §11, §14): every room written and released
    /// for another replica, and removed here without a departure (members' connections closed
    /// with 1012), then offered to the live replicas that stay (``offer(_:to:)``); returns how many
    /// were handed over.
    func handOverRooms() async -> Int {
        guard let shared else { return 0 }
        handingOver.store(true, ordering: .releasing)
        // Read while the rooms are written: the offer follows the release without a round trip.
        async let peers = peersToOffer()
        let handover = await shared.handOver { [weak self] room in
            var removed = false
            self?.apply { party, _, now in
                guard let released = party.release(room, closing: .serviceRestart, now: now) else { return Outcome() }
                removed = true
                return released.outcome
            }
            return removed
        }
        await offer(handover, to: peers)
        return handover.rooms.count
    }

    /// From now on create and join are refused with SERVER_SHUTTING_DOWN.
    func beginDrain() {
        apply { party, _, _ in
            party.beginDrain()
            return Outcome()
        }
    }

    /// Closes every room ("Server shutting down"); returns how many there were.
    @discardableResult
    func closeAllRooms() -> Int {
        let count = roomCount
        apply { party, _, now in party.closeAllRooms(now: now) }
        return count
    }

    /// Closes every connection for `cause` after its queued messages; returns how many.
    @discardableResult
    func closeAllConnections(_ cause: CloseCause) -> Int {
        let relayed = relayedHandles
        for handle in relayed { handle.connection.close(code: cause.code, reason: cause.text) }
        let count = state.withLock { state in
            for carrier in state.carriers.values {
                carrier.connection.close(code: cause.code, reason: cause.text)
            }
            return state.carriers.count
        }
        bus?.wakeSender()
        return count + relayed.count
    }

    /// Drops every remaining socket at once; returns how many.
    @discardableResult
    func terminateAllConnections() -> Int {
        let relayed = relayedHandles
        for handle in relayed { handle.connection.terminate() }
        let count = state.withLock { state in
            for carrier in state.carriers.values {
                carrier.connection.terminate()
            }
            return state.carriers.count
        }
        bus?.wakeSender()
        return count + relayed.count
    }

    // MARK: Operator actions (admin API)

    /// Closes `room` for every member ("Room closed by the server operator"); false if there is none.
    func closeRoomByOperator(_ room: RoomID) -> Bool {
        var found = false
        apply(involving: { $0.roomsInvolved(rooms: [room]) }) { party, _, now in
            guard let outcome = party.closeRoomByOperator(room, now: now) else { return Outcome() }
            found = true
            return outcome
        }
        if found { logger.notice("Room closed by operator", metadata: ["room_id": .string(room)]) }
        return found
    }

    /// Closes `client`'s connection with 4007 and it departs at once, no grace (an away
    /// session departs now); false if there is no such session.
    func disconnectByOperator(_ client: ClientID) -> Bool {
        var found = false
        apply(involving: { $0.roomsInvolved(clients: [client]) }) { party, _, now in
            guard let outcome = party.disconnectByOperator(client, now: now) else { return Outcome() }
            found = true
            return outcome
        }
        if found { logger.notice("Client disconnected by operator", metadata: ["client_id": .string(client)]) }
        return found
    }

    /// What the admin API shows: every room, or one, as of now.
    func inspect(room: RoomID? = nil) -> [RoomView] {
        // An update, not a read: the round trips measured since the last input are folded in first.
        var views = store.update { party in
            takeRoundTrips(into: &party)
            let now = max(clock.now(), lastNow.load(ordering: .relaxed))
            let rooms = room.map { id in party.rooms[id].map { [$0] } ?? [] } ?? Array(party.rooms.values)
            return (Outcome(), rooms.map { (sequence: $0.sequence, view: RoomView($0, party: party, now: now)) })
        }.extra
        for cell in roomCells(room) {
            let view = cell.withLock { contents -> RoomView? in
                guard var part = contents.part else { return nil }
                contents.part = nil
                defer { contents.part = part }
                takeRoundTrips(of: cell, into: &part)
                let now = max(clock.now(), lastNow.load(ordering: .relaxed))
                return part.rooms[cell.room].map { RoomView($0, party: part, now: now) }
            }
            if let view { views.append((cell.sequence, view)) }
        }
        return views.sorted { $0.sequence < $1.sequence }.map(\.view)
    }

    /// The cells of every room, or of `room` alone.
    func roomCells(_ room: RoomID? = nil) -> [RoomCell] {
        cells.withLock { cells in room.map { id in cells[id].map { [$0] } ?? [] } ?? Array(cells.values) }
    }

    /// Visits every room with the party that holds its members' sessions: the whole party's
    /// own, then each cell's under its lock (so a scrape is a view of each room, not one cut
    /// across them all).
    private func forEachRoom(_ visit: (Room, Party) -> Void) {
        store.read { party in
            for room in party.rooms.values { visit(room, party) }
        }
        for cell in roomCells() {
            cell.withLock { contents in
                if let part = contents.part, let room = part.rooms[cell.room] { visit(room, part) }
            }
        }
    }

    // MARK: Inspection (metrics, health, tests)

    var roomCount: Int { store.read { $0.roomCount } }

    /// How many of `rooms` are here (owned by this replica, with a shared store).
    func hostedCount(of rooms: [RoomID]) -> Int { store.read { party in rooms.filter { party.rooms[$0] != nil }.count } }
    var connectionCount: Int { state.withLock { $0.carriers.count } }
    /// Sessions away from a connection, resumable (PROTOCOL.md §13).
    var awayCount: Int { store.read { $0.awayCount } }

    func metricsSnapshot(traffic: TrafficCounters? = nil, budget: TCPConnectionBudget? = nil) -> MetricsRegistry.Snapshot {
        let (openPeak, closedPeak) = state.withLock { state in
            defer { state.closedQueuePeak = 0 }
            return (state.carriers.values.map { $0.connection.takeQueuePeak() }.max() ?? 0, state.closedQueuePeak)
        }
        let (relayed, remote) = relayCounts
        var statuses: [String: Int] = [:]
        var bySync: [String: Int] = [:]
        var roomSizes: [Int] = []
        var worstOffset = 0.0
        var worstUncertaintyMs: UInt64 = 0
        forEachRoom { room, party in
            for member in room.members {
                statuses[room.statuses[member]?.rawValue ?? MetricLabels.noStatus, default: 0] += 1
            }
            roomSizes.append(room.members.count)
            let sync = party.sync(of: room)
            bySync[sync.verdict.rawValue, default: 0] += 1
            if sync.verdict != .paused {
                worstOffset = max(worstOffset, abs(sync.hostOffset ?? 0))
                worstUncertaintyMs = max(worstUncertaintyMs, sync.clockUncertaintyMs ?? 0)
            }
        }
        return store.read { party in
            var snapshot = MetricsRegistry.Snapshot(
                roomsActive: roomSizes.count,
                authenticatedConnections: party.sessions.values.count { $0.authenticated && $0.isAttached },
                participantsByStatus: statuses,
                roomSizes: roomSizes,
                queuePeakDepth: max(openPeak, closedPeak),
                wireBytesReceived: traffic?.receivedBytes ?? 0,
                wireBytesSent: traffic?.sentBytes ?? 0,
                tcpConnections: budget?.openConnections ?? 0,
                tcpConnectionLimit: budget?.limit ?? 0,
                tcpAcceptPauses: budget?.pauses ?? 0,
                requestHeadTimeouts: budget?.headerTimeoutCount ?? 0,
                requestBodiesTooLarge: budget?.bodyTooLargeCount ?? 0,
                sessionsAway: party.awayCount
            )
            snapshot.relayedConnections = relayed
            snapshot.remoteSessions = remote
            snapshot.roomsBySync = bySync
            snapshot.roomHostOffsetMax = worstOffset
            snapshot.roomClockUncertaintyMax = Double(worstUncertaintyMs) / 1000
            return snapshot
        }
    }

    // MARK: The one path every change takes

    /// The time handed to the core now: the clock's, never before one handed to any room.
    private func advanceClock() -> ServerTime {
        let now = clock.now()
        return lastNow.max(now, ordering: .relaxed).newValue
    }

    /// Hands the whole party the round trips measured since it last took them (inside an
    /// update of the whole); a member's of a room cut out waits for its room instead.
    private func takeRoundTrips(into party: inout Party) {
        let samples = roundTrips.withLock { $0.take() }
        for (client, rtts) in samples {
            if let room = party.sessions[client]?.roomID, party.isDetached(room), let cell = cells.withLock({ $0[room] }) {
                cell.roundTrips.withLock { $0.add(rtts, for: client) }
                continue
            }
            for rtt in rtts { party.recordRoundTrip(client, milliseconds: rtt) }
        }
    }

    /// Moves the round trips waiting in `cell` to the whole party's, which hands each to the
    /// room its session is in now: for a room put back into the party (its sessions may since
    /// be in another room's part) or gone.
    private func returnRoundTrips(of cell: RoomCell) {
        let samples = cell.roundTrips.withLock { $0.take() }
        guard !samples.isEmpty else { return }
        roundTrips.withLock { pending in
            for (client, rtts) in samples { pending.add(rtts, for: client) }
        }
    }

    /// Hands a room's part the round trips measured for its members (under the room's lock);
    /// one of a session that has left the room meanwhile goes back to the whole party.
    private func takeRoundTrips(of cell: RoomCell, into part: inout Party) {
        let samples = cell.roundTrips.withLock { $0.take() }
        for (client, rtts) in samples {
            guard part.sessions[client] != nil else {
                roundTrips.withLock { $0.add(rtts, for: client) }
                continue
            }
            for rtt in rtts { part.recordRoundTrip(client, milliseconds: rtt) }
        }
    }

    /// What one input's outcome handed to the transport, for the work done after the lock.
    private struct Posted {
        var messages: [(type: String, text: OutboundText, recipients: Int)] = []
        var connections: [ObjectIdentifier: Connection] = [:]
        /// Something was posted to a connection on another replica: the bus's sender is woken once.
        var relayed = false
        var overflowed: [ClientID] = []
        /// Probes to send: the suspect's connection (if it still has one) and the claimant's.
        var probes: [(probe: ProbeRequest, suspect: (any Carriage)?, claimant: (any Carriage)?)] = []
    }

    /// The rooms an input of the whole party involves, as the core names them
    /// (``Party/roomsInvolved(receiving:from:verdict:)`` and its siblings); `nil`: every room
    /// (a drain, and the inputs of a shared store, which keeps the party whole anyway).
    typealias Involvement = (Party) -> Set<RoomID>?

    /// An input of the whole party: the rooms it involves are put back into it for the input
    /// (their locks held, in order of id), and every room it leaves there is cut out again after.
    func apply(involving involved: Involvement = { _ in nil }, _ body: (inout Party, inout State, ServerTime) -> Outcome) {
        // Inside the update only the core and the posting: each message is handed, not yet
        // encoded, to its recipients' connections, so every client's order is the core's order.
        // Encoding (by the first connection to write it) and the writes come after it.
        let (outcome, posted) = store.update { party in state.withLock { state -> (outcome: Outcome, extra: Posted) in
            let attached = attachRooms(partitioned ? involved(party) : [], into: &party)
            defer { attached.forEach { $0.unlock() } }
            takeRoundTrips(into: &party)  // the attached rooms' samples included
            let outcome = body(&party, &state, advanceClock())
            let posted = post(outcome, through: &state.carriers, queuePeak: &state.closedQueuePeak)
            detachRooms(from: &party, attached: attached, carriers: state.carriers)
            return (outcome, posted)
        } }
        finish(outcome, posted)
    }

    /// Puts `rooms` (`nil`: every one) back into the whole party, each cell's lock taken (in
    /// order of id) and held until the caller unlocks it; returns their cells.
    private func attachRooms(_ rooms: Set<RoomID>?, into party: inout Party) -> [RoomCell] {
        guard partitioned else { return [] }
        let ids = (rooms ?? party.detachedRooms).sorted()
        let attached = cells.withLock { cells in ids.compactMap { cells[$0] } }
        for cell in attached {
            cell.lockForWhole()
            returnRoundTrips(of: cell)
            guard let part = cell.locked.part else { continue }
            cell.locked.part = nil
            party.attachRoom(part)
        }
        return attached
    }

    /// Cuts every room the whole party holds out again, into its cell (a new one for a room the
    /// input created), with its attached members' carriers; a cell whose room is gone is emptied
    /// and forgotten. Every member's handle learns its room's cell, and one that left its room
    /// forgets it.
    private func detachRooms(from party: inout Party, attached: [RoomCell], carriers: [ClientID: Carrier]) {
        guard partitioned else { return }
        var gone = Dictionary(uniqueKeysWithValues: attached.map { ($0.room, $0) })
        var created: [RoomCell] = []
        var left = [ObjectIdentifier: ClientHandle]()
        for cell in attached {
            for carrier in cell.locked.carriers.values { left[ObjectIdentifier(carrier.handle)] = carrier.handle }
        }
        for id in Array(party.rooms.keys) {
            guard let part = party.detachRoom(id), let room = part.rooms[id] else { continue }
            let contents = RoomCell.Contents(
                part: part, carriers: Dictionary(room.members.compactMap { member in carriers[member].map { (member, $0) } }, uniquingKeysWith: { first, _ in first })
            )
            let cell: RoomCell
            if let existing = gone.removeValue(forKey: id) {
                cell = existing
                cell.locked = contents
            } else {
                cell = RoomCell(room: id, sequence: room.sequence)
                cell.withLock { $0 = contents }
                created.append(cell)
            }
            for carrier in contents.carriers.values {
                carrier.handle.enter(cell)
                left[ObjectIdentifier(carrier.handle)] = nil
            }
        }
        for handle in left.values { handle.enter(nil) }
        for cell in gone.values {
            cell.locked = RoomCell.Contents()
            returnRoundTrips(of: cell)  // a pong that came in while the room closed
        }
        guard !gone.isEmpty || !created.isEmpty else { return }
        cells.withLock { cells in
            for cell in gone.values { cells[cell.room] = nil }
            for cell in created { cells[cell.room] = cell }
        }
    }

    /// Serves an input in `handle`'s room alone if only the room answers it (`body` returns
    /// `nil` when not, changing nothing); false when it must go to the whole party.
    private func serveInRoom(of handle: ClientHandle, _ body: (inout Party, [ClientID: Carrier], ServerTime) -> Outcome?) -> Bool {
        guard partitioned, let cell = handle.roomCell else { return false }
        return serveInRoom(cell, body)
    }

    /// Serves an input in `cell`'s room alone, under its lock only (see ``serveInRoom(of:_:)``).
    private func serveInRoom(_ cell: RoomCell, _ body: (inout Party, [ClientID: Carrier], ServerTime) -> Outcome?) -> Bool {
        let served = cell.withLock { contents -> (outcome: Outcome, posted: Posted)? in
            guard var part = contents.part else { return nil }
            contents.part = nil  // the part is changed in place, not copied
            defer { contents.part = part }
            takeRoundTrips(of: cell, into: &part)
            guard let outcome = body(&part, contents.carriers, advanceClock()) else { return nil }
            assert(outcome.handovers.isEmpty, "a room alone moves no session between connections")
            var carriers = contents.carriers
            var queuePeak = 0
            return (outcome, post(outcome, through: &carriers, queuePeak: &queuePeak))
        }
        guard let served else { return false }
        finish(served.outcome, served.posted)
        return true
    }

    /// Posts an outcome to its recipients' connections, closes, probes, handovers and timers,
    /// in the core's order (inside the input's update).
    private func post(_ outcome: Outcome, through carriers: inout [ClientID: Carrier], queuePeak: inout Int) -> Posted {
        var posted = Posted()
        // A handover takes effect between the deliveries it came between (an auth_success
        // goes to the connection's first id, the resumed session's messages after it).
        var handovers = outcome.handovers[...]
        for (index, delivery) in outcome.deliveries.enumerated() {
            while let handover = handovers.first, handover.afterDeliveries <= index {
                Self.apply(handovers.removeFirst(), to: &carriers, queuePeak: &queuePeak)
            }
            let message = delivery.message
            let text = OutboundText { message.encodedJSON() }
            var count = 0
            for recipient in delivery.recipients {
                guard let carrier = carriers[recipient] else { continue }  // away: nothing is queued
                switch carrier.connection.post(text) {
                case .queued:
                    count += 1
                    if let local = carrier.local {
                        posted.connections[ObjectIdentifier(local)] = local
                    } else {
                        posted.relayed = true
                    }
                case .overflow:
                    posted.overflowed.append(recipient)
                case .closed:
                    break
                }
            }
            posted.messages.append((message.type, text, count))
        }
        for handover in handovers {
            Self.apply(handover, to: &carriers, queuePeak: &queuePeak)
        }
        for close in outcome.closes {
            carriers[close.client]?.connection.close(code: close.code, reason: close.reason)
        }
        for probe in outcome.probes {
            posted.probes.append((probe, carriers[probe.session]?.connection, carriers[probe.claimant]?.connection))
        }
        // Timers are armed and cancelled inside the update, in the core's order: one armed by
        // a later input can never be cancelled (or replaced) by an earlier one's late hand.
        for handover in outcome.handovers {
            // The greeting id's timers are the new connection's no more; the seat's grace is over.
            cancelTimers(of: handover.carrier)
            cancelTimer(.resumeGrace(session: handover.session, awaySince: 0))
        }
        for timer in outcome.timers {
            schedule(timer)
        }
        return posted
    }

    /// After an input's update: the writes, and what the outcome reports.
    private func finish(_ outcome: Outcome, _ posted: Posted) {
        Connection.deliver(posted.connections.values)
        if posted.relayed { bus?.wakeSender() }
        for (type, text, count) in posted.messages where count > 0 {
            metrics.messagesSent(type: type, count: count, bytes: text.byteCount)
        }
        for client in posted.overflowed {
            metrics.slowClientDisconnected()
            logger.warning("Slow client disconnected: outbound queue full", metadata: ["client_id": .string(client)])
        }
        for delivery in outcome.deliveries {
            if case .error(let code) = delivery.message.payload {
                logError(code, delivery.message)
            }
        }
        for (probe, suspect, claimant) in posted.probes {
            sendProbe(probe, suspect: suspect, claimant: claimant)
        }
        for event in outcome.events {
            record(event)
        }
    }

    /// Moves a session to the connection greeted as `handover.carrier`; the connection that
    /// still carried it, if any, is closed with 4001 and its handle hears nothing more.
    private static func apply(_ handover: Handover, to carriers: inout [ClientID: Carrier], queuePeak: inout Int) {
        if let old = carriers[handover.session] {
            old.handle.detach()
            let cause = CloseCause.sessionTakenOver
            old.connection.close(code: cause.code, reason: cause.text)
            queuePeak = max(queuePeak, old.connection.takeQueuePeak())
        }
        guard let carrier = carriers.removeValue(forKey: handover.carrier) else {
            carriers[handover.session] = nil
            return
        }
        carrier.handle.rebind(to: handover.session)
        carriers[handover.session] = carrier
    }

    /// Pings the suspect connection and settles the probe on the claimant's event loop, where
    /// the claimant's own input runs (so its handle changes seat between two of its messages).
    private func sendProbe(_ probe: ProbeRequest, suspect: (any Carriage)?, claimant: (any Carriage)?) {
        guard let claimant else { return }  // the claimant is gone: nothing to settle
        let settle: @Sendable (Bool) -> Void = { [weak self] answered in
            claimant.onEventLoop { [weak self] in self?.settle(probe, answered: answered) }
        }
        guard let suspect else { return settle(false) }
        suspect.probe(within: .milliseconds(Int64(probe.withinMs)), answered: settle)
    }

    /// `unlessReplaced`: a timer re-armed outside an update (deferred) does not displace one
    /// armed for the same reason meanwhile.
    private func schedule(_ timer: TimerRequest, unlessReplaced: Bool = false) {
        // From the precise clock: waiting `due − now` whole milliseconds would fire every timer
        // up to 1 ms late before any real delay (the server clock floors to milliseconds).
        let delay = max(0, (Double(timer.due) - clock.preciseNow()) / 1000)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(delay * 1e9))
        let slot = Self.slot(of: timer.key)
        let loop = timerLoops.next()
        timers.withLock { timers in
            if unlessReplaced && timers.isArmed(slot) { return }
            // One timer per reason: a newer one (a refreshed token's expiry) replaces the old.
            let id = timers.arm()
            let scheduled = loop.scheduleTask(deadline: deadline) { [weak self] () -> Void in self?.timerFired(timer, slot: slot, id: id) }
            timers.replace(slot, with: ArmedTimers.Armed(id: id, scheduled: scheduled))?.cancel()
        }
    }

    private func timerFired(_ timer: TimerRequest, slot: TimerKey, id: UInt64) {
        // Only this timer's own entry is removed: a newer one for the same reason stays armed.
        timers.withLock { _ = $0.remove(slot, ifArmedAs: id) }
        fire(timer)
    }

    /// The key a timer is kept under: a session's expiry is one slot whatever its `expiresAt`
    /// (the core ignores all but the newest anyway).
    private static func slot(of key: TimerKey) -> TimerKey {
        switch key {
        case .sessionExpiry(let client, _): .sessionExpiry(client: client, expiresAt: 0)
        case .resumeGrace(let session, _): .resumeGrace(session: session, awaySince: 0)
        default: key
        }
    }

    /// Cancels the timers that only concern `client` (its auth deadline, its token's expiry, its grace).
    private func cancelTimers(of client: ClientID) {
        cancelTimer(.authTimeout(client: client))
        cancelTimer(.sessionExpiry(client: client, expiresAt: 0))
        cancelTimer(.resumeGrace(session: client, awaySince: 0))
    }

    private func cancelTimer(_ key: TimerKey) {
        timers.withLock { $0.remove(Self.slot(of: key)) }?.cancel()
    }

    /// Timers armed and not yet fired or cancelled (tests, diagnostics).
    var pendingTimerCount: Int { timers.withLock { $0.count } }

    /// One line per error reply: who got which code, about which room.
    private func logError(_ code: ErrorCode, _ message: ServerMessage) {
        var metadata: Logger.Metadata = ["code": .string(code.rawValue)]
        if let client = message.client { metadata["client_id"] = .string(client) }
        if let room = message.room { metadata["room_id"] = .string(room) }
        throttled(.errorReply, .info, "Error sent", metadata)
    }

    /// Turns what the core reports into metrics and logs.
    private func record(_ event: DomainEvent) {
        switch event {
        case .roomCreated(let room, let host):
            metrics.roomCreated()
            logger.info("Room created", metadata: ["room_id": .string(room), "client_id": .string(host)])
        case .roomClosed(let room, let reason):
            metrics.roomClosed(reason: reason.rawValue)
            logger.info("Room closed", metadata: ["room_id": .string(room), "reason": .string(reason.rawValue)])
        case .memberJoined(let room, let client, let members):
            logger.info("Member joined", metadata: ["room_id": .string(room), "client_id": .string(client), "members": .stringConvertible(members)])
        case .memberLeft(let room, let client, let members):
            logger.info("Member left", metadata: ["room_id": .string(room), "client_id": .string(client), "members": .stringConvertible(members)])
        case .hostChanged(let room, let host):
            logger.info("Host changed", metadata: ["room_id": .string(room), "client_id": .string(host)])
        case .authenticated(let client, let userID):
            cancelTimer(.authTimeout(client: client))  // its deadline was met
            throttled(.authentication, .info, "Authenticated", ["client_id": .string(client), "user_id": .string(userID)])
        case .errorSent(let code):
            metrics.errorSent(code: code.rawValue)
        case .stateUpdate(let result, let drift):
            metrics.stateUpdate(result: result.rawValue, driftSeconds: drift)
        case .barrierReleased(let cause, let waited, _):
            metrics.barrierReleased(cause: cause.rawValue, waitSeconds: Double(waited) / 1000)
        case .clientLog(let client, let category, let message):
            throttled(.clientLog, .info, "Client log", ["client_id": .string(client), "category": .string(category), "client_message": .string(message)])
        case .clientLogDropped:
            metrics.clientLogLineDropped()
        case .playScheduled(let lead):
            metrics.playScheduled(leadSeconds: Double(lead) / 1000)
        case .participantStatus:
            break  // statuses are read at scrape time; timer lateness is measured precisely in `fire`
        case .sessionEnded(let client):
            cancelTimers(of: client)  // ids are never reused: nothing newer can be armed for it
        case .sessionAway(let client, let room):
            logger.info("Session away", metadata: ["client_id": .string(client), "room_id": .string(room)])
        case .resume(let way, let result, let client, let carrier, let room):
            metrics.sessionResume(way: way.rawValue, result: result.rawValue)
            var metadata: Logger.Metadata = ["client_id": .string(client), "way": .string(way.rawValue), "result": .string(result.rawValue)]
            if carrier != client { metadata["connection_client_id"] = .string(carrier) }
            if let room { metadata["room_id"] = .string(room) }
            // A client controls how often it tries: throttled like authentication lines.
            throttled(.authentication, .info, result == .refused ? "Resume refused" : "Session resumed", metadata)
        case .roomTakenOver, .roomReleased:
            break  // counted and logged by the shared store, which knows the claim
        case .graceExpired(let client, let room, let early):
            metrics.sessionGraceExpired()
            if early {
                throttled(.refusal, .warning, "Session grace cut short: MAX_AWAY_SESSIONS reached", ["client_id": .string(client), "room_id": .string(room)])
            } else {
                logger.info("Session grace expired", metadata: ["client_id": .string(client), "room_id": .string(room)])
            }
        }
    }

    /// Logs unless `kind` is over its budget; the first line after a suppression says how many went unwritten.
    private func throttled(_ kind: LogKind, _ level: Logger.Level, _ message: Logger.Message, _ metadata: Logger.Metadata) {
        switch throttle.admit(kind) {
        case .write(let suppressed):
            var metadata = metadata
            if suppressed > 0 { metadata["suppressed_before"] = .stringConvertible(suppressed) }
            logger.log(level: level, message, metadata: metadata)
        case .suppress:
            metrics.logLineSuppressed(kind: kind)
        }
    }

    /// The server time at which a message read at transport time `readAt` arrived (`now` less
    /// the time since the read), and how long it may have waited unread before that, in whole
    /// milliseconds rounded up: what the core's rate window counts (docs/protocol.md choices 20, 22).
    static func arrival(of readAt: ReadStamp, now: ServerTime) -> Arrival {
        let waited = (readAt.mayHaveWaitedNanoseconds + 999_999) / 1_000_000
        return Arrival(readAt: now - min(now, UInt64(seconds(since: readAt.uptimeNanoseconds) * 1000)), mayHaveWaited: waited)
    }

    /// Seconds from an uptime stamp of the transport to now.
    static func seconds(since stamp: UInt64) -> Double {
        let now = TransportClock.uptimeNanoseconds()
        return now > stamp ? Double(now - stamp) / 1e9 : 0
    }
}

/// One connection's link back to the gateway, called on the connection's event loop.
///
/// Guarantees: the client's messages reach the core in the order they arrived. While an
/// `auth` token is verified off the loop, later messages wait here (at most
/// ``heldLimit``; a client that sends more in that time is flooding and is closed with
/// 4002); once the connection is gone, nothing it sent is handled any more. Once its session
/// moved to another replica (``relay(to:)``), everything it sends goes there, in order.
final class ClientHandle: ConnectionSession {
    /// The id the connection was greeted with (its session's, until a resume moves it).
    let greetedAs: ClientID
    let gateway: SessionGateway
    /// Here, or on another replica (``RemoteConnection``).
    let connection: any Carriage

    private struct Inbox {
        /// The session this connection carries now; `nil` once another connection took it over.
        var seat: ClientID?
        var verifying = false
        var held: Deque<(text: String, readAt: ReadStamp)> = []
        var closed = false
        /// The replica that serves this connection's session now (PROTOCOL.md §14).
        var relayedTo: String?
        /// Pings answered here for a relayed connection in the current one-second window.
        var relayedPings = (windowStart: UInt64(0), count: 0)
        /// The cell of the room its session was last seen in (the gateway checks it is still so).
        var room: RoomCell?
    }

    /// Touched by the connection's event loop, and by a handover (``rebind(to:)``, ``detach()``)
    /// from whichever thread runs the store update: a lock, rarely contended.
    private let inbox: Mutex<Inbox>
    static let heldLimit = 64

    init(id: ClientID, gateway: SessionGateway, connection: any Carriage) {
        self.greetedAs = id
        self.gateway = gateway
        self.connection = connection
        self.inbox = Mutex(Inbox(seat: id))
    }

    /// The session this connection carries now (`nil`: taken over elsewhere).
    var seat: ClientID? { inbox.withLock { $0.seat } }

    /// The cell of the room this connection's session was in when an input last left it there
    /// (it may have left since: the room's cell tells).
    var roomCell: RoomCell? { inbox.withLock { $0.room } }

    /// Its session is in `cell`'s room now, or in none (called under the gateway's lock).
    func enter(_ cell: RoomCell?) {
        inbox.withLock { $0.room = cell }
    }

    /// A resume moved `session` to this connection (called under the gateway's lock).
    func rebind(to session: ClientID) {
        inbox.withLock { $0.seat = session }
    }

    /// From now on `owner` serves this connection's session: what it sends is relayed there.
    func relay(to owner: String) {
        inbox.withLock { $0.relayedTo = owner }
    }

    /// The replica this connection's session is served by, if not this one.
    var relayedTo: String? { inbox.withLock { $0.relayedTo } }

    /// Whether one more ping of this relayed connection may be answered here (at most the
    /// protocol's rate limit per second; past it they go to the owner, which applies the limit).
    func admitsRelayedPing(at stamp: UInt64, limit: Int) -> Bool {
        inbox.withLock { inbox in
            if stamp >= inbox.relayedPings.windowStart + 1_000_000_000 || stamp < inbox.relayedPings.windowStart {
                inbox.relayedPings = (stamp, 0)
            }
            inbox.relayedPings.count += 1
            return inbox.relayedPings.count <= limit
        }
    }

    /// Another connection took this one's session over: nothing it sends reaches the core.
    func detach() {
        inbox.withLock { inbox in
            inbox.seat = nil
            inbox.room = nil
            inbox.held.removeAll()
        }
    }

    func received(text: String, readAt: ReadStamp) {
        let held: Bool? = inbox.withLock { inbox in
            guard inbox.verifying else { return false }
            guard inbox.held.count < Self.heldLimit else { return nil }
            inbox.held.append((text, readAt))
            return true
        }
        switch held {
        case false?: take(text, readAt: readAt)
        case true?: break
        case nil:
            let flood = CloseCause.rateLimited
            connection.close(code: flood.code, reason: flood.text)
        }
    }

    func received(binary: [UInt8], readAt: ReadStamp) {
        received(binaryOf: binary.count, readAt: readAt)
    }

    /// A binary message of `count` bytes (relayed ones arrive as their size).
    func received(binaryOf count: Int, readAt: ReadStamp) {
        if let owner = relayedTo { return gateway.forward(.binary(connection: greetedAs, bytes: count), to: owner) }
        guard let seat else { return }
        gateway.receivedBinary(count, from: seat, by: self, readAt: readAt)
    }

    func closed(code: UInt16?) {
        let seat = inbox.withLock { inbox -> ClientID? in
            inbox.closed = true
            inbox.held.removeAll()
            return inbox.seat
        }
        gateway.disconnected(self, seat: seat, code: code)
    }

    func measured(roundTrip: Duration) {
        if let owner = relayedTo {
            let milliseconds = UInt64(max(0, (roundTrip.seconds * 1000).rounded()))
            return gateway.forward(.roundTrip(connection: greetedAs, milliseconds: milliseconds), to: owner)
        }
        let (seat, room) = inbox.withLock { ($0.seat, $0.room) }
        guard let seat else { return }
        gateway.recordRoundTrip(seat, roundTrip, room: room)
    }

    /// Hands one message to the gateway; true if it started a verification.
    @discardableResult
    private func take(_ text: String, readAt: ReadStamp) -> Bool {
        if let owner = relayedTo {
            if !gateway.answeredAtRelay(text, by: self, readAt: readAt) {
                gateway.forward(.input(connection: greetedAs, text: text), to: owner)
            }
            return false
        }
        guard let seat else { return false }
        let intake = gateway.receive(text, from: seat, by: self, readAt: readAt) { [self] verified in
            connection.onEventLoop { self.resume(verified) }
        }
        guard intake == .verifying else { return false }
        inbox.withLock { $0.verifying = true }
        return true
    }

    /// Back on the event loop with a verdict: the auth, then what waited for it, in order.
    private func resume(_ verified: SessionGateway.Verified) {
        guard let seat = inbox.withLock({ $0.closed ? nil : $0.seat }) else { return }
        if let owner = relayedTo {
            // Its session moved to another replica meanwhile (its user's seat is there): the message goes with it.
            gateway.forward(.input(connection: greetedAs, text: verified.text), to: owner)
        } else {
            gateway.verified(verified, from: seat, by: self)
        }
        while let next = inbox.withLock({ inbox -> (text: String, readAt: ReadStamp)? in
            guard let first = inbox.held.popFirst() else {
                inbox.verifying = false
                return nil
            }
            return first
        }) {
            if take(next.text, readAt: next.readAt) { return }
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Round trips waiting for the core, per client, oldest first: at most as many per client as
/// the core keeps (``limit``), so however long no input comes, this stays bounded.
struct PendingRoundTrips {
    static let limit = 8
    private(set) var samples: [ClientID: [UInt64]] = [:]

    mutating func add(_ rtt: UInt64, for client: ClientID) {
        add([rtt], for: client)
    }

    mutating func add(_ rtts: [UInt64], for client: ClientID) {
        var list = samples[client, default: []]
        list.append(contentsOf: rtts)
        if list.count > Self.limit { list.removeFirst(list.count - Self.limit) }
        samples[client] = list
    }

    mutating func take() -> [ClientID: [UInt64]] {
        defer { samples = [:] }
        return samples
    }
}

/// The gateway's armed timers by reason, each with the id it was armed under.
struct ArmedTimers {
    struct Armed {
        let id: UInt64
        let scheduled: Scheduled<Void>
    }

    private var byKey: [TimerKey: Armed] = [:]
    private var nextID: UInt64 = 0

    var count: Int { byKey.count }

    func isArmed(_ key: TimerKey) -> Bool { byKey[key] != nil }

    /// A fresh id for a timer about to be armed.
    mutating func arm() -> UInt64 {
        nextID += 1
        return nextID
    }

    /// Keeps `armed` for `key`; returns the timer it replaces, to be cancelled.
    mutating func replace(_ key: TimerKey, with armed: Armed) -> Scheduled<Void>? {
        byKey.updateValue(armed, forKey: key)?.scheduled
    }

    /// Forgets `key`'s timer; returns it, to be cancelled.
    mutating func remove(_ key: TimerKey) -> Scheduled<Void>? {
        byKey.removeValue(forKey: key)?.scheduled
    }

    /// Forgets `key`'s timer only if it is still the one armed as `id`.
    mutating func remove(_ key: TimerKey, ifArmedAs id: UInt64) -> Bool {
        guard byKey[key]?.id == id else { return false }
        byKey[key] = nil
        return true
    }
}
