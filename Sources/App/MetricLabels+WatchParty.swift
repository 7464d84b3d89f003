import Observability
import Transport
import WatchPartyCore

extension MetricLabels {
    /// Every label value the watch-party metrics can take, from the core's and the transport's
    /// own enums (a new case is a new label value, with nothing to remember).
    static let watchParty = MetricLabels(
        clientTypes: ClientMessageType.allCases.map(\.rawValue) + ["invalid", "binary"],
        serverTypes: ServerMessageType.allCases.map(\.rawValue),
        errorCodes: ErrorCode.allCases.map(\.rawValue),
        roomCloseReasons: RoomCloseReason.allCases.map(\.rawValue),
        stateResults: StateUpdateResult.allCases.map(\.rawValue),
        barrierCauses: BarrierReleaseCause.allCases.map(\.rawValue),
        statuses: ParticipantStatus.allCases.map(\.rawValue),
        refusalReasons: RefusalReason.allCases.map(\.rawValue),
        closeReasons: CloseReasons.all,
        resumeWays: ResumeWay.allCases.map(\.rawValue),
        resumeResults: ResumeResult.allCases.map(\.rawValue),
        storeOperations: StoreOperation.allCases.map(\.rawValue),
        busLinkDrops: ReplicaBus.LinkDrop.allCases.map(\.rawValue),
        roomSyncVerdicts: RoomSync.Verdict.allCases.map(\.rawValue)
    )
}

/// Every way a connection ends, with the close code it is sent with: the client's own close,
/// the watch party's ``CloseCause``s and the transport's ``TransportCloseCause``s. Codes are
/// unique (`CloseReasonTests`), so a code alone names its reason.
enum CloseReasons {
    static let client = MetricLabels.CloseReason(reason: "client", code: nil)

    static let all: [MetricLabels.CloseReason] =
        [client]
        + CloseCause.allCases.map { MetricLabels.CloseReason(reason: $0.rawValue, code: $0.code) }
        + TransportCloseCause.allCases.map { MetricLabels.CloseReason(reason: $0.rawValue, code: $0.code) }

    private static let byCode: [UInt16: String] = Dictionary(uniqueKeysWithValues: all.compactMap { entry in entry.code.map { ($0, entry.reason) } })

    /// The `reason` for a close the server sent with `code` (`client` for `nil`, `other` for a code of nobody's).
    static func reason(for code: UInt16?) -> String {
        guard let code else { return client.reason }
        return byCode[code] ?? "other"
    }
}
