/// One room as a store keeps it and another replica takes it over (PROTOCOL.md §14): the
/// room's lasting state and the seats of its members, as one value.
///
/// Guarantees: it holds everything a new owner needs to go on from where the room was —
/// members in join order, host, readiness, the play state and its position anchor, a pending
/// play, the command timing rules' memory, and each seat's identity and resume-token digest
/// (never a token). What belongs to connections (authentication, rate windows, round trips,
/// statuses) and to coalescing windows is left out: on a takeover every seat is away until
/// its member resumes, and its status is `null` until the member reports one. The host
/// drift filter's memory is left out too; it refills from the next few reports.
public struct RoomRecord: Sendable, Equatable, Codable {
    /// The record format written now; a reader refuses records of a later one.
    public static let currentVersion = 1

    public var version: Int
    public var id: RoomID
    public var name: String
    public var hostID: ClientID
    public var mediaID: String?
    /// Members in join order.
    public var members: [ClientID]
    /// Ready members, sorted (a stable encoding).
    public var ready: [ClientID]
    public var playback: Playback
    public var pendingPlay: PendingPlay?
    public var lastCommandTarget: ServerTime?
    public var lastAcceptedAt: ServerTime?
    public var createdAt: ServerTime
    /// One seat per member, in the order of ``members``.
    public var seats: [SeatRecord]
}

/// A member's seat as a ``RoomRecord`` keeps it: who it is and how it is resumed.
public struct SeatRecord: Sendable, Equatable, Codable {
    public var id: ClientID
    public var userID: String
    public var name: String
    /// Declared features, sorted by name.
    public var features: [String]
    public var verifiedUserID: Bool
    public var claimedUserID: Bool
    /// The current resume token's SHA-256, lowercase hex (the token itself is never kept).
    public var resumeDigest: String?
    /// The token the seat's last resume replaced, while it still resumes it (``RetiringToken``):
    /// its SHA-256 in lowercase hex, and until when. Absent in records written before it was kept.
    public var retiringDigest: String?
    public var retiringUntil: ServerTime?
    /// When the seat's connection ended; `nil` while a connection carried it.
    public var awaySince: ServerTime?

    /// What a resume by identity goes by (as ``ClientSession/identity``).
    public var identity: String? { verifiedUserID || claimedUserID ? userID : nil }
}

extension ResumeDigest {
    /// Lowercase hex of the digest's bytes.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The digest written as ``hex``; `nil` for anything else.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes: bytes)
    }
}
