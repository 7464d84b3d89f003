#!/usr/bin/env bash
# A cross-replica reconnect storm (PROTOCOL.md §13, §14): two replicas share one PostgreSQL;
# `owp-bench resume` builds ROOMS rooms of MEMBERS members spread over both (each room owned
# by its host's replica), resets every connection at once, and brings every member back
# through the *other* replica after a 1 s delay, so that most resumes name a room that replica
# does not own and are relayed to the owner. The generator is Swift (owp-bench), not Python,
# so that the storm measures the servers rather than the driver. Interleaved runs of each
# binary, fresh processes and an emptied database each time.
#
#   BEFORE=/path/owp-server AFTER=/path/owp-server BENCH=/path/owp-bench scripts/bench_storm.sh
#
# Env (defaults): BEFORE, AFTER (required; the same path twice measures one binary), BENCH
# (/work/rel-head/release/owp-bench), RUNS (3, of each), ROOMS (300), MEMBERS (10), RESULTS
# (bench/results/storm), PORT (39500), PGDIR (/tmp/owp-bench-storm-pg, started and removed).
#
# Per run, in RESULTS: <label>.json / .md (owp-bench) and <label>.calls (database calls of
# both replicas during the run, rooms built and storm, by operation, from
# owp_store_call_seconds_count). At the end: summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${BEFORE:?the server binary before}
AFTER=${AFTER:?the server binary after}
BENCH=${BENCH:-/work/rel-head/release/owp-bench}
RUNS=${RUNS:-3}
ROOMS=${ROOMS:-300}
MEMBERS=${MEMBERS:-10}
RESULTS=${RESULTS:-bench/results/storm}
PORT=${PORT:-39500}
PGDIR=${PGDIR:-/tmp/owp-bench-storm-pg}
mkdir -p "$RESULTS"

source scripts/lib/bench_pg.sh

# calls PORT: "operation count" lines of owp_store_call_seconds_count.
calls() {
  curl -fsS "http://127.0.0.1:$1/metrics" | sed -n 's/^owp_store_call_seconds_count{operation="\([a-z]*\)"} \([0-9.e+]*\)$/\1 \2/p'
}

run() {  # run LABEL SERVER
  empty_store
  local i
  for i in 0 1; do
    DATABASE_URL="$URL" "$2" --host 127.0.0.1 --port $((PORT + i)) --max-connections 20000 \
      --max-connections-per-ip 20000 --log-level warning >"$RESULTS/$1.r$i.log" 2>&1 &
    track_server $!
  done
  for i in 0 1; do
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$((PORT + i))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  sleep 2  # both listening on the bus and in the directory
  { calls $PORT; calls $((PORT + 1)); } >"$RESULTS/$1.calls.before"
  # A member whose join is refused waits forever in owp-bench's set-up: bounded here.
  timeout 300 "$BENCH" resume --url "ws://127.0.0.1:$PORT/ws" --replica "ws://127.0.0.1:$((PORT + 1))/ws" \
    --rooms "$ROOMS" --members "$MEMBERS" --progress 0 --label "$1" \
    --json "$RESULTS/$1.json" --markdown "$RESULTS/$1.md" --allow-errors >"$RESULTS/$1.bench.log" 2>&1 || true
  { calls $PORT; calls $((PORT + 1)); } >"$RESULTS/$1.calls.after"
  awk 'NR == FNR { before[$1] += $2; next } { after[$1] += $2 } END { for (op in after) printf "%s %d\n", op, after[op] - before[op] }' \
    "$RESULTS/$1.calls.before" "$RESULTS/$1.calls.after" | sort >"$RESULTS/$1.calls"
  stop_servers
}

for ((r = 1; r <= RUNS; r++)); do
  run "before-$r" "$BEFORE"
  run "after-$r" "$AFTER"
done

{
  echo "| run | members back | resume p50 / p99 / max (ms) | all back after (s) | database calls (locate / claim) |"
  echo "| --- | ---: | --- | ---: | --- |"
  for f in "$RESULTS"/before-*.calls "$RESULTS"/after-*.calls; do
    [[ -e $f ]] || continue
    label=$(basename "$f" .calls)
    line=$(python3 - "$RESULTS/$label.json" <<'PY'
import json, os, sys
if not os.path.exists(sys.argv[1]):
    print("set-up did not finish (a member refused, see the servers' metrics) | - | -")
    sys.exit()
r = json.load(open(sys.argv[1]))["result"]
m = r.get("metrics", {})
lat = (r.get("latency") or {}).get("resume", {})
def ms(k):
    v = lat.get(k)
    return "-" if v is None else f"{v:.0f}"
print(f'{int(m.get("seats_back", 0))} of {int(m.get("members", 0))} | {ms("p50_ms")} / {ms("p99_ms")} / {ms("max_ms")} | {m.get("seconds_until_all_back", 0):.2f}')
PY
)
    locate=$(awk '$1 == "locate" { print $2 }' "$RESULTS/$label.calls"); claim=$(awk '$1 == "claim" { print $2 }' "$RESULTS/$label.calls")
    echo "| $label | $line | ${locate:-0} / ${claim:-0} |"
  done
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
