#!/usr/bin/env python3
"""A restart under a party, measured from the viewers' seats (PROTOCOL.md §11, §13, §14).

Two owp-server processes share one PostgreSQL (DATABASE_URL), as the old and the new pod of a
rolling update with maxSurge 1: ROOMS rooms of MEMBERS members on the old one (a host playing,
guests ready, chatting), then SIGTERM to the old one. Every member, on its close (1012 expected),
waits BACKOFF seconds (the upstream clients' first back-off), connects to the new one and sends
`resume` with its token. Measured per member: from the close to the resumed `room_state`; and
whether it came back to the same room, as the same id, with the same host, and no `room_closed`.

  python3 scripts/restart_handover.py --old ws://127.0.0.1:PORT1/ws --old-pid PID1 \\
      --new ws://127.0.0.1:PORT2/ws [--rooms 100 --members 10 --backoff 1]

Prints a JSON report; exits 1 if any member did not come back into its seat.
"""
import argparse, asyncio, json, os, signal, statistics, sys, time

import websockets


async def recv_until(ws, wanted, timeout=15):
    seen = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        seen.append(message.get("type"))
        if message.get("type") == wanted:
            return message, seen


class Member:
    def __init__(self, index):
        self.index = index
        self.ws = None
        self.id = None
        self.token = None
        self.room = None
        self.closed_at = None
        self.close_code = None
        self.saw_room_closed = False
        self.back_at = None
        self.result = None

    async def connect(self, url):
        self.ws = await websockets.connect(url, origin="http://localhost:8096", max_size=1 << 22)
        hello, _ = await recv_until(self.ws, "client_hello")
        self.id = hello["payload"]["client_id"]
        self.token = hello["payload"]["resume_token"]

    async def send(self, message):
        message.setdefault("ts", int(time.time() * 1000))
        await self.ws.send(json.dumps(message))

    async def watch_until_closed(self):
        try:
            async for text in self.ws:
                if json.loads(text).get("type") == "room_closed":
                    self.saw_room_closed = True
        except websockets.ConnectionClosed:
            pass
        self.closed_at = time.monotonic()
        self.close_code = self.ws.close_code

    async def come_back(self, url, backoff, host_id):
        await asyncio.sleep(backoff)
        ws = await websockets.connect(url, origin="http://localhost:8096", max_size=1 << 22)
        await recv_until(ws, "client_hello")
        await ws.send(json.dumps({"type": "resume", "payload": {"token": self.token}, "ts": int(time.time() * 1000)}))
        hello, _ = await recv_until(ws, "client_hello")
        state, _ = await recv_until(ws, "room_state")
        self.back_at = time.monotonic()
        listing, _ = await recv_until(ws, "participant_list")
        hosts = [p for p in listing["payload"]["participants"] if p.get("is_host")]
        self.result = {
            "same_id": hello["payload"].get("client_id") == self.id and hello["payload"].get("resumed") is True,
            "same_room": state.get("room") == self.room,
            "one_host": len(hosts) == 1,
        }
        await ws.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True)
    parser.add_argument("--old-pid", type=int, required=True)
    parser.add_argument("--new", required=True)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--backoff", type=float, default=1.0)
    args = parser.parse_args()

    rooms = []
    for r in range(args.rooms):
        host = Member(r * args.members)
        await host.connect(args.old)
        await host.send({"type": "create_room", "payload": {"name": f"room {r}", "user_name": "Host"}})
        state, _ = await recv_until(host.ws, "room_state")
        host.room = state["room"]
        guests = []
        for g in range(1, args.members):
            guest = Member(r * args.members + g)
            await guest.connect(args.old)
            await guest.send({"type": "join_room", "room": host.room, "payload": {"user_name": f"Guest {g}"}})
            await recv_until(guest.ws, "room_state")
            await guest.send({"type": "ready", "room": host.room})
            guest.room = host.room
            guests.append(guest)
        await host.send({"type": "player_event", "room": host.room, "payload": {"action": "play", "position": 10}})
        rooms.append((host, guests))
    members = [m for host, guests in rooms for m in [host] + guests]
    await asyncio.sleep(1.0)  # the play goes out, the store writes the rooms

    watchers = [asyncio.create_task(m.watch_until_closed()) for m in members]
    signalled = time.monotonic()
    os.kill(args.old_pid, signal.SIGTERM)
    await asyncio.gather(*watchers)
    hosts = {host.room: host.id for host, _ in rooms}
    comebacks = [asyncio.create_task(m.come_back(args.new, args.backoff, hosts[m.room])) for m in members]
    results = await asyncio.gather(*comebacks, return_exceptions=True)

    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, Exception)]
    back = [m for m in members if m.result and all(m.result.values())]
    times = sorted(m.back_at - m.closed_at for m in members if m.back_at and m.closed_at)
    def q(p):
        return round(times[min(len(times) - 1, int(p * len(times)))] * 1000, 1) if times else None
    report = {
        "rooms": args.rooms, "members": len(members), "backoff_s": args.backoff,
        "close_codes": sorted({m.close_code for m in members}, key=str),
        "room_closed_seen": sum(m.saw_room_closed for m in members),
        "back_in_their_seat": len(back),
        "close_to_room_state_ms": {"p50": q(0.5), "p99": q(0.99), "max": round(times[-1] * 1000, 1) if times else None,
                                     "mean": round(statistics.mean(times) * 1000, 1) if times else None},
        "all_closed_after_sigterm_ms": round((max(m.closed_at for m in members) - signalled) * 1000, 1),
        "errors": failures[:5], "error_count": len(failures),
    }
    print(json.dumps(report, indent=2))
    return 0 if len(back) == len(members) and not report["room_closed_seen"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
