#!/usr/bin/env python3
"""Sessions outlive connections (PROTOCOL.md §13), tried as a user would, against a running
owp-server in JWT mode, with the independent Python `websockets` client.

A host and two guests watch (tokens signed with the server's JWT_SECRET, as Jellyfin would
issue them). The host's TCP connection is killed (a reset, no close frame); a second later
it reconnects the way both upstream client generations do: a new socket, `auth` with token,
`user_name` and `user_id`, then `ping`, and nothing about resuming. It must be back as host,
in the same room, with playback going on; the guests must have seen nothing of it. Then the
same with a guest.

Usage: JWT_SECRET=… python3 scripts/e2e_resume.py [ws://127.0.0.1:3000/ws]
Exits non-zero, naming the step, when the server deviates.
"""
import asyncio
import json
import os
import socket
import struct
import sys

import websockets

from e2e_watch_party import Client, check, now_ms
from lib.jellyfin_tokens import jwt_hs256

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:3000/ws"
SECRET = os.environ.get("JWT_SECRET", "")
GONE = {"client_left", "host_changed", "room_closed", "participants_update"}


def token(sub, name):
    return jwt_hs256(SECRET, sub, name)


class Member(Client):
    """One upstream-like client: connects, authenticates, keeps everything it receives (in
    the background, so that what another member was told can be looked at afterwards)."""

    def __init__(self, sub, name):
        super().__init__(name, None)
        self.sub = sub
        self.inbox = asyncio.Queue()
        self.seen = []

    async def connect(self):
        self.ws = await websockets.connect(URL)
        self.reader = asyncio.create_task(self._read())
        hello = await self.recv("client_hello")
        await self.send("auth", payload={"token": token(self.sub, self.name), "user_name": self.name, "user_id": self.sub,
                                         "features": ["host_transfer", "participant_status"]})
        await self.send("ping", payload={"client_ts": now_ms()})
        return hello

    async def _read(self):
        try:
            async for text in self.ws:
                message = json.loads(text)
                self.seen.append(message)
                await self.inbox.put(message)
        except websockets.ConnectionClosed:
            pass

    async def recv(self, type_, timeout=5):
        while True:
            message = await asyncio.wait_for(self.inbox.get(), timeout)
            if message["type"] == type_:
                return message

    def kill(self):
        """A TCP reset: SO_LINGER 0, then close. No close frame, no FIN."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()
        self.reader.cancel()


async def drop_and_return(who, others, room, host_id, role):
    old_id = who.id
    mark = [len(o.seen) for o in others]
    who.kill()
    await asyncio.sleep(1.0)  # the upstream clients' first back-off
    await who.connect()
    auth = await who.recv("auth_success")
    check(auth["payload"]["user_name"] == who.name, f"{role}: auth_success on the new socket")
    hello = await who.recv("client_hello")
    check(hello["client"] == old_id and hello["payload"].get("resumed") is True, f"{role}: resumed with its old client id")
    state = await who.recv("room_state")
    p = state["payload"]
    check(state["room"] == room and p["host_id"] == host_id, f"{role}: back in its room, host_id unchanged")
    check(p["state"]["play_state"] == "playing", f"{role}: the room kept playing")
    participants = (await who.recv("participant_list"))["payload"]["participants"]
    check([e["is_host"] for e in participants] == [True, False, False], f"{role}: participant_list has the right host flag")
    await who.recv("pong")
    await asyncio.sleep(0.3)
    for other, start in zip(others, mark):
        types = {m["type"] for m in other.seen[start:]}
        check(not (types & GONE), f"{role} dropped: {other.name} saw none of {sorted(GONE)} (saw {sorted(types) or 'nothing'})")
    who.id = old_id


async def main():
    if len(SECRET) < 32:
        raise SystemExit("set JWT_SECRET (the server's, ≥ 32 bytes)")
    host, guest1, guest2 = Member("jf-host", "Hannah"), Member("jf-guest-1", "Gus"), Member("jf-guest-2", "Gia")
    for m in (host, guest1, guest2):
        m.id = (await m.connect())["client"]
        await m.recv("auth_success")
    await host.send("create_room", payload={"name": "Resume night"})
    room = (await host.recv("room_state"))["room"]
    for g in (guest1, guest2):
        await g.send("join_room", room)
        await g.recv("room_state")
        await g.send("ready", room)
    await asyncio.sleep(0.2)
    await host.send("player_event", room, {"action": "play", "position": 5})
    for g in (guest1, guest2):
        check((await g.recv("player_event"))["payload"]["action"] == "play", f"{g.name}: play")

    await drop_and_return(host, [guest1, guest2], room, host.id, "host")
    await host.send("player_event", room, {"action": "pause", "position": 9})
    for g in (guest1, guest2):
        event = await g.recv("player_event")
        check(event["payload"]["action"] == "pause" and event["client"] == host.id, f"{g.name}: the resumed host's pause arrives")
    await host.send("player_event", room, {"action": "play", "position": 9})
    for g in (guest1, guest2):
        await g.recv("player_event")

    await drop_and_return(guest1, [host, guest2], room, host.id, "guest")
    await guest1.send("chat_message", room, {"text": "back"})
    for m in (host, guest2):
        chat = await m.recv("chat_message")
        check(chat["client"] == guest1.id, f"{m.name}: the resumed guest's chat carries its old id")
    print("e2e resume: all checks passed")


asyncio.run(main())
