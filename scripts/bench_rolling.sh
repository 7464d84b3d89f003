#!/usr/bin/env bash
# A rolling restart of three replicas under a party, driven from Swift (`owp-bench rolling`):
# the generator starts the replicas on one throw-away PostgreSQL, spreads ROOMS rooms of
# MEMBERS members over them at random, and replaces each replica in turn (the new one ready
# and on the bus, then SIGTERM to the old one) while every member reconnects after a 1 s
# back-off and resumes by token. Interleaved runs of each binary, an emptied database each time.
#
#   BEFORE=/path/owp-server AFTER=/path/owp-server BENCH=/path/owp-bench scripts/bench_rolling.sh
#
# Env (defaults): BEFORE, AFTER (required; the same path twice measures one binary), BENCH
# (/work/rel-head/release/owp-bench), RUNS (3, of each), ROOMS (300), MEMBERS (10), RESULTS
# (bench/results/rolling-swift), PORT (29600, and the next 5: below the ephemeral ports the members connect from), PGDIR (/tmp/owp-bench-rolling-pg).
#
# Per run, in RESULTS: <label>.json / .md (owp-bench) and <label>.logs/ (the six replicas'
# logs, git-ignored). At the end: summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${BEFORE:?the server binary before}
AFTER=${AFTER:?the server binary after}
BENCH=${BENCH:-/work/rel-head/release/owp-bench}
RUNS=${RUNS:-3}
ROOMS=${ROOMS:-300}
MEMBERS=${MEMBERS:-10}
RESULTS=${RESULTS:-bench/results/rolling-swift}
PORT=${PORT:-29600}
PGDIR=${PGDIR:-/tmp/owp-bench-rolling-pg}
mkdir -p "$RESULTS"

source scripts/lib/bench_pg.sh

run() {  # run LABEL SERVER
  empty_store
  rm -rf "$RESULTS/$1.logs"
  DATABASE_URL="$URL" timeout 600 "$BENCH" rolling --server "$2" --replicas 3 --rooms "$ROOMS" --members "$MEMBERS" \
    --base-port "$PORT" --logs "$RESULTS/$1.logs" --progress 0 --label "$1" \
    --json "$RESULTS/$1.json" --markdown "$RESULTS/$1.md" --allow-errors >"$RESULTS/$1.bench.log" 2>&1 || true
  # A generator that timed out leaves the replicas it started.
  pkill -KILL -f "^$2 --host 127.0.0.1 --port" 2>/dev/null || true
}

for ((r = 1; r <= RUNS; r++)); do
  run "before-$r" "$BEFORE"
  run "after-$r" "$AFTER"
done

{
  echo "| run | members back in their seat | reconnects (1012) | rooms closed | chats missed: silently / in flight at the sender's close | close → resumed p50 / p99 / max (ms) | of it: upgrade p50 / p99, resume → room_state p50 / p99 (ms) | failed attempts | resumed after an unanswered resume | drains (s) |"
  echo "| --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | --- |"
  for f in "$RESULTS"/before-*.bench.log "$RESULTS"/after-*.bench.log; do
    [[ -e $f ]] || continue
    label=$(basename "$f" .bench.log)
    python3 - "$RESULTS/$label.json" "$label" <<'PY'
import json, os, sys
path, label = sys.argv[1], sys.argv[2]
if not os.path.exists(path):
    print(f"| {label} | did not finish (see {label}.bench.log) | | | | | | | |")
    sys.exit()
r = json.load(open(path))["result"]
m = r.get("metrics", {})
latency = r.get("latency") or {}
def ms(series, k):
    v = latency.get(series, {}).get(k)
    return "-" if v is None else f"{v:.0f}"
i = lambda k: int(m.get(k, 0))
drains = next((n.split(": ", 1)[1] for n in r.get("notes", []) if n.startswith("drains")), "-")
back = "close_to_resumed_room_state"
print(f'| {label} | {i("members_back_in_their_seat")} of {i("members")} | {i("reconnects")} ({i("closes_1012")}) | {i("rooms_closed_seen")} '
      f'| {i("chats_missed_silently")} / {i("chats_missed_in_flight_at_the_senders_close")} of {i("chats_sent")} '
      f'| {ms(back, "p50_ms")} / {ms(back, "p99_ms")} / {ms(back, "max_ms")} '
      f'| {ms("reconnect_upgrade", "p50_ms")} / {ms("reconnect_upgrade", "p99_ms")}, {ms("resume_to_room_state", "p50_ms")} / {ms("resume_to_room_state", "p99_ms")} '
      f'| {i("failed_attempts")} | {i("resumed_after_an_unanswered_resume")} | {drains} |')
PY
  done
} >"$RESULTS/summary.md"
cat "$RESULTS/summary.md"
