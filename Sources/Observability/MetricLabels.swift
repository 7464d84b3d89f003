/// The closed sets of label values the metrics use. The application fills every one of them
/// from its own `CaseIterable` enums (``MetricLabels`` has no lists of its own that could drift
/// from the code), so Observability does not depend on the domain or the transport.
public struct MetricLabels: Sendable {
    /// One close cause: its `reason` label and the close `code` it is sent with.
    public struct CloseReason: Sendable, Equatable {
        public var reason: String
        public var code: UInt16?

        public init(reason: String, code: UInt16?) {
            self.reason = reason
            self.code = code
        }

        /// The `code` label: the number, or `client` when the client closed first.
        public var codeLabel: String { code.map(String.init) ?? "client" }
    }

    public var clientTypes: [String]
    public var serverTypes: [String]
    public var errorCodes: [String]
    public var roomCloseReasons: [String]
    public var stateResults: [String]
    public var barrierCauses: [String]
    public var statuses: [String]
    /// Why an upgrade was refused.
    public var refusalReasons: [String]
    /// Every way a connection ends; codes are unique, and `code == nil` is the client's own close.
    public var closeReasons: [CloseReason]
    /// How a session was found for a resume, and what came of it (PROTOCOL.md §13).
    public var resumeWays: [String]
    public var resumeResults: [String]
    /// The shared store's kinds of database call (PROTOCOL.md §14).
    public var storeOperations: [String]
    /// Why the bus dropped a link with another replica (PROTOCOL.md §14).
    public var busLinkDrops: [String]
    /// A room's sync verdict (docs/sync.md § Per room).
    public var roomSyncVerdicts: [String]

    public init(
        clientTypes: [String], serverTypes: [String], errorCodes: [String], roomCloseReasons: [String],
        stateResults: [String], barrierCauses: [String], statuses: [String], refusalReasons: [String], closeReasons: [CloseReason],
        resumeWays: [String], resumeResults: [String], storeOperations: [String] = [], busLinkDrops: [String] = [],
        roomSyncVerdicts: [String] = []
    ) {
        self.roomSyncVerdicts = roomSyncVerdicts
        self.storeOperations = storeOperations
        self.busLinkDrops = busLinkDrops
        self.resumeWays = resumeWays
        self.resumeResults = resumeResults
        self.clientTypes = clientTypes
        self.serverTypes = serverTypes
        self.errorCodes = errorCodes
        self.roomCloseReasons = roomCloseReasons
        self.stateResults = stateResults
        self.barrierCauses = barrierCauses
        self.statuses = statuses
        self.refusalReasons = refusalReasons
        self.closeReasons = closeReasons
    }

    /// The `status` label of a room member that has reported no status (hosts usually).
    public static let noStatus = "none"

    /// The size classes of `owp_rooms_by_members`.
    public static let roomSizeClasses: [(label: String, range: ClosedRange<Int>)] = [
        ("1", 1...1), ("2", 2...2), ("3-5", 3...5), ("6-10", 6...10), ("11-20", 11...20), ("21+", 21...Int.max),
    ]
}
