import Observability
import WatchPartyCore

extension MetricLabels {
    /// Every label value the watch-party metrics can take, from the core's own enums.
    static let watchParty = MetricLabels(
        clientTypes: ClientMessageType.allCases.map(\.rawValue) + ["invalid", "binary"],
        serverTypes: [
            "client_hello", "auth_success", "room_list", "room_state", "participant_list", "participant_statuses",
            "participants_update", "client_left", "host_changed", "room_closed", "player_event", "state_update",
            "chat_message", "pong", "error",
        ],
        errorCodes: ErrorCode.allCases.map(\.rawValue),
        roomCloseReasons: RoomCloseReason.allCases.map(\.rawValue),
        stateResults: StateUpdateResult.allCases.map(\.rawValue),
        barrierCauses: BarrierReleaseCause.allCases.map(\.rawValue),
        statuses: ParticipantStatus.allCases.map(\.rawValue)
    )
}
