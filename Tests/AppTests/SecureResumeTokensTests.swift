import Crypto
import Foundation
import Testing
import WatchPartyCore

@testable import App

/// The server's resume tokens (PROTOCOL.md §13): at least 128 random bits, only a digest kept.
@Suite struct SecureResumeTokensTests {
    @Test func tokensAre192RandomBitsOfBase64URLAndOnlyTheirSHA256IsKept() {
        var minter = SecureResumeTokens()
        let minted = (0..<1_000).map { _ in minter.mint() }
        #expect(Set(minted.map(\.token)).count == 1_000, "no two alike")
        for token in minted.prefix(50) {
            #expect(token.token.utf8.count == 32, "24 bytes, base64url, unpadded")
            #expect(token.token.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) })
            #expect(token.digest.bytes == Array(SHA256.hash(data: Data(token.token.utf8))))
            #expect(minter.digest(of: token.token).matches(token.digest))
        }
        #expect(!minter.digest(of: minted[0].token + "x").matches(minted[0].digest))
        // Every bit position varies: 1 000 tokens of a biased or short source would not.
        let bytes = minted.map { Array(Data(base64Encoded: $0.token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "") ?? Data()) }
        #expect(bytes.allSatisfy { $0.count == SecureResumeTokens.randomBytes })
        for index in 0..<SecureResumeTokens.randomBytes {
            #expect(Set(bytes.map { $0[index] }).count > 100, "byte \(index) looks random")
        }
    }
}
