import Foundation
import Hummingbird
import Logging

/// The operator's API on its own listener (`ADMIN_PORT`; never the public port): list rooms,
/// show one, close one, disconnect a client. Every request needs `Authorization: Bearer
/// <ADMIN_TOKEN>`; answers are JSON (docs/operations.md § Admin API).
enum AdminAPI {
    static func router(gateway: SessionGateway, token: Secret, logger: Logger) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: BearerTokenMiddleware(token: token, logger: logger))
        router.get("/admin/rooms") { _, _ in
            try json(.ok, RoomList(rooms: gateway.inspect()))
        }
        router.get("/admin/rooms/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let room = gateway.inspect(room: id).first else { return try json(.notFound, Failure(error: "room not found")) }
            return try json(.ok, room)
        }
        router.delete("/admin/rooms/:id") { _, context in
            let id = try context.parameters.require("id")
            guard gateway.closeRoomByOperator(id) else { return try json(.notFound, Failure(error: "room not found")) }
            return try json(.ok, Done(status: "closed"))
        }
        router.delete("/admin/clients/:id") { _, context in
            let id = try context.parameters.require("id")
            guard gateway.disconnectByOperator(id) else { return try json(.notFound, Failure(error: "client not found")) }
            return try json(.ok, Done(status: "disconnecting"))
        }
        return router
    }

    struct RoomList: Encodable { var rooms: [RoomView] }
    struct Failure: Encodable { var error: String }
    struct Done: Encodable { var status: String }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Refuses every request without `Authorization: Bearer <token>` (401, `WWW-Authenticate:
/// Bearer`), comparing in time independent of where the first difference is.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: Secret
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let presented = request.headers[.authorization].flatMap { value -> Substring? in
            guard value.count > 7, value.prefix(7).lowercased() == "bearer " else { return nil }
            return value.dropFirst(7)
        }
        guard let presented, Self.constantTimeEqual(Array(presented.utf8), Array(token.revealed.utf8)) else {
            logger.warning("Admin API: request refused (missing or wrong bearer token)", metadata: ["path": .string(request.uri.path)])
            return Response(
                status: .unauthorized,
                headers: [.contentType: "application/json", .wwwAuthenticate: "Bearer"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"error":"unauthorized"}"#)))
        }
        logger.info("Admin API request", metadata: ["method": .string(request.method.rawValue), "path": .string(request.uri.path)])
        return try await next(request, context)
    }

    /// Equal iff same bytes; the time taken depends only on the lengths.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}
