#!/usr/bin/env bash
# Runs the published benchmark (BENCHMARKS.md): owp-server and owp-bench as separate processes on
# loopback, every scenario, JSON + Markdown reports in bench/results/, then the chart.
#
#   scripts/run_benchmarks.sh                # everything (~12 minutes on 2 cores)
#   SCRATCH=.build-bench scripts/run_benchmarks.sh
#   SKIP_BUILD=1 ONLY="party" scripts/run_benchmarks.sh
#
# Every server this script starts is stopped by its PID on exit. All traffic stays on 127.0.0.1,
# bounded in connections and time.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=${SCRATCH:-.build}
RESULTS=${RESULTS:-bench/results}
CHART=${CHART:-docs/bench/latency-vs-load.png}
PORT=${PORT:-39100}
CEILING_PORT=${CEILING_PORT:-39101}
ONLY=${ONLY:-"connections party fanout"}
PARTY_SIZES=${PARTY_SIZES:-"10 100 300 600 1000"}   # rooms of 10
FANOUT_SIZES=${FANOUT_SIZES:-"2 5 10 20"}           # rooms of 20
PARTY_DURATION=${PARTY_DURATION:-60}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  swift build -c release --scratch-path "$SCRATCH" --product owp-server
  swift build -c release --scratch-path "$SCRATCH" --product owp-bench
fi
BIN="$SCRATCH/release"
mkdir -p "$RESULTS"
LOGS=$(mktemp -d)  # server logs (not kept with the results)

PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_server PORT [extra flags…]: a fresh server (fresh memory figures), ready when /healthz answers.
start_server() {
  local port=$1; shift
  "$BIN/owp-server" --host 127.0.0.1 --port "$port" --max-connections 20000 --max-connections-per-ip 20000 \
    --log-level warning "$@" >"$LOGS/server-$port.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "server on $port did not start" >&2
  exit 1
}
source scripts/lib/quiet.sh
stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

{
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo
  grep MemTotal /proc/meminfo
  swift --version 2>&1 | head -1
  uname -sr
} >"$RESULTS/machine.txt"

for scenario in $ONLY; do
  case $scenario in
  connections)
    start_server "$PORT"
    wait_quiet 180 run_benchmarks
    "$BIN/owp-bench" connections --url "ws://127.0.0.1:$PORT/ws" --count 10000 --room-size 10 --ramp 500 --concurrency 64 --hold 20 \
      --label "10000 connections in 1000 rooms" --json "$RESULTS/connections-10000.json" --markdown "$RESULTS/connections-10000.md" --progress 5 --allow-errors || echo "connections failed" >&2
    stop_server "$SERVER_PID"
    start_server "$PORT"
    wait_quiet 180 run_benchmarks
    "$BIN/owp-bench" connections --url "ws://127.0.0.1:$PORT/ws" --count 10000 --room-size 0 --ramp 1000 --hold 10 \
      --label "10000 connections in the lobby" --json "$RESULTS/connections-10000-lobby.json" --markdown "$RESULTS/connections-10000-lobby.md" --progress 5 --allow-errors || echo "connections (lobby) failed" >&2
    stop_server "$SERVER_PID"
    start_server "$PORT"
    wait_quiet 180 run_benchmarks
    "$BIN/owp-bench" connections --url "ws://127.0.0.1:$PORT/ws" --count 5000 --room-size 0 --ramp 20000 --concurrency 256 --hold 3 \
      --label "5000 connections, unthrottled ramp" --json "$RESULTS/connections-5000-maxrate.json" --markdown "$RESULTS/connections-5000-maxrate.md" --progress 5 --allow-errors || echo "connections (max rate) failed" >&2
    stop_server "$SERVER_PID"
    # The same 10 000 with HummingbirdWSClient (it sends an Origin header), to compare the generator's cost.
    start_server "$PORT" --allowed-origins '*'
    wait_quiet 180 run_benchmarks
    "$BIN/owp-bench" connections --client hummingbird --url "ws://127.0.0.1:$PORT/ws" --count 10000 --room-size 0 --ramp 1000 --hold 10 \
      --label "10000 connections, HummingbirdWSClient" --json "$RESULTS/connections-10000-hbclient.json" --markdown "$RESULTS/connections-10000-hbclient.md" --progress 5 --allow-errors || echo "connections (HummingbirdWSClient) failed" >&2
    stop_server "$SERVER_PID"
    ;;
  party)
    for rooms in $PARTY_SIZES; do
      start_server "$PORT"
      wait_quiet 180 run_benchmarks
    "$BIN/owp-bench" party --url "ws://127.0.0.1:$PORT/ws" --rooms "$rooms" --members 10 --duration "$PARTY_DURATION" --warmup 5 \
        --ramp 500 --setup-concurrency 16 --label "$rooms rooms x 10" \
        --json "$RESULTS/party-$rooms.json" --markdown "$RESULTS/party-$rooms.md" --progress 10 --allow-errors || echo "party $rooms failed" >&2
      stop_server "$SERVER_PID"
    done
    ;;
  fanout)
    for rooms in $FANOUT_SIZES; do
      start_server "$PORT"
      main_pid=$SERVER_PID
      start_server "$CEILING_PORT" --fanout-ceiling
      ceiling_pid=$SERVER_PID
      wait_quiet 180 run_benchmarks
    "$BIN/owp-bench" fanout --url "ws://127.0.0.1:$PORT/ws" --ceiling "ws://127.0.0.1:$CEILING_PORT/ws" --rooms "$rooms" --members 20 \
        --rate 25 --duration 20 --warmup 3 --label "$rooms rooms x 20" \
        --json "$RESULTS/fanout-$rooms.json" --markdown "$RESULTS/fanout-$rooms.md" --progress 5 --allow-errors || echo "fanout $rooms failed" >&2
      stop_server "$main_pid"
      stop_server "$ceiling_pid"
    done
    ;;
  esac
done

python3 scripts/plot_bench.py "$RESULTS" "$CHART"
