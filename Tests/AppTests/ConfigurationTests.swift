import ArgumentParser
import Testing
@testable import App

@Suite struct ConfigurationTests {
    @Test func defaultsAreTheProtocols() throws {
        let settings = try ServerCommand.parse([]).resolve(environment: [:])
        #expect(settings.host == "0.0.0.0")
        #expect(settings.port == 3000)
        #expect(settings.rules.playScheduleMs == 1500)
        #expect(settings.rules.controlScheduleMs == 300)
        #expect(settings.rules.maxReadyWaitMs == 2000)
        #expect(settings.rules.minStateUpdateIntervalMs == 500)
        #expect(settings.rules.positionJitterThreshold == 0.5)
        #expect(settings.rules.commandCooldownMs == 2000)
        #expect(settings.rules.maxClientsPerRoom == 20)
        #expect(settings.rules.guestPlaybackControl)
        #expect(settings.transport.maxMessageSize == 65_536)
        #expect(settings.transport.outboundQueueCapacity == 100)
        #expect(settings.rules.resumeGraceMs == 30_000, "RESUME_GRACE_SECONDS defaults to 30 (PROTOCOL.md §13)")
        #expect(!settings.rules.resumeByUserID)
        #expect(settings.rules.maxAwaySessions == 10_000)
    }

    @Test func sessionSettingsAreRead() throws {
        let env = ["RESUME_GRACE_SECONDS": "0", "RESUME_BY_USER_ID": "true", "MAX_AWAY_SESSIONS": "50"]
        let settings = try ServerCommand.parse([]).resolve(environment: env)
        #expect(settings.rules.resumeGraceMs == 0)
        #expect(settings.rules.resumeByUserID)
        #expect(settings.rules.maxAwaySessions == 50)
        let flagged = try ServerCommand.parse(["--resume-grace-seconds", "90"]).resolve(environment: env)
        #expect(flagged.rules.resumeGraceMs == 90_000)
    }

    @Test func environmentIsReadAndFlagsWin() throws {
        let env = ["PORT": "4000", "MAX_CLIENTS_PER_ROOM": "5", "GUEST_PLAYBACK_CONTROL": "false", "POSITION_JITTER_THRESHOLD": "0.25"]
        let fromEnv = try ServerCommand.parse([]).resolve(environment: env)
        #expect(fromEnv.port == 4000)
        #expect(fromEnv.rules.maxClientsPerRoom == 5)
        #expect(!fromEnv.rules.guestPlaybackControl)
        #expect(fromEnv.rules.positionJitterThreshold == 0.25)
        let flagged = try ServerCommand.parse(["--port", "5000"]).resolve(environment: env)
        #expect(flagged.port == 5000)
    }

    @Test(arguments: [
        ["PORT": "abc"], ["PORT": "70000"], ["PORT": "-1"], ["MAX_CLIENTS_PER_ROOM": "0"], ["LOG_LEVEL": "loud"],
        ["GUEST_PLAYBACK_CONTROL": "maybe"], ["POSITION_JITTER_THRESHOLD": "-1"], ["LOG_FORMAT": "xml"],
        ["RESUME_GRACE_SECONDS": "-1"], ["RESUME_GRACE_SECONDS": "86401"], ["RESUME_BY_USER_ID": "sometimes"], ["MAX_AWAY_SESSIONS": "0"],
    ])
    func badValuesAreRefusedWithTheSettingsName(env: [String: String]) throws {
        let name = try #require(env.keys.first)
        do {
            _ = try ServerCommand.parse([]).resolve(environment: env)
            Issue.record("\(env) was accepted")
        } catch let error as ValidationError {
            #expect(error.message.hasPrefix(name))
        }
    }
}
