#!/usr/bin/env python3
"""Tables for BENCHMARKS.md § Transport from scripts/bench_transport.sh's reports.

    python3 scripts/summarize_transport_bench.py [bench/results/transport]
"""
import json
import re
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/transport")


def report(name):
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def metric_total(name, family):
    path = folder / f"{name}.metrics"
    if not path.exists():
        return None
    total = 0.0
    for line in path.read_text().splitlines():
        if line.startswith(family) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def row(*cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")


print("| run | before | after |")
print("| --- | ---: | ---: |")
for name, what in [
    ("idle-10000", "10 000 idle in rooms of 10, no deflate"),
    ("deflate-10000", "10 000 idle in rooms of 10, all deflate"),
    ("half-deflate-19000", "19 000 idle in rooms of 10, half deflate"),
]:
    cells = []
    for label in ("before", "after"):
        r = report(f"{label}-{name}")
        if not r:
            cells.append("–")
            continue
        m = r["result"]["metrics"]
        cells.append(
            f"{m.get('server_rss_kib_per_connection', 0):.1f} KiB/conn, RSS {m.get('server_rss_mib_after_hold', 0):.0f} MiB, "
            f"{int(m.get('held_at_end', 0))} held, {r['result']['errorTotal']} errors"
        )
    row(what, *cells)

cells = []
for label in ("before", "after"):
    r = report(f"{label}-storm-10000")
    if not r:
        cells.append("–")
        continue
    m, lat = r["result"]["metrics"], r["result"]["latency"].get("handshake", {})
    cells.append(
        f"{int(m.get('held_at_end', 0))} held in {m.get('ramp_seconds', 0):.2f} s, handshake p50 {lat.get('p50_ms', 0):.1f} / p99 {lat.get('p99_ms', 0):.1f} ms, "
        f"{r['result']['errorTotal']} errors"
    )
row("connect storm, 10 000 at once (2 048 in flight)", *cells)

cells = []
for label in ("before", "after"):
    wire = metric_total(f"{label}-ratio-1000", "owp_websocket_sent_bytes_total")
    text = metric_total(f"{label}-ratio-1000", "owp_message_sent_bytes_total")
    cells.append(f"{wire / text:.3f} ({wire / 1e6:.1f} MB on the wire for {text / 1e6:.1f} MB of messages)" if wire and text else "–")
row("party traffic, every client deflating: wire ÷ message bytes", *cells)

print()
print("| party, 1 000 rooms × 10 | delivery p50 | p99 | p99.9 | max | deliveries | errors | server CPU s (whole run) | load at start |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for path in sorted(folder.glob("*-party-10000-run*.json"), key=lambda p: (p.name.split("-")[0] != "before", p.name)):
    r = json.loads(path.read_text())
    d = r["result"]["latency"].get("delivery", {})
    m = r["result"]["metrics"]
    cpu = metric_total(path.stem, "process_cpu_seconds_total") or 0  # the whole run, set-up included
    load = r.get("machine", {}).get("load_average", "")
    row(path.stem, f"{d.get('p50_ms', 0):.2f} ms", f"{d.get('p99_ms', 0):.2f} ms", f"{d.get('p999_ms', 0):.2f} ms", f"{d.get('max_ms', 0):.1f} ms",
        d.get("count", 0), r["result"]["errorTotal"], f"{cpu:.1f}", load)
