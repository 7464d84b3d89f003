#!/usr/bin/env python3
"""A rolling restart of several replicas under a party, measured from the viewers' seats
(PROTOCOL.md §11, §13, §14; issue: "a rolling restart closes no room").

It starts its own PostgreSQL (scripts/pg_throwaway.sh) unless --database-url is given, starts
REPLICAS owp-server processes sharing it, and sets up ROOMS rooms of MEMBERS members, each
member connected to a replica picked at random (a load balancer without affinity). Every host
plays and posts a numbered chat message every CHAT_INTERVAL seconds. Then each replica in turn
is replaced as a Kubernetes rolling update does (maxSurge 1, maxUnavailable 0): a new process
is started and, once it listens on the bus, takes the old one's place behind the "load
balancer"; the old one gets SIGTERM. Every member whose connection closes waits BACKOFF
seconds (the upstream clients' first back-off), connects to a replica picked at random among
the running ones and sends `resume` with its token.

Measured: close codes; per member and close, the time from the close to its resumed
`room_state` (p50 / p99 / max); members that never came back or came back elsewhere; rooms
closed (`room_closed` seen); and messages lost: a chat message missing between two that one
connection received (a member misses, by design, what is sent while it is away).

  python3 scripts/rolling_restart.py --server .build/release/owp-server [--replicas 3]
      [--rooms 300 --members 10 --backoff 1 --chat-interval 2 --settle 4] [--json out.json]

Exits 1 if a room closed, a member did not come back into its seat, or a message was lost.
"""
import argparse, asyncio, json, os, random, re, shutil, signal, socket, subprocess, sys, time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = "http://localhost:8096"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """One owp-server process; its log in a file."""

    def __init__(self, server, database_url, log_dir, name, extra_env):
        self.port = free_port()
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        env = dict(os.environ, DATABASE_URL=database_url, LOG_LEVEL="info", **extra_env)
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [server, "--host", "127.0.0.1", "--port", str(self.port), "--allowed-origins", "*",
             "--max-connections", "20000", "--max-connections-per-ip", "20000"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    async def ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Bus: listening" in self.text():
                return
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.text()[-2000:]}")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)

    async def exited(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.process.poll()


class Balancer:
    """The Service: the running replicas; a connection goes to one at random."""

    def __init__(self, seed):
        self.replicas = []
        self.random = random.Random(seed)

    def pick(self):
        return self.random.choice(self.replicas)


async def recv_until(ws, wanted, timeout=15, seen=None):
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if seen is not None:
            seen(message)
        if message.get("type") == wanted:
            return message


class Member:
    def __init__(self, run, room_index, index):
        self.run = run
        self.room_index = room_index
        self.index = index
        self.ws = None
        self.id = None
        self.token = None
        self.room = None
        self.host_id = None
        # One list of chat numbers per connection, in arrival order.
        self.intervals = [[]]
        self.closes = []  # (code, closed_at)
        self.returns = []  # seconds from a close to the resumed room_state
        self.failures = []
        self.room_closed = 0
        self.attached = False

    def note(self, message):
        kind = message.get("type")
        if kind == "chat_message":
            text = (message.get("payload") or {}).get("text", "")
            if text.startswith("S"):
                self.intervals[-1].append(int(text[1:].split("-")[0]))
        elif kind == "room_closed":
            self.room_closed += 1

    async def connect(self, replica):
        self.ws = await websockets.connect(replica.url, origin=ORIGIN, max_size=1 << 22, open_timeout=15, ping_interval=None)
        hello = await recv_until(self.ws, "client_hello")
        return hello["payload"]

    async def send(self, message):
        message.setdefault("ts", int(time.time() * 1000))
        await self.ws.send(json.dumps(message))

    async def watch(self):
        """Reads until the connection closes; then comes back, as the upstream client does."""
        while True:
            try:
                async for text in self.ws:
                    self.note(json.loads(text))
            except websockets.ConnectionClosed:
                pass
            self.attached = False
            closed_at = time.monotonic()
            self.closes.append((self.ws.close_code, closed_at))
            if self.run.stopping:
                return
            await asyncio.sleep(self.run.backoff)
            back = False
            for _ in range(20):
                if self.run.stopping:
                    return
                try:
                    replica = self.run.balancer.pick()
                    await self.connect(replica)
                    await self.send({"type": "resume", "payload": {"token": self.token}})
                    hello = await recv_until(self.ws, "client_hello", timeout=15, seen=self.note)
                    state = await recv_until(self.ws, "room_state", timeout=15, seen=self.note)
                    payload = hello["payload"]
                    if payload.get("client_id") != self.id or state.get("room") != self.room:
                        self.failures.append(f"came back as {payload.get('client_id')} in {state.get('room')}")
                    self.token = payload.get("resume_token", self.token)
                    self.returns.append(time.monotonic() - closed_at)
                    self.intervals.append([])
                    self.attached = True
                    back = True
                    break
                except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as error:
                    self.failures.append(f"reconnect: {type(error).__name__}")
                    await asyncio.sleep(self.run.backoff)
            if not back:
                self.failures.append("never came back")
                return


class Run:
    def __init__(self, args):
        self.args = args
        self.backoff = args.backoff
        self.balancer = Balancer(args.seed)
        self.stopping = False
        self.rooms = []  # [[host, guests...]]
        self.sent = {}  # room index -> chats sent

    async def build(self):
        placement = random.Random(self.args.seed + 1)
        semaphore = asyncio.Semaphore(32)

        async def room(index):
            async with semaphore:
                members = [Member(self, index, i) for i in range(self.args.members)]
                host = members[0]
                hello = await host.connect(placement.choice(self.balancer.replicas))
                host.id, host.token = hello["client_id"], hello["resume_token"]
                await host.send({"type": "create_room", "payload": {"name": f"rolling {index}", "user_name": f"host-{index}"}})
                state = await recv_until(host.ws, "room_state", seen=host.note)
                host.room = state["room"]
                await asyncio.sleep(0.3)  # written to the database, so any replica finds it
                for guest in members[1:]:
                    hello = await guest.connect(placement.choice(self.balancer.replicas))
                    guest.id, guest.token = hello["client_id"], hello["resume_token"]
                    await guest.send({"type": "join_room", "room": host.room, "payload": {"user_name": f"guest-{index}-{guest.index}"}})
                    await recv_until(guest.ws, "room_state", seen=guest.note)
                    await guest.send({"type": "ready", "room": host.room})
                for member in members:
                    member.room = host.room
                    member.attached = True
                await host.send({"type": "player_event", "room": host.room, "payload": {"action": "play", "position": 10}})
                self.rooms.append(members)

        await asyncio.gather(*(room(i) for i in range(self.args.rooms)))

    async def chat(self, members):
        host = members[0]
        index = host.room_index
        sequence = 0
        while not self.stopping:
            if host.attached:
                try:
                    await host.send({"type": "chat_message", "room": host.room, "payload": {"text": f"S{sequence}"}})
                    sequence += 1
                except websockets.WebSocketException:
                    pass
            await asyncio.sleep(self.args.chat_interval)
        self.sent[index] = sequence


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--backoff", type=float, default=1.0)
    parser.add_argument("--chat-interval", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=4.0, help="seconds between two replicas' restarts, after everyone is back")
    parser.add_argument("--drain-delay", type=float, default=1.0, help="DRAIN_DELAY_SECONDS of the replicas")
    parser.add_argument("--database-url")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json")
    parser.add_argument("--logs", default="/tmp/owp-rolling-restart")
    args = parser.parse_args()

    os.makedirs(args.logs, exist_ok=True)
    cluster = None
    database_url = args.database_url
    if not database_url:
        cluster = os.path.join(args.logs, "pg")
        shutil.rmtree(cluster, ignore_errors=True)  # a previous run's
        database_url = subprocess.check_output([os.path.join(ROOT, "scripts/pg_throwaway.sh"), "start", cluster], text=True).strip()
    env = {"DRAIN_DELAY_SECONDS": str(args.drain_delay), "SHUTDOWN_GRACE_SECONDS": "10"}
    processes = []
    run = Run(args)
    report = {}
    try:
        for index in range(args.replicas):
            replica = Replica(args.server, database_url, args.logs, f"r{index}", env)
            processes.append(replica)
        for replica in processes:
            await replica.ready()
        run.balancer.replicas = list(processes)
        started = time.monotonic()
        await run.build()
        members = [m for room in run.rooms for m in room]
        print(f"[rolling] {len(run.rooms)} rooms, {len(members)} members over {args.replicas} replicas in {time.monotonic() - started:.1f} s", file=sys.stderr)
        watchers = [asyncio.create_task(m.watch()) for m in members]
        chatters = [asyncio.create_task(run.chat(room)) for room in run.rooms]
        await asyncio.sleep(args.settle)

        restarts = []
        for index in range(args.replicas):
            old = run.balancer.replicas[index]
            new = Replica(args.server, database_url, args.logs, f"r{index}-new", env)
            processes.append(new)
            await new.ready()
            run.balancer.replicas[index] = new  # the new pod is ready: the Service sends to it, not to the old
            signalled = time.monotonic()
            old.stop()
            status = await old.exited()
            log = old.text()
            handed = re.search(r"rooms_handed_over=(\d+)", log)
            restarts.append({"replica": old.name, "exit": status, "rooms_handed_over": int(handed.group(1)) if handed else None,
                             "drain_s": round(time.monotonic() - signalled, 2)})
            # Everyone back before the next one goes (kubectl waits for the new pod's readiness only; this is stricter).
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(not m.attached and "never came back" not in m.failures for m in members):
                await asyncio.sleep(0.1)
            print(f"[rolling] {old.name} replaced: {restarts[-1]}", file=sys.stderr)
            await asyncio.sleep(args.settle)

        run.stopping = True
        for task in chatters:
            await task
        await asyncio.sleep(1)
        for member in members:
            if member.ws is not None:
                await member.ws.close()
        await asyncio.gather(*watchers, return_exceptions=True)

        returns = [r for m in members for r in m.returns]
        codes = {}
        for m in members:
            for code, _ in m.closes[:-1]:  # the last close is ours, at the end
                codes[str(code)] = codes.get(str(code), 0) + 1
        lost = 0
        for m in members:
            for interval in m.intervals:
                if len(interval) > 1:
                    lost += (max(interval) - min(interval) + 1) - len(set(interval))
        failures = [f for m in members for f in m.failures if not f.startswith("reconnect:")]
        retries = sum(1 for m in members for f in m.failures if f.startswith("reconnect:"))
        closed_rooms = sum(1 for room in run.rooms if any(m.room_closed for m in room))
        logs = "".join(p.text() for p in processes)
        report = {
            "replicas": args.replicas, "rooms": len(run.rooms), "members": len(members), "backoff_s": args.backoff,
            "chat_interval_s": args.chat_interval, "restarts": restarts, "close_codes": codes,
            "reconnects": len(returns), "reconnect_retries": retries,
            "close_to_room_state_s": {"p50": percentile(returns, 0.5), "p99": percentile(returns, 0.99), "max": max(returns) if returns else None},
            "rooms_closed": closed_rooms, "room_closed_messages": sum(m.room_closed for m in members),
            "messages_lost": lost, "chats_sent": sum(run.sent.values()),
            "failures": failures[:20], "failure_count": len(failures),
            "taken_over": logs.count("Room taken over from the store"),
            "served_through_owner": logs.count("Connection served by the room's owner"),
        }
    finally:
        for p in processes:
            p.stop(signal.SIGKILL)
        if cluster:
            subprocess.run([os.path.join(ROOT, "scripts/pg_throwaway.sh"), "stop", cluster], check=False)
            shutil.rmtree(cluster, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    ok = report and report["rooms_closed"] == 0 and report["failure_count"] == 0 and report["messages_lost"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
