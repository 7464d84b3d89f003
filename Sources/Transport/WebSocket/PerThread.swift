import NIOPosix

/// One value per thread, made on the thread's first use: state that an event loop (or any
/// thread) keeps for itself and shares with nobody. `Value` is `Sendable` only so that a
/// `PerThread` can be a static; every value stays on the thread that made it.
final class PerThread<Value: AnyObject & Sendable>: Sendable {
    private let variable = ThreadSpecificVariable<Value>()
    private let make: @Sendable () -> Value

    init(_ make: @escaping @Sendable () -> Value) {
        self.make = make
    }

    /// This thread's value.
    var current: Value {
        if let value = variable.currentValue { return value }
        let value = make()
        variable.currentValue = value
        return value
    }
}
