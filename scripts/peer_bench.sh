#!/usr/bin/env bash
# Peer benchmark: owp-server against two independent Go WebSocket servers under the same
# traffic, driven by one independent Go load generator (bench/peers/, gorilla/websocket).
#
#   scripts/peer_bench.sh                                  # 100 000 and 200 000 deliveries/s
#   RATES="20000" DURATION=5 WARMUP=2 QUIET_WAIT=0 scripts/peer_bench.sh      # a quick check
#   OWP_SERVER_OLD=path/to/previous/owp-server scripts/peer_bench.sh       # adds "owp-before"
#   SERVERS="relay centrifuge" scripts/peer_bench.sh                        # peers only
#
# Servers (each its own process on 127.0.0.1, a fresh one per run, on its own port):
#   owp          $OWP_SERVER (default .build/release/owp-server: swift build -c release), OpenWatchParty chat_message
#   owp-before   $OWP_SERVER_OLD, the same protocol (only when that binary exists)
#   owp-ceiling  $OWP_SERVER --fanout-ceiling: owp-server's transport with a verbatim group relay
#   relay        bench/peers/relay: bare gorilla/websocket group relay
#   centrifuge   bench/peers/centrifuge: a Centrifuge node (Debian's centrifuge 0.15, JSON protocol v1)
# Traffic: rooms of $MEMBERS members, each member sending $MSG_RATE msg/s; every message goes to
# every member of its room, the sender included. An offered load in RATES (deliveries/s) becomes
# ceil(load / (MEMBERS*MSG_RATE*MEMBERS)) rooms: with 20 x 25 msg/s, 10 000 deliveries/s a room.
#
# CPU: the load generator samples the server's utime+stime (/proc/PID/stat) and RSS itself at the
# two ends of the measured window (after the warmup), so "CPU s per 1000 deliveries" divides the
# server's CPU time in the window by the deliveries received in the same window. This script also
# records the server's CPU over the whole loadgen run (setup, warmup, drain included) as a
# cross-check (server_whole_run in the JSON). The load generator shares the machine: its own
# cores are reported too.
#
# Everything builds offline from Debian packages (installed with apt-get when missing), in GOPATH
# mode against /usr/share/gocode/src, into $SCRATCH (default .build-peers, git-ignored).
# Results: one JSON per run and summary.md in $RESULTS (default bench/results/peers).
set -euo pipefail
cd "$(dirname "$0")/.."

OWP_SERVER=${OWP_SERVER:-.build/release/owp-server}
OWP_SERVER_OLD=${OWP_SERVER_OLD:-}
SERVERS=${SERVERS:-"owp owp-before owp-ceiling relay centrifuge"}
RATES=${RATES:-"100000 200000"}
MEMBERS=${MEMBERS:-20}
MSG_RATE=${MSG_RATE:-25}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
PAYLOAD_BYTES=${PAYLOAD_BYTES:-100}
PORT_BASE=${PORT_BASE:-39300}
SCRATCH=${SCRATCH:-.build-peers}
RESULTS=${RESULTS:-bench/results/peers}
QUIET_WAIT=${QUIET_WAIT:-180}  # longest wait (s) for a quiet machine before each run; 0 = don't wait

PACKAGES="golang-go golang-github-gorilla-websocket-dev golang-github-centrifugal-centrifuge-dev
  golang-github-centrifugal-protocol-dev golang-github-igm-sockjs-go-dev golang-github-mna-redisc-dev
  golang-github-fzambia-eagle-dev jq curl"

die() { echo "peer_bench: $*" >&2; exit 1; }

# --- packages (only the missing ones) --------------------------------------------------------
missing=()
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "peer_bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
fi

# --- build -----------------------------------------------------------------------------------
BIN="$SCRATCH/bin"
mkdir -p "$BIN" "$SCRATCH/logs" "$RESULTS"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  for prog in relay centrifuge loadgen; do
    # GOPATH mode: imports resolve in Debian's /usr/share/gocode/src; no module proxy, no network.
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/$SCRATCH/gocache" GOFLAGS= GOPROXY=off \
      go build -o "$BIN/$prog" "./bench/peers/$prog" || die "build of bench/peers/$prog failed"
  done
fi
CENTRIFUGE_VERSION=$(dpkg-query -W -f='${Version}' golang-github-centrifugal-centrifuge-dev)
GO_VERSION=$(go version | awk '{print $3}')

# --- servers ---------------------------------------------------------------------------------
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# server_cmd NAME PORT: sets CMD (array), TARGET and URL for that server.
server_cmd() {
  local name=$1 port=$2
  case $name in
  owp | owp-ceiling | owp-before)
    local bin=$OWP_SERVER
    [[ $name == owp-before ]] && bin=$OWP_SERVER_OLD
    CMD=("$bin" --host 127.0.0.1 --port "$port" --max-connections 20000 --max-connections-per-ip 20000 --log-level warning)
    TARGET=owp
    [[ $name == owp-ceiling ]] && { CMD+=(--fanout-ceiling); TARGET=relay; }
    URL="ws://127.0.0.1:$port/ws"
    ;;
  relay) CMD=("$BIN/relay" --listen "127.0.0.1:$port"); TARGET=relay; URL="ws://127.0.0.1:$port/ws" ;;
  centrifuge) CMD=("$BIN/centrifuge" --listen "127.0.0.1:$port"); TARGET=centrifuge; URL="ws://127.0.0.1:$port/connection/websocket" ;;
  *) die "unknown server '$name' in SERVERS" ;;
  esac
}

# start_server NAME PORT LOG: starts it, waits until /healthz answers (all five serve it).
start_server() {
  local name=$1 port=$2 log=$3
  server_cmd "$name" "$port"
  "${CMD[@]}" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    proc_alive "$SERVER_PID" || { tail -20 "$log" >&2; die "$name exited at start (log: $log)"; }
    sleep 0.1
  done
  tail -20 "$log" >&2
  die "$name does not answer on 127.0.0.1:$port after 10 s (log: $log)"
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# cpu_ticks PID: utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  echo $((f[11] + f[12]))
}

# proc_alive PID: running (a dead child stays a zombie until waited for, and kill -0 succeeds on it).
proc_alive() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  [[ ${rest%% *} != Z ]]
}

source scripts/lib/quiet.sh

# --- which servers ---------------------------------------------------------------------------
RUN_SERVERS=()
for s in $SERVERS; do
  case $s in
  owp | owp-ceiling) [[ -x $OWP_SERVER ]] || die "OWP_SERVER=$OWP_SERVER is not an executable (set OWP_SERVER, or leave $s out of SERVERS)" ;;
  owp-before)
    if [[ -z $OWP_SERVER_OLD || ! -x $OWP_SERVER_OLD ]]; then
      echo "peer_bench: no OWP_SERVER_OLD binary: skipping owp-before" >&2
      continue
    fi
    ;;
  esac
  RUN_SERVERS+=("$s")
done
((${#RUN_SERVERS[@]})) || die "no server to run"

PER_ROOM=$((MEMBERS * MSG_RATE * MEMBERS))
CLK_TCK=$(getconf CLK_TCK)
LOAD_AT_START=$(cat /proc/loadavg)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
{
  echo "started: $STARTED"
  echo "load average at start: $LOAD_AT_START"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  grep MemTotal /proc/meminfo
  uname -sr
  echo "go: $GO_VERSION; gorilla/websocket $(dpkg-query -W -f='${Version}' golang-github-gorilla-websocket-dev);" \
    "centrifuge $CENTRIFUGE_VERSION; centrifugal/protocol $(dpkg-query -W -f='${Version}' golang-github-centrifugal-protocol-dev)"
  for s in "${RUN_SERVERS[@]}"; do
    case $s in
    owp) echo "owp: $OWP_SERVER ($("$OWP_SERVER" --version 2>/dev/null | head -1 || true))" ;;
    owp-before) echo "owp-before: $OWP_SERVER_OLD ($("$OWP_SERVER_OLD" --version 2>/dev/null | head -1 || true))" ;;
    esac
  done
  echo "traffic: rooms of $MEMBERS x $MSG_RATE msg/s ($PER_ROOM deliveries/s a room), payload $PAYLOAD_BYTES bytes," \
    "warmup ${WARMUP}s, window ${DURATION}s"
} >"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt"
echo

# --- runs ------------------------------------------------------------------------------------
RUN_FILES=()
run=0
for offered in $RATES; do
  rooms=$(((offered + PER_ROOM - 1) / PER_ROOM))
  ((rooms >= 1)) || rooms=1
  for name in "${RUN_SERVERS[@]}"; do
    port=$((PORT_BASE + run)); run=$((run + 1))
    out="$RESULTS/$name-$offered.json"
    log="$SCRATCH/logs/$name-$offered.log"
    rm -f "$out"
    start_server "$name" "$port" "$log"
    wait_quiet "$QUIET_WAIT" peer_bench
    echo "== $name: $rooms rooms x $MEMBERS ($((rooms * PER_ROOM)) deliveries/s offered), $TARGET dialect, $URL" >&2
    t0=$(date +%s.%N); c0=$(cpu_ticks "$SERVER_PID")
    status=0
    "$BIN/loadgen" --target "$TARGET" --url "$URL" --rooms "$rooms" --members "$MEMBERS" --rate "$MSG_RATE" \
      --duration "$DURATION" --warmup "$WARMUP" --payload-bytes "$PAYLOAD_BYTES" --server-pid "$SERVER_PID" \
      --clk-tck "$CLK_TCK" --label "$name" --json "$out" || status=$?
    c1=$(cpu_ticks "$SERVER_PID"); t1=$(date +%s.%N)
    alive=true; proc_alive "$SERVER_PID" || alive=false
    [[ $alive == true ]] || c1=$c0  # no figure for a server that died
    if ((status == 0)) && [[ -f $out ]]; then
      jq --arg server "$name" --argjson offered "$offered" --argjson alive "$alive" \
        --argjson cpu "$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/t}')" \
        --argjson secs "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" \
        --arg centrifuge "$CENTRIFUGE_VERSION" --arg binary "${CMD[0]}" \
        '. + {server_name: $server, requested_offered_per_second: $offered, server_alive_after_run: $alive,
              server_binary: $binary, centrifuge_version: $centrifuge,
              server_whole_run: {cpu_seconds: $cpu, seconds: $secs, cores: (if $secs > 0 then $cpu / $secs else 0 end)}}' \
        "$out" >"$out.tmp" && mv "$out.tmp" "$out"
      RUN_FILES+=("$out")
    else
      echo "peer_bench: loadgen failed against $name ($offered/s), exit $status (server log: $log)" >&2
      jq -n --arg server "$name" --argjson offered "$offered" --arg log "$log" --argjson status "$status" \
        '{server_name: $server, requested_offered_per_second: $offered, failed: true, loadgen_exit: $status, server_log: $log}' >"$out"
      RUN_FILES+=("$out")
    fi
    [[ $alive == true ]] || echo "peer_bench: $name died during the run (log: $log)" >&2
    stop_server
  done
done

# --- table -----------------------------------------------------------------------------------
table() {
  echo "Peer benchmark, $STARTED. Load average at start: $LOAD_AT_START. Rooms of $MEMBERS x $MSG_RATE msg/s," \
    "${DURATION}s window after ${WARMUP}s warmup; CPU = server utime+stime over the window."
  echo
  echo "| server | offered/s | sent msg/s (of offered) | delivered/s | delivered % | server CPU s / 1000 deliveries | server cores | p50 ms | p99 ms | max ms | errors | server RSS MiB | loadgen cores | load avg at run start |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  for f in "${RUN_FILES[@]}"; do
    jq -r '
      if .failed then "| \(.server_name) | \(.requested_offered_per_second) | FAILED (loadgen exit \(.loadgen_exit)) | | | | | | | | | | | |"
      else "| \(.server_name)\(if .server_alive_after_run then "" else " (died)" end) | \(.offered_deliveries_per_second | round)"
        + " | \(.sent_per_second | round) (\(.rooms * .members * .rate_per_member | round))"
        + " | \(.delivered_per_second | round) | \(.delivered_over_offered * 1000 | round / 10)"
        + " | \((.server.cpu_seconds_per_1000_deliveries // 0) * 100000 | round / 100000) | \((.server.cores // 0) * 100 | round / 100)"
        + " | \(.latency.p50_ms) | \(.latency.p99_ms) | \(.latency.max_ms) | \(.errors)"
        + " | \((.server.rss_kib_window_end // 0) / 1024 | round) | \(.loadgen.cores * 100 | round / 100)"
        + " | \(.load_average_at_start | split(" ")[0:3] | join(" ")) |"
      end' "$f"
  done
}
echo
table | tee "$RESULTS/summary.md"
