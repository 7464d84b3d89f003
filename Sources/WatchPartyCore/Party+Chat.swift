/// `chat_message` (PROTOCOL.md §9).
extension Party {
    mutating func chat(from client: ClientID, room roomID: RoomID?, payload: JSONValue?, now: ServerTime, out: inout Outcome) throws(ProtocolError) {
        guard roomID != nil else { throw ProtocolError(.roomIDRequired) }
        guard let raw = payload?["text"]?.string else { throw ProtocolError(.invalidChatPayload) }
        // PROTOCOL.md §10: only control characters are removed; the text keeps its spaces and
        // indentation. A text of nothing but whitespace is still empty to a reader.
        let text = Sanitizer.chat(raw)
        guard !text.isBlank else { throw ProtocolError(.chatMessageEmpty) }
        guard raw.utf8.count <= rules.maxChatBytes else { throw ProtocolError(.chatMessageTooLong) }
        let room = try memberRoom(roomID, of: client)
        out.send(.chatMessage(username: name(of: client), text: text), to: room.members, room: room.id, client: client, now: now)
    }
}
