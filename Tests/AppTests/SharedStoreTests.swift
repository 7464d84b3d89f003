import Foundation
import Logging
import PostgresNIO
import Testing
@testable import WatchPartyCore

@testable import App

/// The shared store's statements against a real PostgreSQL (PROTOCOL.md §14): migrations,
/// claims and the fencing rule, look-ups.
@Suite(.enabled(if: TestDatabase.enabled, "needs PostgreSQL's server binaries or OWP_TEST_DATABASE_URL (OWP_REQUIRE_POSTGRES=1 makes this a failure)"))
struct SharedStoreTests {
    static let logger = Logger(label: "store-test")

    /// Calls may take up to 10 s: these tests are about what the database answers, and a CI
    /// machine running the whole suite at once may be slow to answer.
    static func table(_ client: PostgresClient, replica: String, lease: Int = 10) -> RoomTable {
        RoomTable(client: client, replica: replica, leaseSeconds: lease, callLimit: .seconds(10), logger: logger)
    }

    static func record(_ id: RoomID, members: [ClientID] = ["h", "g"], identity: String? = nil) -> RoomRecord {
        RoomRecord(
            version: RoomRecord.currentVersion, id: id, name: "Room \(id)", hostID: members[0], mediaID: nil, members: members, ready: members.sorted(),
            playback: Playback(position: 12.5, playState: .playing, asOf: 1_000), pendingPlay: nil, lastCommandTarget: 900, lastAcceptedAt: 800,
            createdAt: 500,
            seats: members.map {
                SeatRecord(id: $0, userID: identity ?? "anonymous", name: $0.uppercased(), features: [], verifiedUserID: identity != nil, claimedUserID: false,
                    resumeDigest: ResumeDigest(bytes: Array("\(id)-\($0)".utf8)).hex, awaySince: nil)
            })
    }

    static func json(_ record: RoomRecord) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(record), as: UTF8.self)
    }

    @Test func migrationsRunOnceEvenWhenReplicasStartTogether() async throws {
        let url = try await TestDatabase.fresh()
        try await TestDatabase.withClient(url: url) { client in
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 { group.addTask { try await StoreSchema.migrate(client, logger: Self.logger) } }
                return try await group.reduce(into: [[Int]]()) { $0.append($1) }
            }
            #expect(applied.filter { !$0.isEmpty } == [Array(1...StoreSchema.latestVersion)], "exactly one start migrated: \(applied)")
            #expect(try await StoreSchema.migrate(client, logger: Self.logger).isEmpty, "a second run changes nothing")
            var versions: [Int] = []
            for try await version in try await client.query("SELECT version FROM owp_schema_migrations ORDER BY version").decode(Int.self) { versions.append(version) }
            #expect(versions == Array(1...StoreSchema.latestVersion))
            // An operator rolled back past the latest migration by deleting its row: it runs again, harmlessly.
            try await client.query("DELETE FROM owp_schema_migrations WHERE version = \(StoreSchema.latestVersion)")
            #expect(try await StoreSchema.migrate(client, logger: Self.logger) == [StoreSchema.latestVersion])
            // A database migrated by a newer server is refused, not written…
            let newer = StoreSchema.latestVersion + 1
            try await client.query("INSERT INTO owp_schema_migrations (version) VALUES (\(newer))")
            await #expect(throws: StoreSchema.TooNew.self) { try await StoreSchema.migrate(client, logger: Self.logger) }
            // …unless its newer migrations say this server still reads it (a rollback), and then nothing is applied.
            try await client.query("UPDATE owp_schema_migrations SET readable_from = \(StoreSchema.latestVersion) WHERE version = \(newer)")
            #expect(try await StoreSchema.migrate(client, logger: Self.logger).isEmpty)
            try await client.query("INSERT INTO owp_schema_migrations (version, readable_from) VALUES (\(newer + 1), \(newer))")
            await #expect(throws: StoreSchema.TooNew.self, "one newer migration this server cannot read is enough") {
                try await StoreSchema.migrate(client, logger: Self.logger)
            }
        }
    }

    @Test func aRetiringTokenFindsItsRoom() async throws {
        let url = try await TestDatabase.fresh()
        try await TestDatabase.withClient(url: url) { client in
            try await StoreSchema.migrate(client, logger: Self.logger)
            let a = Self.table(client, replica: "a")
            var room = Self.record("r1")
            room.seats[1].retiringDigest = ResumeDigest(bytes: Array("retiring-1".utf8)).hex
            room.seats[1].retiringUntil = 31_000
            _ = try await a.write([.upsert(room, json: try Self.json(room), epoch: 1, seq: 1, created: true)])
            let current = try #require(room.seats[1].resumeDigest)
            let retiring = try #require(room.seats[1].retiringDigest)
            #expect(try await a.rooms(resumedBy: [current, retiring, "00ff"]) == [current: "r1", retiring: "r1"], "either token finds the seat's room")
            // Its next resume: the token it replaced retires, the one retiring before stops finding anything.
            let replaced = current
            room.seats[1].resumeDigest = ResumeDigest(bytes: Array("current-2".utf8)).hex
            room.seats[1].retiringDigest = replaced
            _ = try await a.write([.upsert(room, json: try Self.json(room), epoch: 1, seq: 2, created: false)])
            let stored = try await a.rooms(resumedBy: [retiring, replaced, room.seats[1].resumeDigest!])
            #expect(stored == [replaced: "r1", room.seats[1].resumeDigest!: "r1"])
            // The next owner reads the retiring token with its deadline.
            try await client.query("UPDATE owp_rooms SET lease_until = now() - interval '1 second' WHERE room_id = 'r1'")
            guard case .claimed(_, let json, _) = try await Self.table(client, replica: "b").claim("r1") else {
                throw TestFailure("a lapsed room could not be claimed")
            }
            let taken = try JSONDecoder().decode(RoomRecord.self, from: Data(json.utf8))
            #expect(taken.seats[1].retiringDigest == replaced && taken.seats[1].retiringUntil == 31_000)
        }
    }

    @Test func aStaleOwnersWritesAndRenewalsAreRefused() async throws {
        let url = try await TestDatabase.fresh()
        try await TestDatabase.withClient(url: url) { client in
            try await StoreSchema.migrate(client, logger: Self.logger)
            let a = Self.table(client, replica: "a")
            let b = Self.table(client, replica: "b")
            let room = Self.record("r1")
            let renewedFrom = ContinuousClock.now  // the insert sets a full lease: at least one from here
            let created = try await a.write([.upsert(room, json: try Self.json(room), epoch: 1, seq: 1, created: true)])
            #expect(created.written == ["r1"] && created.lost.isEmpty)
            // A first write given up on that landed anyway, then retried: still ours, not "lost".
            let retried = try await a.write([.upsert(room, json: try Self.json(room), epoch: 1, seq: 2, created: true)])
            #expect(retried.written == ["r1"] && retried.lost.isEmpty)
            // An older write of ours landing after a newer one changes nothing.
            var older = room
            older.name = "an older state"
            let late = try await a.write([.upsert(older, json: try Self.json(older), epoch: 1, seq: 1, created: false)])
            #expect(late.written == ["r1"] && late.lost.isEmpty, "superseded, not lost")
            guard case .ownedElsewhere(owner: "a", let remaining) = try await b.claim("r1") else { throw TestFailure("a live lease was taken") }
            // However long the writes and the claim took on a busy machine: a full lease, less that time.
            let since = (ContinuousClock.now - renewedFrom).seconds
            #expect(remaining > 10 - since - 0.25 && remaining <= 10, "the lease runs \(remaining) s more, \(since) s after the insert began")
            #expect(try await a.claim("r1") == .ownedHere)
            #expect(try await b.claim("nope") == .missing)

            // A is cut off past its lease: by the database's clock the claim has run out.
            try await client.query("UPDATE owp_rooms SET lease_until = now() - interval '1 second' WHERE room_id = 'r1'")
            guard case .claimed(let epoch, let stored, let silentMs) = try await b.claim("r1") else { throw TestFailure("b could not claim a lapsed room") }
            #expect(silentMs >= 0 && silentMs < 5_000, "the owner was last heard of \(silentMs) ms ago (its last write)")
            #expect(epoch == 2, "every claim moves the fencing epoch")
            #expect(try JSONDecoder().decode(RoomRecord.self, from: Data(stored.utf8)) == room, "the next owner reads the room as written")

            var changed = room
            changed.name = "written by a stale owner"
            let stale = try await a.write([.upsert(changed, json: try Self.json(changed), epoch: 1, seq: 3, created: false)])
            #expect(stale.written.isEmpty && stale.lost.map(\.room) == ["r1"] && stale.lost.map(\.epoch) == [1], "the stale owner's write is refused")
            #expect(try await a.renew([("r1", 1)]).isEmpty, "and so is its renewal: it learns the room is gone")
            _ = try await a.write([.delete("r1", epoch: 1)])
            #expect(try await b.renew([("r1", 2)]) == ["r1"], "the stale delete removed nothing")
            var name = ""
            for try await value in try await client.query("SELECT name FROM owp_rooms WHERE room_id = 'r1'").decode(String.self) { name = value }
            #expect(name == room.name)

            let fresh = try await b.write([.upsert(changed, json: try Self.json(changed), epoch: 2, seq: 1, created: false)])
            #expect(fresh.written == ["r1"], "a new claim starts its own write sequence")

            // A room its new owner closed is never brought back by the stale owner.
            _ = try await b.write([.delete("r1", epoch: 2)])
            let zombie = try await a.write([.upsert(changed, json: try Self.json(changed), epoch: 1, seq: 9, created: false)])
            #expect(zombie.written.isEmpty && zombie.lost.map(\.room) == ["r1"])
            #expect(try await b.claim("r1") == .missing)
        }
    }

    @Test func seatsAreFoundByTokenDigestAndIdentity() async throws {
        let url = try await TestDatabase.fresh()
        try await TestDatabase.withClient(url: url) { client in
            try await StoreSchema.migrate(client, logger: Self.logger)
            let a = Self.table(client, replica: "a")
            let first = Self.record("r1", members: ["h1", "g1"], identity: "u-alice")
            let second = Self.record("r2", members: ["h2"])
            _ = try await a.write([
                .upsert(first, json: try Self.json(first), epoch: 1, seq: 1, created: true), .upsert(second, json: try Self.json(second), epoch: 1, seq: 2, created: true),
            ])
            func room(resumedBy digest: String?) async throws -> RoomID? {
                let digest = try #require(digest)
                return try await a.rooms(resumedBy: [digest])[digest]
            }
            let guest = try #require(first.seats[1].resumeDigest)
            let host = try #require(second.seats[0].resumeDigest)
            #expect(try await a.rooms(resumedBy: [guest, "00ff", host]) == [guest: "r1", host: "r2"], "one statement for a batch; unknown digests left out")
            #expect(try await a.rooms(of: ["u-alice", "anonymous"]) == ["u-alice": ["r1"]], "an unverified user id is no identity")
            #expect(try await a.ownersElsewhere(of: ["r1", "r2"]).isEmpty, "its own rooms are not elsewhere")
            let b = Self.table(client, replica: "b")
            #expect(try await b.ownersElsewhere(of: ["r1", "r2", "r9"]) == ["r1": "a", "r2": "a"])

            // A seat that moved to another room is found there, and a closed room's seats go with it.
            var moved = second
            moved.members.append("g1")
            moved.ready.append("g1")
            moved.seats.append(first.seats[1])
            var left = first
            left.members = ["h1"]
            left.ready = ["h1"]
            left.seats = [first.seats[0]]
            _ = try await a.write([
                .upsert(left, json: try Self.json(left), epoch: 1, seq: 3, created: false), .upsert(moved, json: try Self.json(moved), epoch: 1, seq: 4, created: false),
            ])
            #expect(try await room(resumedBy: first.seats[1].resumeDigest) == "r2")
            _ = try await a.write([.delete("r2", epoch: 1)])
            #expect(try await room(resumedBy: first.seats[1].resumeDigest) == nil)
            try await a.release([("r1", 1)])
            #expect(try await b.ownersElsewhere(of: ["r1"]).isEmpty, "a released room has no owner to relay to")
            guard case .claimed = try await b.claim("r1") else { throw TestFailure("a released room is claimable at once") }

            // A room nobody came back to for longer than every grace is removed; a live one is not.
            try await client.query("UPDATE owp_rooms SET owner = NULL, lease_until = now() - interval '2 hours' WHERE room_id = 'r1'")
            #expect(try await a.removeAbandoned(graceSeconds: 30) == 1)
            #expect(try await room(resumedBy: first.seats[0].resumeDigest) == nil, "its seats went with it")
        }
    }

    @Test func oneRoomTheDatabaseRefusesHoldsUpNoOther() async throws {
        let url = try await TestDatabase.fresh()
        try await TestDatabase.withClient(url: url) { client in
            try await StoreSchema.migrate(client, logger: Self.logger)
            let a = Self.table(client, replica: "a")
            let good = Self.record("good")
            let bad = Self.record("bad")
            // JSON PostgreSQL's jsonb cannot hold (an escaped NUL).
            let result = try await a.write([
                .upsert(bad, json: #"{"name":"\u0000"}"#, epoch: 1, seq: 1, created: true), .upsert(good, json: try Self.json(good), epoch: 1, seq: 2, created: true),
            ])
            #expect(result.failed == ["bad"])
            #expect(result.written == ["good"])
        }
    }

    @Test func aBadURLOrRefusedCredentialsStopTheStartWithAClearError() async throws {
        #expect(throws: SettingsError.self) { try DatabaseSettings(url: "mysql://x@y/z") }
        #expect(throws: SettingsError.self) { try DatabaseSettings(url: "postgres://host-without-user/db") }
        #expect(throws: SettingsError.self) { try DatabaseSettings(url: "postgres://u:p@h/db?sslmode=sometimes") }
        #expect(throws: SettingsError.self) { try DatabaseSettings(url: "postgres://u:p@h/db?application_name=x") }
        let settings = try DatabaseSettings(url: "postgresql://owp:s3cr%40t@db.example:6432/owp?sslmode=require")
        #expect(settings.password?.revealed == "s3cr@t")
        #expect(settings.port == 6432 && settings.tls == .require && settings.database == "owp")
        #expect(settings.description == "postgres://owp:<redacted>@db.example:6432/owp?sslmode=require")
        #expect(!"\(settings)".contains("s3cr"))

        let url = try await offPool { try TestDatabase.serverURL() }
        var wrong = URLComponents(string: url)!
        wrong.password = "not-the-password"
        let server = try ServerProcess(arguments: [], environment: ["DATABASE_URL": wrong.string!])
        let status = try await server.exitStatus(within: .seconds(20))
        #expect(status != nil && status != 0, "the server does not start without its database")
        #expect(server.logText.contains("cannot use the database at postgres://owp:<redacted>@127.0.0.1"), "\(server.logText)")
        #expect(server.logText.contains("28P01"), "the server's own reason (invalid password) is shown")
        #expect(!server.logText.contains("not-the-password"))
    }
}
