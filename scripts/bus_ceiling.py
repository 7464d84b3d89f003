#!/usr/bin/env python3
"""The ceiling of PostgreSQL's LISTEN/NOTIFY on this machine: the bus between replicas
(PROTOCOL.md §14; ReplicaBus sends one NOTIFY per batch of frames to one replica).

SENDERS connections (as many replicas sending) each run `SELECT pg_notify(channel, payload)`
back to back, one at a time as ReplicaBus's sender does, for DURATION seconds; LISTENERS
connections (as many replicas listening) each LISTEN on a channel of their own, and the
senders spread their notifications over the listeners' channels. PAYLOAD bytes per
notification (a batch: ReplicaBus's are 200 B - 7.8 KB). Counted: notifications sent and
received per second, and the receive latency (sent timestamp in the payload).

  python3 scripts/bus_ceiling.py --url postgres://… [--senders 3 --listeners 3 --payload 600 --duration 10]

Needs asyncpg (pip install asyncpg). Prints a JSON line.
"""
import argparse, asyncio, json, statistics, time

import asyncpg


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--listeners", type=int, default=3)
    parser.add_argument("--payload", type=int, default=600)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()

    channels = [f"owp_ceiling_{i}" for i in range(args.listeners)]
    latencies = []
    received = [0]

    def on_notify(connection, pid, channel, payload):
        received[0] += 1
        sent = float(payload.split(" ", 1)[0])
        latencies.append(time.time() - sent)

    listeners = []
    for channel in channels:
        connection = await asyncpg.connect(args.url)
        await connection.add_listener(channel, on_notify)
        listeners.append(connection)

    stop = time.monotonic() + args.duration
    sent = [0]
    filler = "x" * max(0, args.payload - 20)

    async def sender(index):
        connection = await asyncpg.connect(args.url)
        statement = await connection.prepare("SELECT pg_notify($1, $2)")
        n = 0
        while time.monotonic() < stop:
            channel = channels[(index + n) % len(channels)]
            await statement.fetchval(channel, f"{time.time():.6f} {filler}")
            n += 1
            sent[0] += 1
        await connection.close()

    started = time.monotonic()
    await asyncio.gather(*(sender(i) for i in range(args.senders)))
    elapsed = time.monotonic() - started
    await asyncio.sleep(1)  # the last ones arrive
    for connection in listeners:
        await connection.close()
    latencies.sort()
    def q(p):
        return round(latencies[min(len(latencies) - 1, int(p * (len(latencies) - 1)))] * 1000, 2) if latencies else None
    print(json.dumps({
        "senders": args.senders, "listeners": args.listeners, "payload_bytes": args.payload, "duration_s": round(elapsed, 1),
        "sent_per_s": round(sent[0] / elapsed), "received_per_s": round(received[0] / elapsed), "lost": sent[0] - received[0],
        "latency_ms": {"p50": q(0.5), "p99": q(0.99), "max": q(1.0)},
        "payload_mb_per_s": round(sent[0] * args.payload / elapsed / 1e6, 2),
    }))


if __name__ == "__main__":
    asyncio.run(main())
