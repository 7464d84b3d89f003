#!/usr/bin/env bash
# The cost of the shared store (DATABASE_URL, PostgreSQL): the same party load against the same
# server binary without a database (A, "nodb") and with one (B, "db"), interleaved A B A B …
# (the machine is noisy: only side-by-side runs compare). Every run is a fresh server process.
#
#   SERVER=/path/to/owp-server BENCH=/path/to/owp-bench scripts/bench_store.sh
#
# Env (defaults): SERVER (/work/rel-head/release/owp-server), BENCH (/work/rel-head/release/owp-bench),
# RUNS (3, of each), ROOMS (300, of MEMBERS=10), RESULTS (bench/results/store), PORT (39300),
# DURATION (40), WARMUP (5), PGDIR (/tmp/owp-bench-pg: a throw-away cluster, started and removed
# here), QUIET_WAIT (30: longest wait in s for a quiet machine before each run; 0 = none).
#
# Per run, in RESULTS: <label>.json / <label>.md (owp-bench), <label>.metrics (the server's /metrics
# just before SIGTERM), <label>.run.json (CPU seconds, xact_commit before/after, wall time).
# At the end: summary.md (one table) from all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER=${SERVER:-/work/rel-head/release/owp-server}
BENCH=${BENCH:-/work/rel-head/release/owp-bench}
RUNS=${RUNS:-3}
ROOMS=${ROOMS:-300}
MEMBERS=${MEMBERS:-10}
RESULTS=${RESULTS:-bench/results/store}
PORT=${PORT:-39300}
DURATION=${DURATION:-40}
WARMUP=${WARMUP:-5}
PGDIR=${PGDIR:-/tmp/owp-bench-pg}
QUIET_WAIT=${QUIET_WAIT:-30}
FIRST=${FIRST:-1}  # number of the first run pair (to add runs to an existing RESULTS)
GEN_TIMEOUT=${GEN_TIMEOUT:-$((DURATION + 120))}  # owp-bench gets SIGINT after this many s (it can hang in set-up)
mkdir -p "$RESULTS"
source scripts/lib/quiet.sh
LOGS=$(mktemp -d)

SERVER_PID=""
URL=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ -n "$URL" ]]; then bash scripts/pg_throwaway.sh stop "$PGDIR" || true; rm -rf "$PGDIR" "$PGDIR".*; fi
}
trap cleanup EXIT

if ss -ltn | awk '{print $4}' | grep -q ":$PORT\$"; then echo "port $PORT is in use" >&2; exit 1; fi
rm -rf "$PGDIR" "$PGDIR".*
URL=$(bash scripts/pg_throwaway.sh start "$PGDIR")
echo "PostgreSQL: ${URL//:owp-test-*@/:***@}" >&2

xact() { psql "$URL" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname='owp'"; }
metric() { awk -v name="$1" '$1 == name { print $2 }' "$2"; }

start_server() {  # start_server LABEL [db]
  if [[ ${2:-} == db ]]; then
    DATABASE_URL="$URL" "$SERVER" --host 127.0.0.1 --port "$PORT" --max-connections 20000 \
      --max-connections-per-ip 20000 --log-level warning >"$RESULTS/$1.server.log" 2>&1 &
  else
    env -u DATABASE_URL "$SERVER" --host 127.0.0.1 --port "$PORT" --max-connections 20000 \
      --max-connections-per-ip 20000 --log-level warning >"$RESULTS/$1.server.log" 2>&1 &
  fi
  SERVER_PID=$!
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not become ready ($1)" >&2
  cat "$RESULTS/$1.server.log" >&2
  exit 1
}

stop_server() {  # SIGTERM, wait for the exit (at most 60 s, then SIGKILL)
  local t0=$SECONDS
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    if ((SECONDS - t0 > 60)); then echo "server did not exit in 60 s; SIGKILL" >&2; kill -KILL "$SERVER_PID"; fi
    sleep 0.1
  done
  wait "$SERVER_PID" 2>/dev/null && STOP_RC=0 || STOP_RC=$?
  STOP_SECONDS=$((SECONDS - t0))
  SERVER_PID=""
}

run() {  # run LABEL nodb|db
  local label=$1 mode=$2 x0="" x1="" x2="" t0 t1 rc
  start_server "$label" "$mode"
  if [[ $mode == db ]]; then psql "$URL" -qc "TRUNCATE owp_rooms CASCADE" >/dev/null; fi
  wait_quiet "$QUIET_WAIT" bench_store
  [[ $mode == db ]] && x0=$(xact)
  cat /proc/loadavg >"$LOGS/load"
  echo "== $label" >&2
  t0=$(date +%s.%N)
  timeout -s INT -k 10 "$GEN_TIMEOUT" "$BENCH" party --url "ws://127.0.0.1:$PORT/ws" --rooms "$ROOMS" --members "$MEMBERS" \
    --duration "$DURATION" --warmup "$WARMUP" --ramp 500 --setup-concurrency 16 \
    --json "$RESULTS/$label.json" --markdown "$RESULTS/$label.md" --label "$label" \
    --progress 0 --allow-errors >"$RESULTS/$label.bench.log" 2>&1 && rc=0 || rc=$?
  t1=$(date +%s.%N)
  [[ $mode == db ]] && x1=$(xact)
  ((rc == 0)) || echo "$label: owp-bench exited $rc" >&2
  curl -fs "http://127.0.0.1:$PORT/metrics" >"$RESULTS/$label.metrics" || echo "$label: /metrics failed" >&2
  local cpu; cpu=$(metric process_cpu_seconds_total "$RESULTS/$label.metrics")
  stop_server
  # pg_stat_database lags (backends report at most once a second, idle ones within 10 s):
  # a second reading after the server is gone, for comparison only.
  if [[ $mode == db ]]; then sleep 11; x2=$(xact); fi
  jq -n --arg lbl "$label" --arg mode "$mode" --arg cpu "$cpu" --arg x0 "$x0" --arg x1 "$x1" \
    --arg x2 "$x2" --arg t0 "$t0" --arg t1 "$t1" --argjson rc "$rc" --argjson stop_rc "$STOP_RC" \
    --argjson stop_s "$STOP_SECONDS" --arg load "$(cat "$LOGS/load")" \
    '{"label": $lbl, "mode": $mode, server_cpu_seconds: ($cpu | tonumber? // null),
      xact_commit_before: ($x0 | tonumber? // null), xact_commit_after: ($x1 | tonumber? // null),
      xact_commit_after_stop_settled: ($x2 | tonumber? // null),
      started_at: ($t0 | tonumber), generator_wall_seconds: (($t1 | tonumber) - ($t0 | tonumber)), bench_rc: $rc,
      server_exit_status: $stop_rc, server_stop_seconds: $stop_s, loadavg_before: $load}' \
    >"$RESULTS/$label.run.json"
}

for i in $(seq "$FIRST" "$((FIRST + RUNS - 1))"); do
  run "nodb-run$i" nodb
  run "db-run$i" db
done

python3 - "$RESULTS" "$RUNS" "$SERVER" "$BENCH" "$ROOMS" "$MEMBERS" "$DURATION" "$WARMUP" "$PORT" <<'EOF'
import json, re, sys, os
results, runs, server, bench, rooms, members, duration, warmup, port = sys.argv[1:]
ops = ["migrate", "claim", "renew", "write", "release", "locate", "ping"]

def parse(path):
    samples = []
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples

def quantile(buckets, q):
    # buckets: [(le, cumulative count)] sorted, +Inf last; linear interpolation inside a bucket.
    total = buckets[-1][1]
    if total == 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le  # beyond the last finite bound: report that bound (a lower limit)
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c) if c > prev_c else le
        prev_le, prev_c = le, c
    return prev_le

rows = []
labels = sorted((f[:-len(".run.json")] for f in os.listdir(results) if f.endswith(".run.json")),
                key=lambda l: json.load(open(f"{results}/{l}.run.json"))["started_at"])
for label in labels:
        run = json.load(open(f"{results}/{label}.run.json"))
        row = {"label": label}
        try:
            rep = json.load(open(f"{results}/{label}.json"))["result"]
            d = rep["latency"]["delivery"]
            mt = rep["metrics"]
            row.update(p50=d["p50_ms"], p99=d["p99_ms"], p999=d["p999_ms"], max=d["max_ms"],
                       deliveries=f'{mt["deliveries_received"]}/{mt["deliveries_expected"]} (latency samples {d["count"]})',
                       errors=f'{rep["errorTotal"]}' + (f' {rep["errors"]}' if rep["errors"] else "")
                              + (f', missing {mt["deliveries_missing"]}' if mt["deliveries_missing"] else ""))
        except Exception as e:
            row.update(p50="-", p99="-", p999="-", max="-", deliveries="-",
                       errors=f'no report: owp-bench exited {run["bench_rc"]} after {run["generator_wall_seconds"]:.1f} s')
        row["cpu"] = run["server_cpu_seconds"]
        row["tps"] = "–"; row["calls"] = "–"; row["write_p99"] = "–"
        if label.startswith("db"):
            if run["xact_commit_before"] is not None and run["xact_commit_after"] is not None:
                dx = run["xact_commit_after"] - run["xact_commit_before"]
                row["tps"] = f'{dx / run["generator_wall_seconds"]:.1f} ({dx} in {run["generator_wall_seconds"]:.1f} s)'
            samples = parse(f"{results}/{label}.metrics")
            counts, errs, p99s, means = {}, {}, {}, {}
            for op in ops:
                c = [v for n, l, v in samples if n == "owp_store_call_seconds_count" and l.get("operation") == op]
                e = [v for n, l, v in samples if n == "owp_store_errors_total" and l.get("operation") == op]
                b = sorted(((float(l["le"]), v) for n, l, v in samples
                            if n == "owp_store_call_seconds_bucket" and l.get("operation") == op),
                           key=lambda x: x[0])
                sm = [v for n, l, v in samples if n == "owp_store_call_seconds_sum" and l.get("operation") == op]
                if c and c[0] > 0:
                    counts[op] = int(c[0])
                    means[op] = sm[0] / c[0] if sm else None
                    p99s[op] = quantile(b, 0.99) if b else None
                if e and e[0] > 0:
                    errs[op] = int(e[0])
            row["calls"] = ", ".join(f"{op} {n}" for op, n in counts.items())
            row["calls"] += "; store errors " + (", ".join(f"{op} {n}" for op, n in errs.items()) if errs else "0")
            row["write_p99"] = f'{p99s["write"] * 1000:.3f} ms' if p99s.get("write") is not None else "-"
            row["p99_all"] = {op: (round(v * 1000, 3) if v is not None else None) for op, v in p99s.items()}
            row["mean_all"] = {op: (round(v * 1000, 3) if v is not None else None) for op, v in means.items()}
        rows.append(row)

cmd_server = f"{server} --host 127.0.0.1 --port {port} --max-connections 20000 --max-connections-per-ip 20000 --log-level warning"
cmd_bench = (f"{bench} party --url ws://127.0.0.1:{port}/ws --rooms {rooms} --members {members} --duration {duration} "
             f"--warmup {warmup} --ramp 500 --setup-concurrency 16 --json {results}/<label>.json "
             f"--markdown {results}/<label>.md --label <label> --progress 0 --allow-errors (under timeout -s INT <duration+120 s>)")
out = ["# Shared store (PostgreSQL) cost — party, %s rooms × %s" % (rooms, members), "",
       "Runs interleaved A (no database) / B (DATABASE_URL to a throw-away PostgreSQL 15, fsync=off, same machine), a fresh server per run.", "",
       "Server: `%s` (B: with env `DATABASE_URL=postgres://owp:…@127.0.0.1:PORT/owp?sslmode=disable`; before each B run `TRUNCATE owp_rooms CASCADE`)" % cmd_server, "",
       "Generator: `%s`" % cmd_bench, "",
       "Latencies in ms (generator's delivery latency after warm-up). Server CPU s: `process_cpu_seconds_total` just before SIGTERM (whole server lifetime). "
       "DB transactions/s: Δ`xact_commit` of database owp, read just before and just after the generator, over the generator's wall time (set-up included). "
       "Store calls: `owp_store_call_seconds_count` by operation just before SIGTERM. Write p99: from the `owp_store_call_seconds{operation=\"write\"}` histogram, linear interpolation in the bucket.", "",
       "| label | delivery p50 | p99 | p99.9 | max | deliveries | errors | server CPU s | DB transactions/s | store calls by operation (count) | write p99 |",
       "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    out.append(f'| {r["label"]} | {r["p50"]} | {r["p99"]} | {r["p999"]} | {r["max"]} | {r["deliveries"]} | {r["errors"]} | {r["cpu"]} | {r["tps"]} | {r["calls"]} | {r["write_p99"]} |')
out.append("")
out.append("Store calls by operation, p99 (ms, bucket interpolation; bounds 0.5, 1, 2.5, 5, 10, 25, 50, 100 ms …) / mean (ms, _sum/_count):")
out.append("")
for r in rows:
    if "p99_all" in r:
        out.append(f'- {r["label"]}: ' + ", ".join(f"{op} p99 {v} / mean {r['mean_all'][op]}" for op, v in r["p99_all"].items()))
open(f"{results}/summary.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
