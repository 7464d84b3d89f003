#!/usr/bin/env bash
# The transport benchmark of BENCHMARKS.md § Transport: the same owp-bench against two server
# binaries in one sitting (the machines are noisy: before and after are only comparable side by
# side), every server a fresh process on 127.0.0.1.
#
#   OLD=/path/to/old/owp-server NEW=/path/to/new/owp-server BENCH=/path/to/owp-bench \
#     scripts/bench_transport.sh
#
# Runs, for each binary: idle connections (10 000 in rooms of 10) without and with
# permessage-deflate, 19 000 with half of them deflating, a connect storm (10 000 within ~2 s),
# the compression ratio on party traffic, and PARTY_RUNS runs of `party` at 10 000 connections. Reports go to RESULTS (default
# bench/results/transport/), one JSON + Markdown per run, named <label>-<scenario>.
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=${OLD:?the previous server binary}
NEW=${NEW:?the new server binary}
BENCH=${BENCH:?owp-bench}
RESULTS=${RESULTS:-bench/results/transport}
PORT=${PORT:-39200}
PARTY_RUNS=${PARTY_RUNS:-3}
ONLY=${ONLY:-"idle deflate big storm ratio party"}
QUIET_WAIT=${QUIET_WAIT:-180}  # longest wait (s) for a quiet machine before each run; 0 = don't wait
mkdir -p "$RESULTS"
LOGS=$(mktemp -d)
source scripts/lib/quiet.sh

PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

start_server() {
  local bin=$1; shift
  "$bin" --host 127.0.0.1 --port "$PORT" --max-connections 20000 --max-connections-per-ip 20000 \
    --max-tcp-connections 19500 --log-level warning "$@" >"$LOGS/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "server $bin did not start" >&2
  cat "$LOGS/server.log" >&2
  exit 1
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

# run LABEL NAME owp-bench-arguments…: one fresh server, once the machine is quiet, one run; its
# /metrics at the end is kept.
run() {
  local label=$1 name=$2; shift 2
  local bin; bin=$([[ $label == before ]] && echo "$OLD" || echo "$NEW")
  start_server "$bin"
  wait_quiet "$QUIET_WAIT" bench_transport
  echo "== $label $name: $*" >&2
  "$BENCH" "$@" --url "ws://127.0.0.1:$PORT/ws" --label "$label $name" --json "$RESULTS/$label-$name.json" \
    --markdown "$RESULTS/$label-$name.md" --progress 0 --allow-errors >/dev/null || echo "$label $name failed" >&2
  curl -fs "http://127.0.0.1:$PORT/metrics" >"$RESULTS/$label-$name.metrics" || true
  stop_server
}

cat /proc/loadavg >"$RESULTS/loadavg-start.txt"
for scenario in $ONLY; do
  for label in before after; do
    case $scenario in
    idle) run "$label" idle-10000 connections --count 10000 --room-size 10 --ramp 2000 --concurrency 128 --hold 15 ;;
    deflate) run "$label" deflate-10000 connections --count 10000 --room-size 10 --ramp 2000 --concurrency 128 --hold 15 --deflate-fraction 1 ;;
    big) run "$label" half-deflate-19000 connections --count 19000 --room-size 10 --ramp 2000 --concurrency 128 --hold 15 --deflate-fraction 0.5 ;;
    storm) run "$label" storm-10000 connections --count 10000 --room-size 0 --ramp 100000 --concurrency 2048 --hold 5 ;;
    # The real message mix (party traffic) with every client deflating: wire bytes sent over
    # message bytes sent (owp_websocket_sent_bytes_total / owp_message_sent_bytes_total).
    ratio) run "$label" ratio-1000 party --rooms 100 --members 10 --duration 30 --warmup 3 --ramp 1000 --setup-concurrency 16 --deflate-fraction 1 ;;
    party)
      for i in $(seq "$PARTY_RUNS"); do
        run "$label" "party-10000-run$i" party --rooms 1000 --members 10 --duration 40 --warmup 5 --ramp 1000 --setup-concurrency 16
      done
      ;;
    esac
  done
done
cat /proc/loadavg >"$RESULTS/loadavg-end.txt"
echo "reports in $RESULTS" >&2
