#!/usr/bin/env bash
# Several replicas and one PostgreSQL on one machine (PROTOCOL.md §14): the same party load
# against one server without a database ("one", the embedded default) and against REPLICAS
# servers sharing a database, the members of every room spread over them at random ("spread",
# owp-bench --replica), interleaved one spread one spread … (the machine is noisy: only
# side-by-side runs compare). Every run has fresh server processes and an emptied database.
#
#   SERVER=/path/to/owp-server BENCH=/path/to/owp-bench scripts/bench_replicas.sh
#
# With AFTER=/path/to/another/owp-server, each round also runs the spread load on that binary
# ("after", right after the first one's spread run), for a before / after in one sitting;
# ONE=0 leaves the one-replica runs out.
#
# Env (defaults): SERVER (/work/rel-head/release/owp-server), BENCH (/work/rel-head/release/owp-bench),
# REPLICAS (3), RUNS (3, of each), ROOMS (300, of MEMBERS=10), RESULTS (bench/results/replicas),
# PORT (39400: the first replica; the others follow), DURATION (40), WARMUP (5), PGDIR
# (/tmp/owp-bench-replicas-pg, started and removed here), QUIET_WAIT (20).
#
# Per run, in RESULTS: <label>.json / .md (owp-bench), <label>.r<N>.metrics (each replica's
# /metrics before SIGTERM), <label>.run.json (CPU seconds of all replicas, database commits,
# notifications). At the end: summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER=${SERVER:-/work/rel-head/release/owp-server}
AFTER=${AFTER:-}
ONE=${ONE:-1}
BENCH=${BENCH:-/work/rel-head/release/owp-bench}
REPLICAS=${REPLICAS:-3}
RUNS=${RUNS:-3}
ROOMS=${ROOMS:-300}
MEMBERS=${MEMBERS:-10}
RESULTS=${RESULTS:-bench/results/replicas}
PORT=${PORT:-39400}
DURATION=${DURATION:-40}
WARMUP=${WARMUP:-5}
PGDIR=${PGDIR:-/tmp/owp-bench-replicas-pg}
QUIET_WAIT=${QUIET_WAIT:-20}
GEN_TIMEOUT=${GEN_TIMEOUT:-$((DURATION + 120))}
mkdir -p "$RESULTS"
source scripts/lib/quiet.sh

source scripts/lib/bench_pg.sh  # $URL; the servers in PIDS are stopped on exit
xact() { psql "$URL" -Atqc "SELECT xact_commit FROM pg_stat_database WHERE datname='owp'"; }
metric() { awk -v name="$1" '$1 == name { print $2 }' "$2"; }

start() {  # start LABEL COUNT db|nodb
  PIDS=()
  local i
  for ((i = 0; i < $2; i++)); do
    if [[ $3 == db ]]; then
      DATABASE_URL="$URL" "${BINARY:-$SERVER}" --host 127.0.0.1 --port $((PORT + i)) --max-connections 20000 \
        --max-connections-per-ip 20000 --log-level warning >"$RESULTS/$1.r$i.log" 2>&1 &
    else
      env -u DATABASE_URL "$SERVER" --host 127.0.0.1 --port $((PORT + i)) --max-connections 20000 \
        --max-connections-per-ip 20000 --log-level warning >"$RESULTS/$1.r$i.log" 2>&1 &
    fi
    track_server $!
  done
  for ((i = 0; i < $2; i++)); do
    for _ in $(seq 300); do
      curl -fs "http://127.0.0.1:$((PORT + i))/readyz" >/dev/null && break
      sleep 0.1
    done
  done
  sleep 2  # every bus listener up and heard of (the heartbeat runs every second)
}

run() {  # run LABEL COUNT db|nodb
  local label=$1 count=$2 mode=$3 x0="" x1="" rc i cpu=0 replicas=()
  start "$label" "$count" "$mode"
  # The previous run's rooms out of the way (the replicas migrated the schema at start).
  if [[ $mode == db ]]; then psql "$URL" -qc "TRUNCATE owp_rooms CASCADE; TRUNCATE owp_bus_spill" >/dev/null; fi
  for ((i = 1; i < count; i++)); do replicas+=(--replica "ws://127.0.0.1:$((PORT + i))/ws"); done
  wait_quiet "$QUIET_WAIT" bench_replicas
  [[ $mode == db ]] && x0=$(xact)
  local load; load=$(cat /proc/loadavg)
  echo "== $label" >&2
  timeout -s INT -k 10 "$GEN_TIMEOUT" "$BENCH" party --url "ws://127.0.0.1:$PORT/ws" "${replicas[@]}" --rooms "$ROOMS" --members "$MEMBERS" \
    --duration "$DURATION" --warmup "$WARMUP" --ramp 500 --setup-concurrency 16 \
    --json "$RESULTS/$label.json" --markdown "$RESULTS/$label.md" --label "$label" \
    --progress 0 --allow-errors >"$RESULTS/$label.bench.log" 2>&1 && rc=0 || rc=$?
  [[ $mode == db ]] && x1=$(xact)
  ((rc == 0)) || echo "$label: owp-bench exited $rc" >&2
  for ((i = 0; i < count; i++)); do
    curl -fs "http://127.0.0.1:$((PORT + i))/metrics" >"$RESULTS/$label.r$i.metrics" || echo "$label: /metrics of r$i failed" >&2
    cpu=$(python3 -c "print($cpu + $(metric process_cpu_seconds_total "$RESULTS/$label.r$i.metrics"))")
  done
  stop_servers
  jq -n --arg lbl "$label" --arg mode "$mode" --argjson count "$count" --arg cpu "$cpu" --arg x0 "$x0" --arg x1 "$x1" \
    --argjson rc "$rc" --arg load "$load" \
    '{"label": $lbl, "mode": $mode, replicas: $count, server_cpu_seconds: ($cpu | tonumber),
      xact_commit_before: ($x0 | tonumber? // null), xact_commit_after: ($x1 | tonumber? // null),
      bench_rc: $rc, loadavg_before: $load}' >"$RESULTS/$label.run.json"
}

for i in $(seq 1 "$RUNS"); do
  if [[ $ONE != 0 ]]; then run "one-run$i" 1 nodb; fi
  run "spread-run$i" "$REPLICAS" db
  if [[ -n $AFTER ]]; then BINARY=$AFTER run "after-run$i" "$REPLICAS" db; fi
done

python3 - "$RESULTS" "$RUNS" "$REPLICAS" "$ROOMS" "$MEMBERS" "$DURATION" <<'EOF'
import glob, json, os, re, sys
results, runs, replicas, rooms, members, duration = sys.argv[1:]

def value(path, name):
    total = 0.0
    for line in open(path):
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total

rows = []
for mode in ("one", "spread", "after"):
    for i in range(1, int(runs) + 1):
        label = f"{mode}-run{i}"
        if not os.path.exists(f"{results}/{label}.run.json"):
            continue  # a mode this sitting did not run
        try:
            bench = json.load(open(f"{results}/{label}.json"))
            run = json.load(open(f"{results}/{label}.run.json"))
        except FileNotFoundError:
            rows.append(f"| {label} | (no report) |")
            continue
        latency = bench["result"]["latency"]
        metrics = bench["result"]["metrics"]
        def p(series, q):
            s = latency.get(series)
            return f"{s[q + '_ms']:.2f}" if s else "–"
        def n(series):
            s = latency.get(series)
            return s.get("count", 0) if s else 0
        cross, same = n("delivery_cross_replica"), n("delivery_same_replica")
        share = f"{100 * cross / (cross + same):.0f} %" if cross + same else "–"
        measured = metrics.get("measured_seconds", float(duration))
        paths = sorted(glob.glob(f"{results}/{label}.r*.metrics"))
        notes = sum(value(path, "owp_bus_notifications_received_total") for path in paths)
        frames = sum(value(path, "owp_bus_frames_received_total") for path in paths)
        commits = (run["xact_commit_after"] - run["xact_commit_before"]) if run.get("xact_commit_after") else None
        per_k = 1000 / metrics["connections"] if metrics.get("connections") else 0
        rows.append(
            f"| {label} | {int(metrics.get('connections', 0))} | {p('delivery', 'p50')} | {p('delivery', 'p99')} | {p('delivery', 'p999')} "
            f"| {p('delivery_cross_replica', 'p99')} | {p('delivery_same_replica', 'p99')} | {share} "
            f"| {run['server_cpu_seconds']:.1f} | {(commits / measured * per_k) if commits else 0:.0f} | {notes / measured * per_k:.0f} "
            f"| {frames / measured * per_k:.0f} | {int(metrics.get('deliveries_missing', 0))} | {bench['result'].get('error_total', bench['result'].get('errorTotal', 0))} | {run['loadavg_before'].split()[0]} |")
header = ("| run | connections | delivery p50 ms | p99 ms | p99.9 ms | cross-replica p99 ms | same-replica p99 ms | cross share "
          "| server CPU s (all replicas) | DB commits /s per 1 000 conn. | notifications /s per 1 000 | frames /s per 1 000 | missing | errors | load |")
sep = "|" + "|".join(["---"] * (header.count("|") - 1)) + "|"
with open(f"{results}/summary.md", "w") as out:
    out.write(f"{rooms} rooms × {members}, {duration} s; one = 1 replica without a database, spread = {replicas} replicas + PostgreSQL"
              f"{' (after: the same with AFTER)' if glob.glob(f'{results}/after-run*.run.json') else ''}\n\n")
    out.write(header + "\n" + sep + "\n" + "\n".join(rows) + "\n")
print(open(f"{results}/summary.md").read())
EOF
