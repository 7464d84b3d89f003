import ServiceLifecycle

/// Runs the shared store's writer and renewer for as long as the server runs, and a last
/// write when it stops (after the drain has handed the rooms over).
struct StoreService: Service {
    let store: PostgresPartyStore

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await store.run()
        }
    }
}
