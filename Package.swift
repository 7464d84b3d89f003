// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "owp-server",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "owp-server", targets: ["App"]),
        .executable(name: "owp-bench", targets: ["Bench"]),
        .executable(name: "owp-syncsim", targets: ["SyncSim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // The pure watch-party core: protocol codec, rooms, barrier, filter. No NIO, no clock.
        .target(
            name: "WatchPartyCore",
            swiftSettings: strict
        ),
        // Bytes in and out: HTTP, the WebSocket at the NIO level (RFC 6455/7692), limits,
        // outbound backlogs. Knows nothing about rooms.
        .target(
            name: "Transport",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: strict
        ),
        // Metrics registry, health/readiness state, log set-up.
        .target(
            name: "Observability",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Composition root: configuration, the session service bridging transport and core, main.
        .executableTarget(
            name: "App",
            dependencies: [
                "WatchPartyCore",
                "Transport",
                "Observability",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict,
            plugins: ["BuildInfoPlugin"]
        ),
        // Writes the build's git revision into the server (BuildInfo.swift).
        .plugin(name: "BuildInfoPlugin", capability: .buildTool(), dependencies: ["BuildInfoGenerator"]),
        .executableTarget(name: "BuildInfoGenerator", swiftSettings: strict),
        // The load generator (owp-bench): real sockets, the real protocol, HDR latency histograms.
        .executableTarget(
            name: "Bench",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: strict
        ),
        // The sync simulator: virtual clients with their own clocks and links against the real core.
        .target(
            name: "SyncSimulator",
            dependencies: ["WatchPartyCore"],
            swiftSettings: strict
        ),
        // owp-syncsim: the published sync table (docs/sync.md).
        .executableTarget(
            name: "SyncSim",
            dependencies: ["SyncSimulator", "WatchPartyCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SyncSimulatorTests",
            dependencies: ["SyncSimulator", "WatchPartyCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WatchPartyCoreTests",
            dependencies: ["WatchPartyCore", "SyncSimulator"],
            swiftSettings: strict
        ),
        // The connection handler on EmbeddedChannel (frames in, frames out, virtual time) and the
        // transport's pure parts: framing, UTF-8, deflate negotiation, the opening handshake.
        .testTarget(
            name: "TransportTests",
            dependencies: [
                "Transport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AppTests",
            dependencies: [
                "App",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                "WatchPartyCore",
                "Transport",
                "Observability",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSCompression", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Smoke test of owp-bench's scenarios against an in-process server.
        .testTarget(
            name: "BenchTests",
            dependencies: [
                "Bench",
                "App",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)

var strict: [SwiftSetting] { [.enableUpcomingFeature("ExistentialAny")] }
