import Testing
@testable import WatchPartyCore
@Test func version() { #expect(WatchPartyCoreVersion.protocolVersion == 1) }
