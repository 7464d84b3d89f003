import ServiceLifecycle

/// Runs the shared store's writer and renewer, and the bus between replicas, for as long as
/// the server runs; a last write when it stops (after the drain has handed the rooms over and
/// left the bus).
struct StoreService: Service {
    let store: PostgresPartyStore
    let bus: ReplicaBus

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await store.run() }
                group.addTask { await bus.run() }
            }
        }
    }
}
