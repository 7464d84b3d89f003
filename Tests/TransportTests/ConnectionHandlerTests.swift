import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import Transport

/// The connection handler as RFC 6455 and PROTOCOL.md §1 describe it, frame by frame, on an
/// `EmbeddedChannel` with virtual time: what a client sends, what the application is handed,
/// what the server writes back and when.
@Suite struct ConnectionHandlerTests {
    // MARK: Messages

    @Test func aMaskedTextFrameIsHandedOverUnmasked() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.text(#"{"type":"ping"}"#))
        #expect(harness.session.texts == [#"{"type":"ping"}"#])
        #expect(harness.isOpen)
    }

    @Test func aMessageSplitAcrossFramesAndReadsIsReassembled() throws {
        let harness = try HandlerHarness()
        var whole = ClientFrame.text("Hello, ", fin: false)
        whole.writeImmutableBuffer(ClientFrame.make(0x0, Array("wörld".utf8)))
        // Every byte in its own read: headers and payloads cut everywhere, the ü's two bytes apart.
        for byte in whole.readableBytesView {
            try harness.send(ByteBuffer(bytes: [byte]))
        }
        #expect(harness.session.texts == ["Hello, wörld"])
    }

    @Test func aPingBetweenFragmentsIsAnsweredAndTheMessageStillArrives() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.text("one ", fin: false), ClientFrame.make(0x9, [1, 2, 3]), ClientFrame.make(0x0, Array("two".utf8)))
        #expect(harness.session.texts == ["one two"])
        #expect(try harness.written() == [ServerFrame(fin: true, rsv1: false, opcode: 0xA, payload: [1, 2, 3])])
    }

    @Test func binaryIsHandedOverAsBytes() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.make(0x2, [0, 255, 7]))
        #expect(harness.session.log.withLock { $0.binaries } == [[0, 255, 7]])
    }

    // MARK: Protocol errors (1002)

    @Test(arguments: [
        ("unmasked", ClientFrame.make(0x1, Array("hi".utf8), masked: false)),
        ("RSV2", ClientFrame.make(0x1, Array("hi".utf8), rsv2: true)),
        ("RSV3", ClientFrame.make(0x1, Array("hi".utf8), rsv3: true)),
        ("RSV1 without deflate", ClientFrame.make(0x1, Array("hi".utf8), rsv1: true)),
        ("reserved data opcode 3", ClientFrame.make(0x3, [])),
        ("reserved control opcode B", ClientFrame.make(0xB, [])),
        ("fragmented ping", ClientFrame.make(0x9, [1], fin: false)),
        ("ping over 125 bytes", ClientFrame.make(0x9, [UInt8](repeating: 1, count: 126))),
        ("continuation with nothing to continue", ClientFrame.make(0x0, Array("x".utf8))),
        ("close with a one-byte payload", ClientFrame.make(0x8, [3])),
        ("close with code 1005", ClientFrame.close(1005)),
        ("close with code 999", ClientFrame.close(999)),
        ("close with code 2000", ClientFrame.close(2000)),
    ])
    func framesThatBreakTheProtocolCloseWith1002(_ name: String, _ frame: ByteBuffer) throws {
        let harness = try HandlerHarness()
        try harness.send(frame)
        let written = try harness.written()
        #expect(written.last?.closeCode == 1002, "\(name)")
        #expect(harness.session.texts.isEmpty)
        #expect(!harness.isOpen, "the connection is failed, not left open")
        #expect(harness.session.closes == [1002])
    }

    @Test func aNewMessageInsideAFragmentedOneIs1002() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.text("a", fin: false), ClientFrame.text("b"))
        #expect(try harness.written().last?.closeCode == 1002)
        #expect(harness.session.texts.isEmpty)
    }

    @Test func rsv1OnAControlFrameIs1002EvenWithDeflate() throws {
        let harness = try HandlerHarness(deflate: DeflateParameters(serverMaxWindowBits: 15, serverWindowNamed: false))
        try harness.send(ClientFrame.make(0x9, [], rsv1: true))
        #expect(try harness.written().last?.closeCode == 1002)
    }

    @Test func aReplyWrittenBeforeTheBadFrameGoesOutBeforeTheClose() throws {
        let harness = try HandlerHarness(echo: true)
        var read = ClientFrame.text("first")
        read.writeImmutableBuffer(ClientFrame.make(0x1, Array("x".utf8), rsv2: true))
        try harness.send(read)
        let written = try harness.written()
        #expect(written.map(\.opcode) == [0x1, 0x8])
        #expect(written.first?.text == "first")
        #expect(written.last?.closeCode == 1002)
    }

    @Test func nothingIsReadAfterAFailure() throws {
        let harness = try HandlerHarness()
        var read = ClientFrame.make(0x1, [], rsv3: true)
        read.writeImmutableBuffer(ClientFrame.text("after"))
        try harness.send(read)
        #expect(harness.session.texts.isEmpty)
    }

    // MARK: UTF-8 (1007), as soon as it is seen

    @Test func invalidUTF8FailsAtTheBadByteBeforeTheFrameEnds() throws {
        let harness = try HandlerHarness()
        // A 20-byte text frame of which only the first 6 bytes arrive, the 4th not UTF-8.
        var partial = ClientFrame.header(0x1, length: 20)
        partial.writeBytes([0x61, 0x62, 0x63, 0xC0, 0x80, 0x64])
        try harness.send(partial)
        #expect(try harness.written().last?.closeCode == 1007)
        #expect(!harness.isOpen)
    }

    @Test func invalidUTF8InALaterFragmentFailsBeforeTheMessageEnds() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.text("valid ", fin: false))
        #expect(harness.isOpen)
        try harness.send(ClientFrame.make(0x0, [0xED, 0xA0, 0x80], fin: false))  // a UTF-16 surrogate
        #expect(try harness.written().last?.closeCode == 1007)
    }

    @Test func aMessageEndingInsideACharacterIs1007() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.make(0x1, [0x61, 0xE2, 0x82]))
        #expect(try harness.written().last?.closeCode == 1007)
        #expect(harness.session.texts.isEmpty)
    }

    @Test func aCloseReasonThatIsNotUTF8Is1007() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.make(0x8, [0x03, 0xE8, 0xFF]))
        #expect(try harness.written().last?.closeCode == 1007)
    }

    // MARK: Size (1009), judged by the header

    @Test func aFrameDeclaringMoreThanTheLimitIs1009BeforeItsPayload() throws {
        let harness = try HandlerHarness { $0.maxMessageSize = 1000 }
        try harness.send(ClientFrame.header(0x1, length: 1001))
        #expect(try harness.written().last?.closeCode == 1009)
        #expect(!harness.isOpen)
    }

    @Test func fragmentsAddingUpPastTheLimitAre1009() throws {
        let harness = try HandlerHarness { $0.maxMessageSize = 1000 }
        try harness.send(ClientFrame.make(0x1, [UInt8](repeating: 0x61, count: 600), fin: false))
        #expect(harness.isOpen)
        try harness.send(ClientFrame.header(0x0, length: 401))
        #expect(try harness.written().last?.closeCode == 1009)
    }

    @Test func exactlyTheLimitIsAccepted() throws {
        let harness = try HandlerHarness { $0.maxMessageSize = 1000 }
        try harness.send(ClientFrame.make(0x1, [UInt8](repeating: 0x61, count: 1000)))
        #expect(harness.session.texts.first?.utf8.count == 1000)
    }

    @Test func aLengthWithItsTopBitSetIs1002() throws {
        let harness = try HandlerHarness()
        var header = ByteBuffer(bytes: [0x81, 0xFF])
        header.writeInteger(UInt64(1) << 63)
        header.writeBytes([0, 0, 0, 0])
        try harness.send(header)
        #expect(try harness.written().last?.closeCode == 1002)
    }

    // MARK: permessage-deflate

    @Test func aCompressedMessageIsInflated() throws {
        let harness = try HandlerHarness(deflate: DeflateParameters(serverMaxWindowBits: 15, serverWindowNamed: false))
        let text = String(repeating: #"{"type":"state_update","payload":{"position":12.5}}"#, count: 4)
        try harness.send(ClientFrame.make(0x1, try ClientFrame.deflated(Array(text.utf8)), rsv1: true))
        // No context takeover: the same compressed bytes mean the same message a second time.
        try harness.send(ClientFrame.make(0x1, try ClientFrame.deflated(Array(text.utf8)), rsv1: true))
        #expect(harness.session.texts == [text, text])
    }

    @Test func aCompressionBombIs1009AndNeverInflatedPastTheLimit() throws {
        let harness = try HandlerHarness({ $0.maxMessageSize = 65_536 }, deflate: DeflateParameters(serverMaxWindowBits: 15, serverWindowNamed: false))
        let bomb = try ClientFrame.deflated([UInt8](repeating: 0x61, count: 10_000_000))
        #expect(bomb.count < 20_000, "10 MB of one byte deflates to a few kilobytes")
        try harness.send(ClientFrame.make(0x1, bomb, rsv1: true))
        #expect(try harness.written().last?.closeCode == 1009)
        #expect(harness.session.texts.isEmpty)
    }

    @Test func compressedGarbageIs1007() throws {
        let harness = try HandlerHarness(deflate: DeflateParameters(serverMaxWindowBits: 15, serverWindowNamed: false))
        try harness.send(ClientFrame.make(0x1, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF], rsv1: true))
        #expect(try harness.written().last?.closeCode == 1007)
    }

    @Test func outboundMessagesFromTheThresholdUpAreCompressed() throws {
        let harness = try HandlerHarness({ $0.compressionThreshold = 64 }, deflate: DeflateParameters(serverMaxWindowBits: 15, serverWindowNamed: false))
        let long = String(repeating: "watch party ", count: 20)
        harness.connection.send(OutboundText("short"))
        harness.connection.send(OutboundText(long))
        let written = try harness.written()
        #expect(written.map(\.rsv1) == [false, true])
        #expect(written[0].text == "short")
        #expect(written[1].payload.count < long.utf8.count)
        let inflated = DeflateCodec.current.inflate(ByteBuffer(bytes: written[1].payload), limit: 10_000)
        #expect(inflated == .message(ByteBuffer(string: long)))
    }

    // MARK: Outbound backlog

    @Test func aClientThatCannotTakeMoreIsClosedWith4003AndTheBacklogDropped() throws {
        let harness = try HandlerHarness { $0.outboundQueueCapacity = 3 }
        harness.channel.isWritable = false
        for index in 0..<3 {
            #expect(harness.connection.send(OutboundText("m\(index)")) == .queued)
        }
        #expect(try harness.written().isEmpty, "nothing is written while the socket is full")
        #expect(harness.connection.send(OutboundText("one too many")) == .overflow)
        #expect(harness.connection.send(OutboundText("later")) == .closed)
        harness.channel.embeddedEventLoop.run()  // the overflow is handled after the current work (never under a caller's lock)
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        let written = try harness.written()
        #expect(written.map(\.opcode) == [0x8], "the waiting messages are dropped; only the close goes")
        #expect(written.first?.closeCode == 4003)
        harness.channel.embeddedEventLoop.run()
        #expect(harness.session.closes == [4003])
    }

    @Test func theBacklogIsWrittenInOrderOnceTheSocketDrains() throws {
        let harness = try HandlerHarness()
        harness.channel.isWritable = false
        for index in 0..<5 { harness.connection.send(OutboundText("m\(index)")) }
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try harness.written().map(\.text) == ["m0", "m1", "m2", "m3", "m4"])
        #expect(harness.connection.budget.depth == 0)
    }

    @Test func whatWasPostedGoesOutBeforeACloseRequestedAfterIt() throws {
        let harness = try HandlerHarness()
        harness.connection.post(OutboundText("posted, not yet delivered"))
        harness.connection.close(code: 4007, reason: "Disconnected by operator")
        harness.connection.deliver()
        let written = try harness.written()
        #expect(written.map(\.opcode) == [0x1, 0x8])
        #expect(written.first?.text == "posted, not yet delivered")
    }

    @Test func aMessageMadeLazilyIsEncodedOnceForEveryRecipient() throws {
        let harnesses = try (0..<3).map { _ in try HandlerHarness() }
        let encodings = Mutex(0)
        let message = OutboundText {
            encodings.withLock { $0 += 1 }
            return "for everyone"
        }
        let sent = Connection.send(message, to: harnesses.map(\.connection))
        #expect(sent.queued == 3)
        for harness in harnesses {
            harness.channel.embeddedEventLoop.run()
            #expect(try harness.written().map(\.text) == ["for everyone"])
        }
        #expect(encodings.withLock { $0 } == 1)
    }

    /// Counts the flushes that reach the socket.
    final class FlushCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = ByteBuffer
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    @Test func aBurstFannedOutDuringOneReadIsOneFlushPerMember() throws {
        let reader = try HandlerHarness()
        let member = try HandlerHarness()
        let counter = FlushCounter()
        try member.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        // What the reader's messages fan out to (as a room's would): the other member.
        let forwarding = ForwardingSession(to: member.connection)
        reader.handler.session = forwarding
        var burst = ClientFrame.text("one")
        burst.writeImmutableBuffer(ClientFrame.text("two"))
        burst.writeImmutableBuffer(ClientFrame.text("three"))
        try reader.send(burst)
        #expect(try member.written().map(\.text) == ["one", "two", "three"])
        #expect(counter.flushes == 1, "three messages, one flush once the tick is done")
    }

    /// Writes from several sources in one tick of the loop (hops, timers, other reads) wait
    /// for the tick's end and leave in one flush; nothing waits past that tick.
    @Test func theWritesOfOneTickAreOneFlush() throws {
        let member = try HandlerHarness()
        let counter = FlushCounter()
        try member.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        member.connection.send(OutboundText("first"))
        member.connection.send(OutboundText("second"))
        Connection.send(OutboundText("third"), to: [member.connection])
        #expect(counter.flushes == 0, "written, not yet flushed: the tick goes on")
        member.channel.embeddedEventLoop.run()  // the tick's tasks: the flush is one of them
        #expect(counter.flushes == 1)
        #expect(try member.written().map(\.text) == ["first", "second", "third"])
        member.connection.send(OutboundText("next tick"))
        member.channel.embeddedEventLoop.run()
        #expect(counter.flushes == 2, "a later tick flushes on its own")
        #expect(try member.written().map(\.text) == ["next tick"])
        // A close flushes at once, after what was written before it.
        member.connection.send(OutboundText("last words"))
        member.connection.close(code: 1000, reason: "")
        member.channel.embeddedEventLoop.run()
        #expect(try member.written().map(\.opcode) == [0x1, 0x8])
    }

    @Test func anApplicationCloseGoesAfterWhatWasSentAndWaitsForTheReply() throws {
        let harness = try HandlerHarness()
        harness.connection.send(OutboundText("last words"))
        harness.connection.close(code: 4007, reason: "Disconnected by the server operator")
        #expect(harness.connection.send(OutboundText("too late")) == .closed)
        let written = try harness.written()
        #expect(written.map(\.opcode) == [0x1, 0x8])
        #expect(written.last?.closeCode == 4007)
        #expect(harness.isOpen, "waiting for the client's close")
        try harness.send(ClientFrame.close(4007))
        #expect(!harness.isOpen, "the handshake is complete")
        #expect(harness.session.closes == [4007])
    }

    @Test func anUnansweredCloseIsDroppedAfterTheCloseTimeout() throws {
        let harness = try HandlerHarness { $0.closeTimeout = .seconds(5) }
        harness.connection.close(code: 1001, reason: "Server shutting down")
        harness.advance(.milliseconds(4_900))
        #expect(harness.isOpen)
        harness.advance(.milliseconds(200))
        #expect(!harness.isOpen)
        #expect(harness.session.closes == [1001])
    }

    // MARK: Closing handshake started by the client

    @Test func aClientCloseIsEchoedAndTheSessionHearsTheClientClosedFirst() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.close(1000, reason: "bye"))
        #expect(try harness.written().map(\.closeCode) == [1000])
        #expect(!harness.isOpen)
        #expect(harness.session.closes == [nil])
    }

    @Test func theSessionHearsOfTheEndExactlyOnce() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.close(1000))
        harness.channel.close(promise: nil)  // already closed: nothing more may be reported
        harness.connection.close(code: 1001, reason: "late")
        harness.channel.embeddedEventLoop.run()
        #expect(harness.session.closes.count == 1)
    }

    // MARK: Heartbeat and idleness

    @Test func thePingsCarryTheirSendTimeAndThePongGivesTheRoundTrip() throws {
        let harness = try HandlerHarness {
            $0.firstPingDelay = .seconds(1)
            $0.pingInterval = .seconds(20)
        }
        harness.advance(.milliseconds(999))
        #expect(try harness.written().isEmpty)
        harness.advance(.milliseconds(1))
        let ping = try #require(try harness.written().first)
        #expect(ping.opcode == 0x9 && ping.payload.count == 8)
        harness.advance(.milliseconds(40))
        try harness.send(ClientFrame.make(0xA, ping.payload))
        #expect(harness.session.log.withLock { $0.roundTrips } == [.milliseconds(40)])
        harness.advance(.seconds(19))
        #expect(try harness.written().isEmpty)
        harness.advance(.seconds(1))
        #expect(try harness.written().map(\.opcode) == [0x9], "the next ping, pingInterval later")
    }

    // MARK: Probes (a half-open connection, PROTOCOL.md §13)

    /// What a probe answered, recorded on the loop.
    final class ProbeAnswers: Sendable {
        let values = Mutex<[Bool]>([])
        func record(_ answered: Bool) { values.withLock { $0.append(answered) } }
        var all: [Bool] { values.withLock { $0 } }
    }

    @Test func aSilentPeerFailsItsProbeAtTheDeadlineAndAnAnsweringOnePasses() throws {
        for answers in [false, true] {
            let harness = try HandlerHarness {
                $0.firstPingDelay = .seconds(60)
                $0.pingInterval = .seconds(60)
            }
            let result = ProbeAnswers()
            harness.connection.probe(within: .seconds(2)) { result.record($0) }
            let ping = try #require(try harness.written().first, "the probe pings at once")
            #expect(ping.opcode == 0x9 && ping.payload.count == 8)
            harness.advance(.milliseconds(300))
            if answers { try harness.send(ClientFrame.make(0xA, ping.payload)) }
            harness.advance(.milliseconds(1_699))
            #expect(result.all.isEmpty, "no verdict before the 2 s are up")
            harness.advance(.milliseconds(1))
            #expect(result.all == [answers], answers ? "its pong arrived: alive" : "nothing arrived: half-open")
            #expect(harness.isOpen, "a probe closes nothing itself")
        }
    }

    @Test func anyFrameCountsAsAnAnswerAndAClosedConnectionFailsAtOnce() throws {
        let harness = try HandlerHarness()
        let result = ProbeAnswers()
        harness.connection.probe(within: .seconds(2)) { result.record($0) }
        harness.advance(.milliseconds(500))
        try harness.send(ClientFrame.text(#"{"type":"ping","ts":1}"#))  // not the pong, but something
        harness.advance(.seconds(2))
        #expect(result.all == [true])

        try harness.send(ClientFrame.close(1000))
        harness.advance(.seconds(1))
        harness.connection.probe(within: .seconds(2)) { result.record($0) }
        harness.channel.embeddedEventLoop.run()
        #expect(result.all == [true, false], "a connection that is not open has not answered")
    }

    @Test func aClientThatPingsWithoutReadingNeverQueuesMoreThanOnePong() throws {
        let harness = try HandlerHarness()
        harness.channel.isWritable = false
        for index in 0..<1_000 { try harness.send(ClientFrame.make(0x9, [UInt8(index % 256), UInt8(index / 256)])) }
        #expect(try harness.written().isEmpty)
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        let written = try harness.written()
        #expect(written.map(\.opcode) == [0xA], "one pong, for the latest ping")
        #expect(written.first?.payload == [UInt8(999 % 256), UInt8(999 / 256)])
    }

    @Test func aPongThatAnswersNoPingOfOursIsNotARoundTrip() throws {
        let harness = try HandlerHarness { $0.firstPingDelay = .seconds(1) }
        var forged = ByteBuffer()
        forged.writeInteger(UInt64(1))
        try harness.send(ClientFrame.make(0xA, Array(forged.readableBytesView)))
        harness.advance(.seconds(1))
        let ping = try #require(try harness.written().first)
        try harness.send(ClientFrame.make(0xA, ping.payload), ClientFrame.make(0xA, ping.payload))
        #expect(harness.session.log.withLock { $0.roundTrips.count } == 1, "only our ping's pong, once")
    }

    @Test func aClientCloseWhoseEchoCannotBeWrittenIsDroppedAfterTheCloseTimeout() throws {
        let harness = try HandlerHarness { $0.closeTimeout = .seconds(5) }
        harness.channel.isWritable = false
        try harness.send(ClientFrame.close(1000))
        #expect(harness.connection.send(OutboundText("after the close")) == .closed)
        harness.advance(.seconds(5))
        #expect(!harness.isOpen)
    }

    @Test func aConnectionGoneBeforeItsSessionWasSetStillReportsItsEnd() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        let handler = WebSocketConnectionHandler(
            configuration: TransportConfiguration(), deflate: nil, traffic: TrafficCounters(), budget: OutboundBudget(capacity: 10))
        try channel.pipeline.syncOperations.addHandler(handler)
        channel.close(promise: nil)  // e.g. the greeting's write failed inside accept
        let session = RecordingSession()
        handler.session = session
        channel.embeddedEventLoop.run()
        #expect(session.closes == [nil])
    }

    @Test func nothingReadForTheIdleTimeoutClosesWith4000() throws {
        let harness = try HandlerHarness {
            $0.idleTimeout = .seconds(60)
            $0.pingInterval = .seconds(20)
        }
        harness.advance(.seconds(30))
        try harness.send(ClientFrame.make(0xA, []))  // any frame counts as life
        harness.advance(.seconds(59))
        #expect(try harness.written().allSatisfy { $0.opcode == 0x9 }, "only pings so far")
        harness.advance(.seconds(1))
        #expect(try harness.written().last?.closeCode == 4000)
    }

    @Test func aClosedConnectionLeavesNoTimerBehind() throws {
        let harness = try HandlerHarness()
        try harness.send(ClientFrame.close(1000))
        #expect(try harness.written().map(\.opcode) == [0x8])
        harness.advance(.seconds(3600))
        #expect(try harness.written().isEmpty, "no ping after the end")
    }
}

/// Sends every text it gets to another connection.
final class ForwardingSession: ConnectionSession {
    let target: Connection
    init(to target: Connection) { self.target = target }
    func received(text: String, readAt: ReadStamp) { target.send(OutboundText(text)) }
    func received(binary: [UInt8], readAt: ReadStamp) {}
    func measured(roundTrip: Duration) {}
    func closed(code: UInt16?) {}
}
