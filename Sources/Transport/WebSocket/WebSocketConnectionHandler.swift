import DequeModule
import NIOCore

/// One upgraded WebSocket connection, whole, on its event loop: RFC 6455 framing read as it
/// arrives, permessage-deflate (RFC 7692) with the thread's shared zlib state, the session
/// fed synchronously, writes with a bounded backlog, heartbeat, idleness and the closing
/// handshake — no task, no lock, one scheduled timer at a time.
///
/// Guarantees:
/// - Every client frame is judged by its header before its payload is read: unmasked frames,
///   reserved bits (RSV1 only on the first frame of a message when deflate is negotiated),
///   reserved opcodes, fragmented or over-long control frames and out-of-order continuations
///   fail the connection with 1002; a message that would pass `maxMessageSize` fails with
///   1009 as soon as its frame header says so, and a compressed one as soon as inflation
///   passes the limit (never more than the limit is inflated).
/// - Text is validated as it arrives: invalid UTF-8 fails with 1007 at the first bad byte.
/// - Replies already written (an echo, an error) go out before the close that fails a
///   connection; after a failure nothing more is read.
/// - The session hears of messages in order, and of the end exactly once, last, never from
///   inside a send (``ConnectionSession/closed(code:)``).
final class WebSocketConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What waits for the socket to become writable.
    private enum Outbound {
        /// An application message (counted in the budget until written).
        case message(ByteBuffer)
        /// A ping or pong.
        case control(ByteBuffer)
        case close(code: UInt16, reason: String, then: AfterClose)
    }

    /// What follows our close frame once it is out.
    private enum AfterClose {
        /// Wait for the client's close (the closing handshake), up to the close timeout.
        case awaitReply
        /// Shut our side; the client's FIN (or the close timeout) ends it (a failed connection).
        case shutOutput
        /// Drop the socket: a client that does not read will not answer either.
        case drop
    }

    private enum Phase: Equatable {
        case open
        /// We sent (or queued) a close with this code and wait for the client's.
        case closing(code: UInt16)
        /// The connection broke the protocol: close sent, input ignored, output shut.
        case failing(code: UInt16)
        /// The client sent a close; ours is its echo, then the socket closes.
        case peerClosed
    }

    private struct Message {
        var opcode: UInt8
        var compressed: Bool
        var parts: ByteBuffer?
        var size: Int = 0
        var utf8 = UTF8Stream()
    }

    private let configuration: TransportConfiguration
    private let deflate: DeflateParameters?
    private let traffic: TrafficCounters
    let budget: OutboundBudget
    /// The application's side; set once, right after the handler is added. Should the
    /// connection already be gone by then, the session still hears of it.
    var session: (any ConnectionSession)? {
        didSet { if inactive { reportClosed() } }
    }
    private var inactive = false

    private var context: ChannelHandlerContext?
    private var phase = Phase.open
    /// The code the server closed with (reported to the session); nil when the client closed first.
    private var sentCode: UInt16?
    private var reported = false

    // Inbound
    private var reader = FrameReader()
    private var carry: ByteBuffer?
    private var current: FrameReader.Header?
    private var message: Message?
    private var control: ByteBuffer?
    private var lastRead: NIODeadline
    private var readStamp = ReadStamp(uptimeNanoseconds: 0)
    /// The loop's lateness, for the read stamps; nil: every read counts as unwaited (tests).
    private let lateness: LoopLateness?
    private var reading = false

    // Outbound
    private var backlog = Deque<Outbound>()
    /// The answer to the latest ping, when it could not be written at once (at most one).
    private var waitingPong: ByteBuffer?
    /// The payload of our latest ping: only its pong is a round trip (a client cannot make up RTTs).
    private var outstandingPing: UInt64?
    private var needsFlush = false
    /// Waiting for the loop's flush at the end of its tick (``FlushBatch``).
    private var flushPending = false

    // Timers
    private var nextPing: NIODeadline
    private var heartbeat: Scheduled<Void>?
    private var closeDeadline: Scheduled<Void>?

    init(configuration: TransportConfiguration, deflate: DeflateParameters?, traffic: TrafficCounters, budget: OutboundBudget, lateness: LoopLateness? = nil) {
        self.configuration = configuration
        self.lateness = lateness
        self.deflate = deflate
        self.traffic = traffic
        self.budget = budget
        self.lastRead = .uptimeNanoseconds(0)
        self.nextPing = .uptimeNanoseconds(0)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The loop's clock throughout (virtual under test), the real one only for read stamps.
        lastRead = context.eventLoop.now
        nextPing = lastRead + TimeAmount(configuration.firstPingDelay)
        scheduleHeartbeat()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        dropBacklog()
        waitingPong = nil
        budget.release(budget.takePosted().count)
        _ = budget.stopAccepting()
        inactive = true
        reportClosed()
        context.fireChannelInactive()
    }

    /// Tells the session the connection is gone, once, and never from inside the call that
    /// noticed the end (a write that fails under the application's lock must not call back into it).
    private func reportClosed() {
        guard !reported, let session, let loop = context?.eventLoop else { return }
        reported = true
        self.session = nil
        let code = sentCode
        loop.assumeIsolated().execute { session.closed(code: code) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        traffic.add(received: buffer.readableBytes)
        lastRead = context.eventLoop.now
        if case .failing = phase { return }
        if case .peerClosed = phase { return }
        if var carried = carry {
            carry = nil
            carried.writeBuffer(&buffer)
            buffer = carried
        }
        let readNow = NIODeadline.now()
        let waited = lateness?.mayHaveWaited(now: readNow).nanoseconds ?? 0
        readStamp = ReadStamp(uptimeNanoseconds: readNow.uptimeNanoseconds, mayHaveWaitedNanoseconds: UInt64(max(0, waited)))
        reading = true
        read(&buffer)
        reading = false
        if buffer.readableBytes > 0, phase != .peerClosed {
            // Only ever the start of a header (payload pieces are consumed as they come).
            var rest = context.channel.allocator.buffer(capacity: buffer.readableBytes)
            rest.writeBuffer(&buffer)
            carry = rest
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushAtEndOfTick()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        drainBacklog()
        flushIfNeeded()
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client's side is shut: it can no longer answer, whatever was under way.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a failed write: the socket is gone (the client vanished).
        context.close(promise: nil)
    }

    // MARK: Reading frames

    private func read(_ buffer: inout ByteBuffer) {
        while true {
            let event: FrameReader.Event?
            do {
                event = try reader.next(from: &buffer)
            } catch {
                return fail(.protocolError)
            }
            guard let event else { return }
            let failure: TransportCloseCause?
            switch event {
            case .header(let header): failure = begin(header)
            case .payload(let piece): failure = add(piece)
            case .end: failure = endFrame()
            }
            if let failure { return fail(failure) }
            if case .failing = phase { return }
            if phase == .peerClosed { return }
        }
    }

    /// Judges a frame by its header.
    private func begin(_ header: FrameReader.Header) -> TransportCloseCause? {
        guard header.maskKey != nil, !header.rsv2, !header.rsv3 else { return .protocolError }
        current = header
        switch header.opcode {
        case 0x0:
            guard var message, !header.rsv1 else { return .protocolError }
            guard let failure = admit(length: header.length, to: &message) else {
                self.message = message
                return nil
            }
            return failure
        case FrameWriter.text, FrameWriter.binary:
            guard message == nil else { return .protocolError }
            guard !header.rsv1 || deflate != nil else { return .protocolError }
            var started = Message(opcode: header.opcode, compressed: header.rsv1)
            if let failure = admit(length: header.length, to: &started) { return failure }
            message = started
            return nil
        case FrameWriter.close, FrameWriter.ping, FrameWriter.pong:
            guard header.fin, header.length <= 125, !header.rsv1 else { return .protocolError }
            control = ByteBuffer()
            return nil
        default:
            return .protocolError  // reserved opcodes 3–7 and B–F
        }
    }

    /// Counts a data frame's length against the message limit (compressed payloads get a
    /// little slack: the limit applies to what they inflate to).
    private func admit(length: UInt64, to message: inout Message) -> TransportCloseCause? {
        let limit = configuration.maxMessageSize + (message.compressed ? 1024 : 0)
        guard length <= UInt64(limit - message.size) else { return .messageTooBig }
        message.size += Int(length)
        return nil
    }

    private func add(_ piece: ByteBuffer) -> TransportCloseCause? {
        guard let header = current else { return .protocolError }
        if header.isControl {
            var piece = piece
            control?.writeBuffer(&piece)
            return nil
        }
        // Taken out while it grows, so its buffer is never shared (a shared one would be copied
        // whole for every piece: quadratic in a message of many small fragments).
        guard var message = self.message.take() else { return .protocolError }
        if message.opcode == FrameWriter.text && !message.compressed {
            let valid = piece.withUnsafeReadableBytes { message.utf8.feed($0) }
            guard valid else { return .invalidPayload }
        }
        if phase == .open {
            if message.parts == nil {
                // A buffer of its own (not a slice of the read buffer), sized for this frame.
                let limit = configuration.maxMessageSize + (message.compressed ? 1024 : 0)
                message.parts = ByteBuffer()
                message.parts!.reserveCapacity(min(Int(header.length), limit))
            }
            var piece = piece
            message.parts!.writeBuffer(&piece)
        }
        self.message = message
        return nil
    }

    private func endFrame() -> TransportCloseCause? {
        guard let header = current else { return .protocolError }
        current = nil
        if header.isControl {
            let payload = control ?? ByteBuffer()
            control = nil
            return handleControl(opcode: header.opcode, payload: payload)
        }
        guard header.fin, let message else { return nil }
        self.message = nil
        return deliver(message)
    }

    private func deliver(_ message: Message) -> TransportCloseCause? {
        var payload = message.parts ?? ByteBuffer()
        if message.compressed {
            switch DeflateCodec.current.inflate(payload, limit: configuration.maxMessageSize) {
            case .message(let inflated): payload = inflated
            case .tooBig: return .messageTooBig
            case .corrupt: return .invalidPayload
            }
            if message.opcode == FrameWriter.text {
                var utf8 = UTF8Stream()
                guard payload.withUnsafeReadableBytes({ utf8.feed($0) }), utf8.isComplete else { return .invalidPayload }
            }
        } else if message.opcode == FrameWriter.text && !message.utf8.isComplete {
            return .invalidPayload
        }
        guard phase == .open, let session else { return nil }  // closing: read, but no longer handled
        if message.opcode == FrameWriter.text {
            session.received(text: String(buffer: payload), readAt: readStamp)
        } else {
            session.received(binary: Array(payload.readableBytesView), readAt: readStamp)
        }
        return nil
    }

    private func handleControl(opcode: UInt8, payload: ByteBuffer) -> TransportCloseCause? {
        switch opcode {
        case FrameWriter.ping:
            guard phase == .open, let context else { break }
            let pong = FrameWriter.frame(opcode: FrameWriter.pong, payload: payload)
            if backlog.isEmpty && context.channel.isWritable {
                write(.control(pong), context: context)
            } else {
                // Only the latest ping needs an answer (RFC 6455 §5.5.3): a client that pings
                // without reading can never queue more than one pong.
                waitingPong = pong
            }
        case FrameWriter.pong:
            var payload = payload
            if payload.readableBytes == 8, let sent = payload.readInteger(as: UInt64.self), sent == outstandingPing {
                outstandingPing = nil
                let now = (context?.eventLoop.now ?? .now()).uptimeNanoseconds
                if now >= sent, now - sent < 3_600_000_000_000 { session?.measured(roundTrip: .nanoseconds(Int64(now - sent))) }
            }
        default:
            return receivedClose(payload)
        }
        return nil
    }

    /// The client's close: checked (RFC 6455 §7.4.1, §5.5.1), answered, then the socket closes.
    private func receivedClose(_ payload: ByteBuffer) -> TransportCloseCause? {
        var payload = payload
        var code: UInt16?
        if payload.readableBytes > 0 {
            guard let value = payload.readInteger(as: UInt16.self) else { return .protocolError }
            guard Self.isValidCloseCode(value) else { return .protocolError }
            var utf8 = UTF8Stream()
            guard payload.withUnsafeReadableBytes({ utf8.feed($0) }), utf8.isComplete else { return .invalidPayload }
            code = value
        }
        switch phase {
        case .open:
            phase = .peerClosed
            _ = budget.stopAccepting()
            stopTimers()
            armCloseDeadline()  // the echo may never get out (a client with a zero window)
            dropBacklog()  // the client is leaving: what it has not been sent is moot
            budget.release(budget.takePosted().count)
            let echo = FrameWriter.close(code: code ?? 1000, reason: "")
            guard let context else { return nil }
            traffic.add(sent: echo.readableBytes)
            context.writeAndFlush(wrapOutboundOut(echo)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        case .closing:
            context?.close(promise: nil)  // our close, answered: the handshake is complete
        case .failing, .peerClosed:
            break
        }
        return nil
    }

    /// Codes a peer may send (§7.4): 1000–1003, 1007–1014, 3000–4999.
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    // MARK: Writing

    /// Writes, in order, what was posted to the connection (each message for the socket now,
    /// or after what waits before it); with `flush`, flushed at the end of the loop's tick.
    func takePosted(flush: Bool) {
        let messages = budget.takePosted()
        guard !messages.isEmpty else { return }
        guard phase == .open else {
            budget.release(messages.count)
            return
        }
        for message in messages {
            push(.message(message.frame(for: deflate, threshold: configuration.compressionThreshold)))
        }
        if flush { flushAtEndOfTick() }
    }

    func enqueue(binary payload: ByteBuffer) {
        takePosted(flush: false)
        guard phase == .open else {
            budget.release()
            return
        }
        var frame = FrameWriter.frame(opcode: FrameWriter.binary, payload: payload)
        if let deflate, payload.readableBytes >= configuration.compressionThreshold, let deflated = DeflateCodec.current.deflate(payload, windowBits: deflate.serverMaxWindowBits) {
            frame = FrameWriter.frame(opcode: FrameWriter.binary, payload: deflated, compressed: true)
        }
        push(.message(frame))
        if !reading { flushIfNeeded() }
    }

    /// Flushes with the loop's other connections once its tick's reads and hops are done
    /// (``FlushBatch``). A flush before then (a close, a ping) takes these bytes along.
    func flushAtEndOfTick() {
        guard needsFlush, !flushPending, let context else { return }
        flushPending = true
        FlushBatch.current.add(self, on: context.eventLoop)
    }

    func flushIfNeeded() {
        flushPending = false
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    /// The application closes: after what it sent before, a close with `code`.
    func closeRequested(code: UInt16, reason: String) {
        takePosted(flush: false)  // what was posted before the close goes before it
        guard phase == .open else { return }
        phase = .closing(code: code)
        sentCode = code
        push(.close(code: code, reason: reason, then: .awaitReply))
        flushIfNeeded()
        armCloseDeadline()
    }

    /// Asks whether the peer is still there: a ping now (its pong is a round trip like a
    /// heartbeat's), then, `within` later, `answered` says whether anything at all was read
    /// from the socket since. A connection that is not open answers `false` at once.
    func probe(within: TimeAmount, answered: @escaping @Sendable (Bool) -> Void) {
        guard phase == .open, let context else {
            answered(false)
            return
        }
        let sentAt = context.eventLoop.now
        outstandingPing = sentAt.uptimeNanoseconds
        push(.control(FrameWriter.frame(opcode: FrameWriter.ping, payload: ByteBuffer(integer: sentAt.uptimeNanoseconds))))
        flushIfNeeded()
        context.eventLoop.assumeIsolated().scheduleTask(in: within) { [weak self] in
            guard let self else { return answered(false) }
            answered(self.phase == .open && self.lastRead > sentAt)
        }
    }

    /// Too many messages waited: what has not reached the socket is dropped and the client is
    /// told why (4003) behind what the socket already holds.
    func overflowed() {
        guard phase == .open else { return }
        budget.release(budget.takePosted().count)
        dropBacklog()
        let cause = TransportCloseCause.slowClient
        phase = .closing(code: cause.code)
        sentCode = cause.code
        push(.close(code: cause.code, reason: cause.text, then: .drop))
        flushIfNeeded()
        armCloseDeadline()
    }

    /// Fails the connection (RFC 6455 §7.1.7): close with the cause's code after what was
    /// already written, stop reading, shut output once the close is out.
    private func fail(_ cause: TransportCloseCause) {
        switch phase {
        case .open:
            phase = .failing(code: cause.code)
            sentCode = cause.code
            stopHeartbeat()
            push(.close(code: cause.code, reason: cause.text, then: .shutOutput))
            flushIfNeeded()
            armCloseDeadline()
        case .closing:
            // Our close is out already; the client's stream is broken: nothing more to wait for.
            phase = .failing(code: sentCode ?? cause.code)
            context?.close(promise: nil)
        case .failing, .peerClosed:
            break
        }
    }

    private func push(_ item: Outbound) {
        guard let context else { return }
        if backlog.isEmpty && context.channel.isWritable {
            write(item, context: context)
        } else {
            backlog.append(item)
        }
    }

    /// Forgets what waits for the socket (its messages leave the budget).
    private func dropBacklog() {
        budget.release(backlog.reduce(0) { count, item in if case .message = item { count + 1 } else { count } })
        backlog.removeAll()
    }

    private func drainBacklog() {
        guard let context else { return }
        if let pong = waitingPong, context.channel.isWritable {
            waitingPong = nil
            write(.control(pong), context: context)
        }
        while context.channel.isWritable, let item = backlog.popFirst() {
            write(item, context: context)
        }
    }

    private func write(_ item: Outbound, context: ChannelHandlerContext) {
        needsFlush = true
        switch item {
        case .message(let frame):
            budget.release()
            traffic.add(sent: frame.readableBytes)
            context.write(wrapOutboundOut(frame), promise: nil)
        case .control(let frame):
            traffic.add(sent: frame.readableBytes)
            context.write(wrapOutboundOut(frame), promise: nil)
        case .close(let code, let reason, let then):
            let frame = FrameWriter.close(code: code, reason: reason)
            traffic.add(sent: frame.readableBytes)
            guard then != .awaitReply else {
                context.write(wrapOutboundOut(frame), promise: nil)
                return
            }
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { _ in
                context.close(mode: then == .shutOutput ? .output : .all, promise: nil)
            }
            context.write(wrapOutboundOut(frame), promise: promise)
        }
    }

    // MARK: Timers

    /// One timer: the next ping or the idle deadline, whichever comes first.
    private func scheduleHeartbeat() {
        guard let context, phase == .open else { return }
        let idleAt = lastRead + TimeAmount(configuration.idleTimeout)
        let at = min(nextPing, idleAt)
        heartbeat = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) { [weak self] in self?.beat() }
    }

    private func beat() {
        heartbeat = nil
        guard phase == .open, let context else { return }
        let now = context.eventLoop.now
        if now - lastRead >= TimeAmount(configuration.idleTimeout) {
            let idle = TransportCloseCause.idle
            if budget.stopAccepting() { closeRequested(code: idle.code, reason: idle.text) }
            return
        }
        if now >= nextPing {
            nextPing = now + TimeAmount(configuration.pingInterval)
            // A client that has not taken what waits has no use for a ping (and must not grow the backlog).
            if backlog.isEmpty && context.channel.isWritable {
                outstandingPing = now.uptimeNanoseconds
                push(.control(FrameWriter.frame(opcode: FrameWriter.ping, payload: ByteBuffer(integer: now.uptimeNanoseconds))))
                flushIfNeeded()
            }
        }
        scheduleHeartbeat()
    }

    private func armCloseDeadline() {
        stopHeartbeat()
        guard let context, closeDeadline == nil else { return }
        closeDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.closeTimeout)) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }

    private func stopHeartbeat() {
        heartbeat?.cancel()
        heartbeat = nil
    }

    private func stopTimers() {
        stopHeartbeat()
        closeDeadline?.cancel()
        closeDeadline = nil
    }
}
