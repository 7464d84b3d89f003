#!/usr/bin/env python3
"""Load driver for scripts/check-alerts-live.sh: the client side of every alert scenario.

Each mode talks to one or more running owp-servers over loopback: it sets its scenario up,
writes the time to --ready-file, sends traffic for --duration seconds (or until SIGTERM),
then prints one JSON summary line on stdout (client-side counts and ping round-trip
quantiles; after a SIGUSR1 also the round trips since that signal) and exits 0. Every wait
is bounded, and the whole run is cut at --duration + 60 s. It exits non-zero when the
scenario could not be set up (a room not created, a join refused) or went wrong (a reading
client disconnected), so that the caller never mistakes a broken driver for a quiet alert.

    python3 scripts/alert_load.py party   --url ws://127.0.0.1:PORT/ws --duration 40
    python3 scripts/alert_load.py drift   --url ... --duration 40
    python3 scripts/alert_load.py errors  --url ... --duration 40
    python3 scripts/alert_load.py slow    --url ... --duration 30
    python3 scripts/alert_load.py origin  --url ... --duration 30 --origin http://wrong.example
    python3 scripts/alert_load.py steady  --url ... --duration 60 --connections 20 --rate 10 \
        [--barrier-rooms 2] [--url URL_B ...]

Modes (what a real client population would do to provoke the alert; docs/protocol.md):
  party   A healthy watch party: a host and 3 guests, ready, play, a pause and a resume,
          host state_update once a second at exactly the position the play/pause rules give
          (§8: within POSITION_JITTER_THRESHOLD, so every report is dropped as jitter or
          cooldown), everyone pings once a second, a chat line now and then, and every 4 s
          the guests change participant_status together (so status flushes are timed).
  drift   A host whose player runs at 3x speed without telling the server (no seek events):
          every report, one per second, is ~2 s ahead of the projected room position
          (OWPSyncDriftHigh).
  errors  Clients sending malformed JSON and valid pings, 2 of each per second per client
          (OWPErrorRateHigh: half the messages get INVALID_JSON).
  slow    A busy room (a host and 3 guests sending --rate 480-byte chat lines a second each)
          that --stalled raw clients join and then never read from (4 KiB receive buffer, an
          Ethernet MSS), so the server's per-connection outbound queue fills
          (OWPSlowClientDisconnectSpike). The reading members must stay connected.
  origin  WebSocket upgrade requests with an Origin header not in ALLOWED_ORIGINS, --rate per
          second; each must be answered 403 (OWPUpgradesRefused).
  steady  --connections connections per URL in rooms of 5 (1 host, 4 guests), each sending
          --rate messages/s (pings, every fifth a chat line), under the rate limit; the same
          workload against every --url at the same time, so a quota'd and an unquota'd server
          see identical traffic. --barrier-rooms extra rooms per URL have a guest that never
          sends `ready`, and the host presses play every second, so each play waits on the
          ready barrier until MAX_READY_WAIT_MS releases it by timer (scheduling lateness).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import sys
import time
from urllib.parse import urlsplit

try:
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed
except ImportError:  # pragma: no cover
    sys.exit("alert_load: the Python websockets package (>= 13) is missing: pip install websockets")

OPEN_TIMEOUT = 10
RECV_TIMEOUT = 10
# SIGTERM ends the traffic early (the summary is still printed); SIGUSR1 marks a moment from
# which the summary also gives the round trips separately (e.g. when a CPU quota was applied).
STOP: asyncio.Event
MARK: list[float] = []


def now_ms() -> int:
    return int(time.time() * 1000)


def quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)

    def q(p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    return {"n": len(values), "p50_ms": round(q(0.50) * 1000, 2), "p95_ms": round(q(0.95) * 1000, 2),
            "p99_ms": round(q(0.99) * 1000, 2), "max_ms": round(values[-1] * 1000, 2)}


class Client:
    """One websockets connection with a background reader that sorts what arrives."""

    def __init__(self, name: str, ws, stats: dict):
        self.name, self.ws, self.stats = name, ws, stats
        self.id = None
        self.queues: dict[str, asyncio.Queue] = {}
        self.pings: dict[int, float] = {}
        self.closed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, name: str, stats: dict, origin: str | None = None) -> "Client":
        ws = await ws_connect(url, origin=origin, proxy=None, open_timeout=OPEN_TIMEOUT,
                              ping_interval=None, max_queue=256)
        client = cls(name, ws, stats)
        hello = await client.expect("client_hello")
        client.id = hello["payload"]["client_id"]
        return client

    def queue(self, type_: str) -> asyncio.Queue:
        return self.queues.setdefault(type_, asyncio.Queue())

    async def _read(self):
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                type_ = message.get("type")
                self.stats["received"] = self.stats.get("received", 0) + 1
                if type_ == "pong":
                    sent = self.pings.pop((message.get("payload") or {}).get("seq", -1), None)
                    if sent is not None:
                        now = time.monotonic()
                        self.stats.setdefault("rtt", []).append((now, now - sent))
                elif type_ == "error":
                    code = message["payload"].get("code", "?")
                    self.stats.setdefault("errors", {})[code] = self.stats.setdefault("errors", {}).get(code, 0) + 1
                if type_ in ("client_hello", "room_state", "player_event", "error", "room_closed"):
                    self.queue(type_).put_nowait(message)
        except Exception:  # a close or reset ends the reader; the caller sees `closed`
            pass
        finally:
            self.closed.set()

    async def expect(self, type_: str, timeout: float = RECV_TIMEOUT) -> dict:
        return await asyncio.wait_for(self.queue(type_).get(), timeout)

    async def send(self, type_: str, room: str | None = None, payload: dict | None = None):
        message = {"type": type_, "ts": now_ms()}
        if room is not None:
            message["room"] = room
        if payload is not None:
            message["payload"] = payload
        await self.ws.send(json.dumps(message))
        self.stats["sent"] = self.stats.get("sent", 0) + 1

    async def ping(self):
        seq = self.stats["seq"] = self.stats.get("seq", 0) + 1
        self.pings[seq] = time.monotonic()
        await self.send("ping", payload={"client_ts": now_ms(), "seq": seq})

    async def send_raw(self, text: str):
        await self.ws.send(text)
        self.stats["sent"] = self.stats.get("sent", 0) + 1

    async def close(self):
        self.reader.cancel()
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass


async def make_room(url: str, stats: dict, guests: int, prefix: str, ready: bool = True):
    """A host and `guests` guests in one room; returns (room, host, [guests])."""
    host = await Client.open(url, f"{prefix}-host", stats)
    await host.send("auth", payload={"user_name": f"{prefix} host", "features": ["host_transfer", "participant_status"]})
    await host.send("create_room", payload={"name": f"{prefix} room", "user_name": f"{prefix} host"})
    room = (await host.expect("room_state"))["room"]
    members = []
    for i in range(guests):
        guest = await Client.open(url, f"{prefix}-guest{i}", stats)
        await guest.send("join_room", room, {"user_name": f"{prefix} guest {i}"})
        state = await guest.expect("room_state")
        if state.get("room") != room:
            raise SystemExit(f"alert_load: {guest.name} could not join {room}: {state}")
        if ready:
            await guest.send("ready", room)
        members.append(guest)
    return room, host, members


async def until(deadline: float, period: float, step):
    """Calls `await step(i)` every `period` seconds until `deadline` (monotonic). A step that
    took longer than its period is not caught up by sending the missed ones back to back (a
    client at 10 messages/s would burst past the server's 30/s limit after a 3 s stall)."""
    i = 0
    next_at = time.monotonic()
    while time.monotonic() < deadline and not STOP.is_set():
        await step(i)
        i += 1
        next_at = max(next_at + period, time.monotonic())
        try:
            await asyncio.wait_for(STOP.wait(), max(0.0, min(next_at, deadline) - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            pass


# --- party ------------------------------------------------------------------------------

async def party(args) -> dict:
    """`--parties` independent rooms, each a host and 3 guests doing what a real party does,
    their traffic over the same `--duration`."""
    stats: dict = {}
    rooms = [await make_room(args.url[0], stats, 3, f"party{n}") for n in range(args.parties)]
    await asyncio.sleep(0.3)
    players = [await start_playing(room, host) for room, host, _ in rooms]
    deadline = started(args)
    await asyncio.gather(*(party_traffic(args, deadline, room, host, guests, player)
                           for (room, host, guests), player in zip(rooms, players)))
    for _, host, guests in rooms:
        for c in [host, *guests]:
            await c.close()
    return summarize(stats)


class HostPlayer:
    """The host's local player: position `pos` held at server time `at_ms`, playing or paused."""

    def __init__(self, room: str, host: "Client"):
        self.room, self.host = room, host
        self.pos, self.at_ms, self.state = 0.0, now_ms(), "paused"

    def position(self, t_ms: int) -> float:
        if self.state == "playing":
            return self.pos + (t_ms - self.at_ms) / 1000
        return self.pos

    async def play(self, at: float):
        await self.host.send("player_event", self.room, {"action": "play", "position": at})
        event = await self.host.expect("player_event")  # a scheduled play goes to the host too
        self.pos, self.at_ms, self.state = event["payload"]["position"], event["server_ts"], "playing"

    def paused(self, pos: float):
        self.pos, self.at_ms, self.state = pos, now_ms(), "paused"


async def start_playing(room, host) -> HostPlayer:
    """Starts the room's video at 10 s."""
    player = HostPlayer(room, host)
    await player.play(10.0)
    return player


async def party_traffic(args, deadline: float, room, host, guests, player: HostPlayer):
    """One room's traffic until `deadline`: the host reports its position every second, pauses
    at 40% of the duration and resumes 4 s later; the guests ping, report a status every 4 s
    and chat now and then."""
    t_start = time.monotonic()
    paused_once = resumed = False

    async def host_step(i):
        nonlocal paused_once, resumed
        elapsed = time.monotonic() - t_start
        if not paused_once and elapsed > args.duration * 0.4:
            pos = player.position(now_ms())
            await host.send("player_event", room, {"action": "pause", "position": round(pos, 3)})
            player.paused(pos)
            paused_once = True
        elif paused_once and not resumed and elapsed > args.duration * 0.4 + 4:
            await player.play(player.position(now_ms()))
            resumed = True
        await host.send("state_update", room, {"position": round(player.position(now_ms()), 3), "play_state": player.state})
        await host.ping()

    statuses = ["in_sync", "playing"]

    async def guest_loop(k, guest):
        async def step(i):
            await guest.ping()
            if i % 4 == 0:  # the guests' players change state together (after a command)
                await asyncio.sleep(0.02 * k)
                await guest.send("participant_status", room, {"status": statuses[(i // 4) % 2]})
            if i % 10 == k * 3:
                await guest.send("chat_message", room, {"text": f"guest {k}: nice scene ({i})"})
        await until(deadline, 1.0, step)

    await asyncio.gather(until(deadline, 1.0, host_step), *(guest_loop(k, g) for k, g in enumerate(guests)))


# --- drift ------------------------------------------------------------------------------

async def drift(args) -> dict:
    stats: dict = {}
    room, host, guests = await make_room(args.url[0], stats, 1, "drift")
    await host.send("player_event", room, {"action": "play", "position": 60.0})
    event = await host.expect("player_event")
    start_pos, start_ms = event["payload"]["position"], event["server_ts"]
    deadline = started(args)

    async def step(i):
        # The host's player runs at 3x speed: 3 media seconds per second of server time.
        await host.send("state_update", room, {"position": round(start_pos + 3 * (now_ms() - start_ms) / 1000, 3),
                                               "play_state": "playing"})
        if i % 3 == 0:
            await guests[0].ping()

    await until(deadline, 1.0, step)
    for c in [host, *guests]:
        await c.close()
    return summarize(stats)


# --- errors -----------------------------------------------------------------------------

async def errors(args) -> dict:
    stats: dict = {}
    clients = [await Client.open(args.url[0], f"errors{i}", stats) for i in range(args.connections)]
    deadline = started(args)
    bad = ['{"type": "ping", "ts": 1,}', "not json at all", '{"type": "ping"}', '{"type": "chat_message", "ts": -1}']

    async def loop(c):
        async def step(i):
            await c.send_raw(bad[i % len(bad)])
            await c.ping()
        await until(deadline, 0.5, step)

    await asyncio.gather(*(loop(c) for c in clients))
    await asyncio.sleep(0.5)
    for c in clients:
        await c.close()
    return summarize(stats)


# --- slow -------------------------------------------------------------------------------

def ws_frame(text: str) -> bytes:
    """A masked client text frame."""
    data = text.encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(data) < 126:
        header.append(0x80 | len(data))
    else:
        header.append(0x80 | 126)
        header += len(data).to_bytes(2, "big")
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def raw_upgrade(url: str, origin: str | None, rcvbuf: int | None = None, timeout: float = 5.0):
    """Opens a TCP connection and sends an upgrade request; returns (socket, status, head)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        # Advertise an Ethernet-sized MSS, as a client on a real network does. Over loopback
        # the MSS is 64 KiB, and Linux sizes the server's send buffer from the peer's MSS
        # (a few MiB instead of the ~100 KiB a real client gets), which would take minutes
        # of traffic to fill.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
    sock.settimeout(timeout)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin:
        lines.append(f"Origin: {origin}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = sock.recv(1 if rcvbuf else 4096)  # byte by byte: do not swallow frames after the head
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return sock, status, head


async def slow(args) -> dict:
    stats: dict = {}
    url = args.url[0]
    room, host, members = await make_room(url, stats, 3, "busy")
    text = "x" * 480
    stalled = []
    loop = asyncio.get_running_loop()
    for i in range(args.stalled):
        sock, status, _ = await loop.run_in_executor(None, raw_upgrade, url, None, 4096)
        if status != 101:
            raise SystemExit(f"alert_load: stalled client {i}: upgrade answered {status}")
        # join the busy room, then never read again
        sock.sendall(ws_frame(json.dumps({"type": "join_room", "room": room, "ts": now_ms(),
                                          "payload": {"user_name": f"stalled {i}"}})))
        stalled.append(sock)
    stats["stalled"] = len(stalled)
    deadline = started(args)

    async def chatter(c):
        async def step(i):
            await c.send("chat_message", room, {"text": text})
        try:
            await until(deadline, 1 / args.rate, step)
        except ConnectionClosed as error:
            stats.setdefault("readers_disconnected", []).append(f"{c.name}: {error}")

    await asyncio.gather(*(chatter(c) for c in [host, *members]))
    for sock in stalled:
        sock.close()
    if stats.get("readers_disconnected"):
        # Only the clients that never read may be cut off; a reading member losing its
        # connection means the provocation hit the healthy clients too.
        raise SystemExit(f"alert_load: reading members were disconnected: {stats['readers_disconnected']}")
    for c in [host, *members]:
        await c.close()
    return summarize(stats)


# --- origin -----------------------------------------------------------------------------

async def origin(args) -> dict:
    stats: dict = {"statuses": {}}
    deadline = started(args)
    loop = asyncio.get_running_loop()

    async def step(i):
        sock, status, _ = await loop.run_in_executor(None, raw_upgrade, args.url[0], args.origin)
        sock.close()
        stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1

    await until(deadline, 1 / args.rate, step)
    # One browser with an allowed origin must still get in.
    good = await Client.open(args.url[0], "allowed-origin", stats, origin=args.allowed_origin)
    await good.close()
    stats["allowed_origin_connected"] = True
    return summarize(stats)


# --- steady -----------------------------------------------------------------------------

async def steady_setup(url: str, args) -> tuple[dict, list, list]:
    stats: dict = {}
    rooms = [await make_room(url, stats, 4, f"steady{r}") for r in range(max(1, args.connections // 5))]
    barrier = []
    for r in range(args.barrier_rooms):
        room, host, _guests = await make_room(url, stats, 1, f"barrier{r}", ready=False)
        barrier.append((room, host))
    return stats, rooms, barrier


async def steady_traffic(setup, args, deadline: float) -> dict:
    stats, rooms, barrier = setup

    async def member(room, c, k):
        async def step(i):
            if (i + k) % 5 == 0:
                await c.send("chat_message", room, {"text": f"{c.name} {i}"})
            else:
                await c.ping()
        await asyncio.sleep(random.random() / args.rate)
        try:
            await until(deadline, 1 / args.rate, step)
        except ConnectionClosed as closed:
            # A server starved of CPU on purpose reads its backlog in clumps: more than 30 of
            # one connection's messages in one second, and it closes the connection (4002, the
            # protocol's fixed window). Counted, not fatal, where the check expects it.
            if not args.tolerate_server_closes or closed.rcvd is None:
                raise
            closes = stats.setdefault("closed_by_server", {})
            closes[str(closed.rcvd.code)] = closes.get(str(closed.rcvd.code), 0) + 1

    async def barrier_host(room, host):
        async def step(i):
            await host.send("player_event", room, {"action": "play", "position": 5.0 + i})
        await asyncio.sleep(random.random())
        await until(deadline, 1.0, step)

    tasks = [member(room, c, k) for room, host, guests in rooms for k, c in enumerate([host, *guests])]
    tasks += [barrier_host(room, host) for room, host in barrier]
    await asyncio.gather(*tasks)
    for room, host, guests in rooms:
        for c in [host, *guests]:
            await c.close()
    return summarize(stats)


async def steady(args) -> dict:
    setups = [await steady_setup(url, args) for url in args.url]
    deadline = started(args)
    results = await asyncio.gather(*(steady_traffic(setup, args, deadline) for setup in setups))
    return {url: result for url, result in zip(args.url, results)}


def started(args) -> float:
    """Setup is done, traffic starts now: tells the caller (--ready-file gets the epoch time)
    and returns the monotonic deadline of the traffic."""
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as f:
            f.write(f"{time.time():.3f}\n")
        os.replace(args.ready_file + ".tmp", args.ready_file)
    return time.monotonic() + args.duration


def summarize(stats: dict) -> dict:
    out = {k: v for k, v in stats.items() if k not in ("rtt", "seq")}
    samples = stats.get("rtt", [])
    out["client_rtt"] = quantiles([rtt for _, rtt in samples])
    if MARK:
        out["client_rtt_after_mark"] = quantiles([rtt for at, rtt in samples if at >= MARK[0]])
    return out


async def run(mode, args):
    global STOP
    STOP = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, STOP.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: MARK.append(time.monotonic()) if not MARK else None)
    return await asyncio.wait_for(mode(args), args.duration + 60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["party", "drift", "errors", "slow", "origin", "steady"])
    parser.add_argument("--url", action="append", required=True, help="ws://127.0.0.1:PORT/ws (steady: repeatable)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of traffic (default 30)")
    parser.add_argument("--connections", type=int, default=20, help="errors/steady: connections per URL")
    parser.add_argument("--parties", type=int, default=1, help="party: rooms of a host and 3 guests (default 1)")
    parser.add_argument("--rate", type=float, default=10, help="steady: messages/s per connection; slow: chat/s per member; origin: requests/s")
    parser.add_argument("--stalled", type=int, default=8, help="slow: clients that never read")
    parser.add_argument("--barrier-rooms", type=int, default=0, help="steady: rooms with a never-ready guest")
    parser.add_argument("--tolerate-server-closes", action="store_true",
                        help="steady: a member the server closes stops and is counted (closed_by_server), instead of failing the run")
    parser.add_argument("--origin", default="http://wrong-origin.example", help="origin: the refused Origin header")
    parser.add_argument("--ready-file", help="written (epoch seconds) once setup is done and traffic starts")
    parser.add_argument("--allowed-origin", default="http://localhost:8096", help="origin: an allowed Origin (must connect)")
    args = parser.parse_args()
    if args.mode != "steady" and len(args.url) != 1:
        parser.error(f"{args.mode} takes exactly one --url")
    if not 0 < args.duration <= 600:
        parser.error("--duration must be in (0, 600] seconds")
    mode = globals()[args.mode]
    # Hard upper bound on the whole run, whatever hangs: setup + traffic + teardown.
    try:
        result = asyncio.run(run(mode, args))
    except (asyncio.TimeoutError, TimeoutError):
        sys.exit(f"alert_load: {args.mode} did not finish within {args.duration + 60:.0f}s")
    print(json.dumps({"mode": args.mode, **({"result": result} if args.mode == "steady" else result)}), flush=True)


if __name__ == "__main__":
    main()
