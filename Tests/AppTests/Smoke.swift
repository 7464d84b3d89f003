import Testing
import HummingbirdTesting
import HummingbirdWSTesting
@testable import App
@Test func smoke() { #expect(Bool(true)) }
