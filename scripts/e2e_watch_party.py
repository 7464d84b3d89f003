#!/usr/bin/env python3
"""A whole watch party against a running owp-server, with the independent Python `websockets`
client (which offers permessage-deflate): create, join, ready, play, pause, seek, chat, leave.

Usage: python3 scripts/e2e_watch_party.py [ws://127.0.0.1:3000/ws]
Exits non-zero, naming the step, when the server deviates from PROTOCOL.md.
"""
import asyncio
import json
import sys
import time

import websockets

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:3000/ws"


def now_ms():
    return int(time.time() * 1000)


class Client:
    def __init__(self, name, ws):
        self.name, self.ws = name, ws

    async def send(self, type_, room=None, payload=None):
        message = {"type": type_, "ts": now_ms()}
        if room is not None:
            message["room"] = room
        if payload is not None:
            message["payload"] = payload
        await self.ws.send(json.dumps(message))

    async def recv(self, type_=None, timeout=5):
        """The next message (of `type_`, skipping others), checking the envelope rules of §2."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            for key in ("ts", "server_ts"):
                assert isinstance(message.get(key), int), f"{self.name}: {key} not an integer in {message}"
            for key in ("room", "client"):
                assert message.get(key, "x") != "", f"{self.name}: empty {key} in {message}"
            if type_ is None or message["type"] == type_:
                return message


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok   {what}")


async def main():
    async with websockets.connect(URL) as h, websockets.connect(URL) as g1, websockets.connect(URL, compression=None) as g2:
        host, guest1, guest2 = Client("host", h), Client("guest1", g1), Client("guest2", g2)
        check("permessage-deflate" in (h.response.headers.get("Sec-WebSocket-Extensions") or ""), "deflate negotiated with a client that offers it")
        check(g2.response.headers.get("Sec-WebSocket-Extensions") is None, "no extension for a client that does not offer it")
        for c in (host, guest1, guest2):
            hello = await c.recv()
            c.id = hello["client"]
            check(hello["type"] == "client_hello" and hello["payload"]["client_id"] == hello["client"], f"{c.name}: client_hello first")
            check((await c.recv())["type"] == "room_list", f"{c.name}: room_list after hello")

        await host.send("create_room", payload={"name": "Film night", "user_name": "Alice", "media_id": "0123456789abcdef0123456789abcdef"})
        state = await host.recv("room_state")
        room = state["room"]
        check(state["payload"]["state"] == {"position": 0, "play_state": "paused"}, "room created paused at 0")
        lobby = await guest1.recv("room_list")
        check([r["id"] for r in lobby["payload"]] == [room] and lobby["payload"][0]["count"] == 1, "lobby sees the new room")

        for c, name in ((guest1, "Bob"), (guest2, "Carol")):
            await c.send("join_room", room, {"user_name": name})
            check((await c.recv("room_state"))["payload"]["participant_count"] >= 2, f"{c.name} joined")
        plist = await guest2.recv("participant_list")
        check([p["name"] for p in plist["payload"]["participants"]] == ["Alice", "Bob", "Carol"], "participants in join order")

        await guest1.send("ready", room)
        await guest2.send("ready", room)
        await asyncio.sleep(0.1)
        await host.send("player_event", room, {"action": "play", "position": 10})
        targets = set()
        for c in (host, guest1, guest2):
            play = await c.recv("player_event")
            p = play["payload"]
            check(p["action"] == "play" and p["play_state"] == "playing" and p["target_server_ts"] == play["ts"] + 1500, f"{c.name}: scheduled play at release + 1500 ms")
            targets.add(p["target_server_ts"])
        check(len(targets) == 1, "everyone got the same target")

        await asyncio.sleep(0.3)
        await host.send("player_event", room, {"action": "pause", "position": 10.3})
        for c in (guest1, guest2):
            p = (await c.recv("player_event"))["payload"]
            check(p["action"] == "pause" and p["position"] == 10.3 and p["play_state"] == "paused", f"{c.name}: pause")

        await host.send("player_event", room, {"action": "seek", "position": 42, "play_state": "paused"})
        for c in (guest1, guest2):
            seek = await c.recv("player_event")
            p = seek["payload"]
            check(p["action"] == "seek" and p["position"] == 42 and p["target_server_ts"] == seek["server_ts"] + 300, f"{c.name}: seek scheduled 300 ms ahead")

        await guest1.send("chat_message", room, {"text": "  popcorn?  "})
        for c in (host, guest1, guest2):
            chat = await c.recv("chat_message")
            # Relayed as sent: PROTOCOL.md §10 removes control characters only (docs/protocol.md, choice 6).
            check(chat["payload"] == {"username": "Bob", "text": "  popcorn?  "} and chat["client"] == guest1.id, f"{c.name}: chat delivered")

        await guest2.send("leave_room")
        left = await host.recv("client_left")
        check(left["payload"]["participant_count"] == 2, "host sees guest2 leave")
        back = await guest2.recv("room_list")
        check(back["payload"][0]["count"] == 2, "leaver is back in the lobby with a current list")

        await host.send("leave_room")
        closed = await guest1.recv("room_closed")
        check(closed["payload"]["reason"] == "Host left the room", "room closes when the host leaves")

        await guest1.ws.send("x" * 70000)
        try:
            await asyncio.wait_for(guest1.ws.recv(), 5)
            while True:
                await asyncio.wait_for(guest1.ws.recv(), 5)
        except websockets.ConnectionClosed as closed_exc:
            check(closed_exc.rcvd is not None and closed_exc.rcvd.code == 1009, "a 70 000-byte message closes with 1009")
    print("e2e watch party: all checks passed")


if __name__ == "__main__":
    asyncio.run(main())
