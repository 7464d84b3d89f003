/// A dictionary that remembers which keys were written since ``takeTouched()``: every
/// insertion, update (through the subscript, in place or not) and removal records its key.
///
/// It is how the core reports, with each ``Outcome``, which rooms and sessions an input
/// touched (``StateChanges``), so a store can persist exactly those. A key may be recorded
/// although its value ended up equal (written back unchanged); a key whose kept part changed
/// is never missed, because a value can only change through this type's mutating members.
/// The one exception is ``updateUnrecorded(_:_:)``, for the parts of a value no store keeps
/// (a session's ``ConnectionMeters``, which change with nearly every message).
public struct TrackedTable<Key: Hashable & Sendable, Value: Sendable>: Sendable, Sequence {
    public private(set) var storage: [Key: Value] = [:]
    private var touched: Set<Key> = []

    public init() {}

    public subscript(key: Key) -> Value? {
        get { storage[key] }
        _modify {
            touched.insert(key)
            yield &storage[key]
        }
        set {
            touched.insert(key)
            storage[key] = newValue
        }
    }

    /// Changes `key`'s value in place without recording it: only for the parts of a value that
    /// no store keeps. Does nothing if there is no such key.
    mutating func updateUnrecorded(_ key: Key, _ body: (inout Value) -> Void) {
        guard storage[key] != nil else { return }
        body(&storage[key]!)
    }

    /// Puts `value` under `key`, or removes it with `nil`, without recording it: only for moving
    /// a value between tables that hold the same state (``Party/detachRoom(_:)``), never for a change.
    mutating func setUnrecorded(_ key: Key, _ value: Value?) {
        storage[key] = value
    }

    @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? {
        touched.insert(key)
        return storage.removeValue(forKey: key)
    }

    public var keys: Dictionary<Key, Value>.Keys { storage.keys }
    public var values: Dictionary<Key, Value>.Values { storage.values }
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    public func makeIterator() -> Dictionary<Key, Value>.Iterator { storage.makeIterator() }

    /// The keys written since the last call, and forgets them.
    mutating func takeTouched() -> Set<Key> {
        defer { touched = [] }
        return touched
    }
}

/// The rooms and sessions one input touched: what a store must write (or delete: a key
/// whose entry is gone) after it.
public struct StateChanges: Sendable, Equatable {
    public var rooms: Set<RoomID> = []
    public var sessions: Set<ClientID> = []

    public init(rooms: Set<RoomID> = [], sessions: Set<ClientID> = []) {
        self.rooms = rooms
        self.sessions = sessions
    }

    public var isEmpty: Bool { rooms.isEmpty && sessions.isEmpty }
}
