/// A parsed JSON value, as received from a client.
///
/// Client payloads are schemaless until a handler interprets them, and the protocol needs to
/// tell an integer from a fraction (`ts` must be a JSON integer) and to echo `ping` payloads
/// verbatim, so incoming JSON is parsed into this tree first (by ``StrictJSONParser``: there is
/// deliberately no `Decodable` conformance, whose nested `try?` attempts cost time quadratic
/// in the depth).
public enum JSONValue: Sendable, Equatable, Encodable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The value as a number, integer or not.
    public var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    public var string: String? {
        if case .string(let value) = self { value } else { nil }
    }

    public var object: [String: JSONValue]? {
        if case .object(let value) = self { value } else { nil }
    }

    public var array: [JSONValue]? {
        if case .array(let value) = self { value } else { nil }
    }

    /// Member lookup on an object; `nil` for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? {
        object?[key]
    }
}
