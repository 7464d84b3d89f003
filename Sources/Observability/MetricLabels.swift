/// The closed sets of label values the metrics use. The application fills the domain ones
/// from its own enums, so Observability does not depend on the domain.
public struct MetricLabels: Sendable {
    public var clientTypes: [String]
    public var serverTypes: [String]
    public var errorCodes: [String]
    public var roomCloseReasons: [String]
    public var stateResults: [String]
    public var barrierCauses: [String]
    public var statuses: [String]

    public init(
        clientTypes: [String], serverTypes: [String], errorCodes: [String], roomCloseReasons: [String],
        stateResults: [String], barrierCauses: [String], statuses: [String]
    ) {
        self.clientTypes = clientTypes
        self.serverTypes = serverTypes
        self.errorCodes = errorCodes
        self.roomCloseReasons = roomCloseReasons
        self.stateResults = stateResults
        self.barrierCauses = barrierCauses
        self.statuses = statuses
    }

    /// Why an upgrade was refused (transport level).
    public static let rejectReasons = ["origin", "max_connections", "max_connections_per_ip", "draining"]
    /// Close codes the server uses; `client` when the client closed first.
    public static let closeCodes = ["client", "1000", "1001", "1002", "1007", "1008", "1009", "1011"]
}
