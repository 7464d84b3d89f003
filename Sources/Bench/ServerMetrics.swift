import NIOCore
import NIOHTTP1
import NIOPosix

/// One scrape of the server's `/metrics` (Prometheus text format), keyed by the series as
/// written, e.g. `owp_scheduling_lateness_seconds_bucket{le="0.002"}`.
struct MetricsSample: Sendable {
    var series: [String: Double] = [:]

    init(text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            series[String(line[..<space])] = value
        }
    }

    subscript(_ name: String) -> Double? { series[name] }

    /// Resident memory: `process_resident_memory_bytes`, or the `owp_`-prefixed name servers
    /// before the standard process metrics exported (so one run can compare both builds).
    var residentBytes: Double? { series["process_resident_memory_bytes"] ?? series["owp_process_resident_memory_bytes"] }
    var openFDs: Double? { series["process_open_fds"] ?? series["owp_process_open_fds"] }
    /// The deepest outbound queue: the per-scrape peak, or the since-start high water of older servers.
    var queuePeak: Double? { series["owp_outbound_queue_peak_depth"] ?? series["owp_outbound_queue_high_water"] }

    /// Cumulative bucket counts of histogram `name` (without labels other than `le`), by upper bound.
    func buckets(_ name: String) -> [(le: Double, count: Double)] {
        let prefix = "\(name)_bucket{le=\""
        var result: [(le: Double, count: Double)] = []
        for (key, value) in series where key.hasPrefix(prefix) {
            let bound = key.dropFirst(prefix.count).prefix { $0 != "\"" }
            let le = bound == "+Inf" ? Double.infinity : Double(bound)
            if let le { result.append((le, value)) }
        }
        return result.sorted { $0.le < $1.le }
    }

    /// The sum of every series of a labelled counter family (e.g. all `code` values).
    func total(_ name: String) -> Double {
        series.filter { $0.key == name || $0.key.hasPrefix("\(name){") }.values.reduce(0, +)
    }
}

/// What a histogram recorded between two scrapes.
struct BucketDelta: Sendable {
    var buckets: [(le: Double, count: Double)]

    init(from before: MetricsSample?, to after: MetricsSample, name: String) {
        let earlier = Dictionary((before?.buckets(name) ?? []).map { ($0.le, $0.count) }, uniquingKeysWith: { a, _ in a })
        buckets = after.buckets(name).map { ($0.le, $0.count - (earlier[$0.le] ?? 0)) }
    }

    var count: Double { buckets.last?.count ?? 0 }

    /// Fraction of observations at or below `bound`.
    func fraction(atOrBelow bound: Double) -> Double? {
        guard count > 0, let bucket = buckets.first(where: { $0.le >= bound - 1e-12 }) else { return nil }
        return bucket.count / count
    }

    /// The smallest bucket bound that holds quantile `q` (an upper bound for the true value).
    func upperBound(quantile q: Double) -> Double? {
        guard count > 0 else { return nil }
        return buckets.first { $0.count >= q * count }?.le
    }

    /// Linear interpolation inside the bucket (what Prometheus' histogram_quantile does).
    func estimate(quantile q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = q * count
        var lowerBound = 0.0
        var lowerCount = 0.0
        for bucket in buckets {
            if bucket.count >= rank {
                if bucket.le.isInfinite { return lowerBound }
                let inBucket = bucket.count - lowerCount
                return inBucket > 0 ? lowerBound + (bucket.le - lowerBound) * (rank - lowerCount) / inBucket : bucket.le
            }
            lowerBound = bucket.le
            lowerCount = bucket.count
        }
        return nil
    }
}

/// A minimal HTTP/1.1 GET over NIO (the generator talks to nothing but the server under test).
enum HTTPGet {
    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<String>
        var status = 0
        var body = ByteBuffer()

        init(promise: EventLoopPromise<String>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = Int(head.status.code)
            case .body(var part): body.writeBuffer(&part)
            case .end:
                if status == 200 {
                    promise.succeed(String(buffer: body))
                } else {
                    promise.fail(BenchError.http("status \(status)"))
                }
                context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(BenchError.http("connection closed before the answer"))
        }
    }

    static func get(_ url: ServerURL, path: String, group: any EventLoopGroup) async throws -> String {
        let loop = group.next()
        let promise = loop.makePromise(of: String.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
                    }
                }
                .connect(to: url.address).get()
        } catch {
            promise.fail(error)  // nothing will answer (a server not up yet): the promise must not leak
            throw error
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(url.host):\(url.port)")
        headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timeout = loop.scheduleTask(in: .seconds(10)) { promise.fail(BenchError.timeout("GET \(path)")) }
        defer { timeout.cancel() }
        return try await promise.futureResult.get()
    }

    static func metrics(_ url: ServerURL, group: any EventLoopGroup) async throws -> MetricsSample {
        MetricsSample(text: try await get(url, path: url.metricsPath, group: group))
    }
}
