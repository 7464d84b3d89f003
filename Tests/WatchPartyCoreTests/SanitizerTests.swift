import Testing

@testable import WatchPartyCore

/// The sanitizer's fast paths give what Unicode's own tables give.
@Suite struct SanitizerTests {
    @Test func controlIsExactlyGeneralCategoryCcForEveryScalar() {
        var disagreements: [UInt32] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }  // surrogates
            if Sanitizer.isControl(scalar) != (scalar.properties.generalCategory == .control) { disagreements.append(value) }
        }
        #expect(disagreements.isEmpty)
    }

    @Test func cleanChatIsKeptAsItIsAndControlsAreRemoved() {
        #expect(Sanitizer.chat("popcorn?\n🍿 ready") == "popcorn?\n🍿 ready")
        #expect(Sanitizer.chat("a\u{0}b\u{7F}c\u{85}d\te\nf") == "abcde\nf")
    }

    @Test func blankMeansOnlyWhitespace() {
        #expect(" \n\t\u{3000}".isBlank)
        #expect("".isBlank)
        #expect(!"  x ".isBlank)
    }
}
