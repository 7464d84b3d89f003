#!/usr/bin/env bash
# Proves grafana/alerts.yml against the real server binary and a real Prometheus: every alert
# fires when provoked, and none fires for a healthy watch party - OWPHandlingLatencyHigh
# included, under a CPU quota, against a control server with the same traffic and no quota.
#
# Usage (from anywhere): scripts/check-alerts-live.sh path/to/owp-server
# Prints one `ok ...` line per check; exits non-zero on the first failure (and keeps its
# working directory, with every server, driver and Prometheus log, for the post-mortem).
# Needs: prometheus and promtool (Debian: apt-get install prometheus), python3 with the
# websockets package (pip install websockets), and for the CPU-quota phase root with a
# writable cgroup cpu controller (v1 /sys/fs/cgroup/cpu, or v2 with `cpu` delegated).
# Wall time about 130 s on a 2-core machine; every wait is bounded.
#
# Why the `for:` durations are shortened. In production the alerts wait 1 to 10 minutes
# (`for:`) before firing, so that a blip never pages anyone. Waiting that long per alert would
# make this check take an hour, so it loads a copy of grafana/alerts.yml in which every `for:`
# is $FOR_SECONDS seconds, and nothing else differs (the script checks that: same rules, same
# expressions, thresholds, guards and [5m] windows). The windows stay 5 minutes: every server
# here is fresh, so a rate over [5m] covers its whole life, and each provocation is strong
# enough to cross the threshold well inside it. Scrape and evaluation interval: 1 s.
#
# Phases, each server a fresh process on a free loopback port (job="owp-server"):
#   1. healthy    HEALTHY_PARTIES (4) small normal parties (each a host and 3 guests: state
#                 reports consistent with real time, pings, chat, status changes, a pause and
#                 a resume) for HEALTHY_SECONDS: no alert may be pending or firing, and the
#                 traffic guards of the traffic-dependent rules must be met, so that each rule
#                 was evaluated on real data and was quiet because the values were healthy.
#                 Why several parties: one party sends ~6 messages/s, so 25 s in, its p99 is
#                 its second-slowest message, and on CI two messages caught by one 60 ms
#                 stall of the machine made OWPHandlingLatencyHigh pending. In production a
#                 stall like that cannot page (it leaves the [5m] window before the 10m
#                 `for:` ends); here, with the window kept and `for:` shortened, it would.
#                 Four parties make the p99 a quantile of ~600 messages, not a maximum.
#   2. provoked   Five servers at once, one per alert; each must fire its alert (any other
#                 alert it trips is printed as a note):
#                   OWPTargetDown                 the server SIGKILLed; restarted, it resolves
#                   OWPSyncDriftHigh              a host whose player runs at 3x speed
#                   OWPErrorRateHigh              half of the messages malformed JSON
#                   OWPSlowClientDisconnectSpike  8 clients join a busy room and never read
#                                                 (OUTBOUND_QUEUE_SIZE 32; they advertise an
#                                                 Ethernet MSS, see scripts/alert_load.py)
#                   OWPUpgradesRefused            upgrades with an Origin not in
#                                                 ALLOWED_ORIGINS=http://localhost:8096
#   2b. store     Two servers with DATABASE_URL, each on a throw-away PostgreSQL cluster
#                 (scripts/pg_throwaway.sh; needs the postgresql package):
#                   OWPStoreUnreachable           its database stopped
#                   OWPStoreLeaseLost             its room claimed by another owner (the row
#                                                 taken and its fencing epoch moved, in SQL)
#   2c. bus       Two servers sharing a third cluster, a guest on one relayed to its room's
#                 owner on the other (PROTOCOL.md §14), the host chatting 20 times a second:
#                   OWPCrossReplicaLatencyHigh    the relay paused (SIGSTOP) 150 ms of every
#                                                 300 ms, so the owner's notifications wait
#   3. cpu quota  Three servers with identical traffic (20 connections x 10 messages/s,
#                 under the rate limit, and rooms whose play waits on the ready barrier until
#                 MAX_READY_WAIT_MS=300 releases it by timer). After 5 s the control's CPU use
#                 says what the traffic needs; "starved" then gets a CFS quota of
#                 STARVED_SHARE (0.5) of it, "throttled" THROTTLED_SHARE (0.8), "control"
#                 none. starved must fire OWPHandlingLatencyHigh and OWPSchedulingLate and
#                 the control must fire nothing; a pending alert on it is printed, not a
#                 failure: it shares two cores with the other two servers and all three
#                 drivers, and on CI a moment's contention there (the first seconds of load,
#                 twice in a row, never standalone) made its timer p99 cross 50 ms; the
#                 alert's `for:` is what keeps such a moment from paging. What throttled fires is printed,
#                 not asserted: it is the borderline case (usually OWPSchedulingLate,
#                 sometimes OWPHandlingLatencyHigh too, sometimes neither).
#                 The handling, server-measured round trip and timer lateness quantiles of
#                 all three, the clients' own round trips and the cgroups' throttling counters
#                 are printed. Without a writable cpu cgroup this phase is skipped with a
#                 message (exit 0; REQUIRE_CPU_QUOTA=1 makes that a failure).
#
# As root, the servers run at nice -10 (see start_server). Every process the script starts is
# killed at exit, and its cgroups are removed.
set -euo pipefail

usage() { echo "usage: $0 path/to/owp-server" >&2; exit 2; }
[ $# -eq 1 ] || usage
BIN=$1
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
[ -x "$BIN" ] || { echo "FAIL $BIN is not an executable" >&2; exit 1; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FOR_SECONDS=${FOR_SECONDS:-10}
HEALTHY_SECONDS=${HEALTHY_SECONDS:-40}
HEALTHY_PARTIES=${HEALTHY_PARTIES:-4}
STARVED_SHARE=${STARVED_SHARE:-0.5}
THROTTLED_SHARE=${THROTTLED_SHARE:-0.8}
STARTED_AT=$(date +%s)

ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }
elapsed() { echo $(($(date +%s) - STARTED_AT)); }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/owp-alerts-live.XXXXXX")"
PIDS=()
CGROUPS=()
CLUSTERS=()  # throw-away PostgreSQL clusters (phase 2b), stopped at exit
SKIPPED=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for cluster in "${CLUSTERS[@]}"; do bash scripts/pg_throwaway.sh stop "$cluster" 2>/dev/null || true; done
    for cluster in "${CLUSTERS[@]}"; do rm -rf "$(dirname "$cluster")"; break; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for cg in "${CGROUPS[@]}"; do rmdir "$cg" 2>/dev/null || printf 'warning: could not remove cgroup %s\n' "$cg" >&2; done
    if [ "$status" -eq 0 ]; then
        rm -rf "$WORK"
        printf '\nAll live alert checks passed in %ss%s.\n' "$(elapsed)" "${SKIPPED:+ ($SKIPPED skipped)}"
    else
        printf '\nLive alert checks FAILED (exit %s) after %ss; logs kept in %s\n' "$status" "$(elapsed)" "$WORK" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, http_get, wait_http
# shellcheck source=scripts/lib/http.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/http.sh"

# As root, the servers run at nice -10: other work on a shared machine (a compiler, a browser)
# must not starve the healthy and control servers, since a starved server is exactly what
# OWPSchedulingLate and OWPHandlingLatencyHigh detect. The CPU quota caps a server whatever
# its priority.
PRIORITY=()
if [ "$(id -u)" = 0 ]; then PRIORITY=(nice -n -10); fi
declare -A PORT PID
# start_server NAME [server options...]: a fresh owp-server on a free loopback port.
start_server() {
    local name=$1; shift
    local port=${PORT[$name]:-$(free_port)}
    "${PRIORITY[@]}" "$BIN" --host 127.0.0.1 --port "$port" --allowed-origins http://localhost:8096 "$@" >>"$WORK/server-$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
    PORT[$name]=$port
    wait_http "http://127.0.0.1:$port/readyz" 20 || { tail -20 "$WORK/server-$name.log"; fail "server $name did not become ready on port $port"; }
}
instance() { echo "127.0.0.1:${PORT[$1]}"; }
url() { echo "ws://127.0.0.1:${PORT[$1]}/ws"; }

# set_targets NAME...: Prometheus scrapes exactly these servers (file_sd, rewritten atomically).
set_targets() {
    python3 - "$WORK/targets.json" "$@" <<'EOF'
import json, os, sys
path, targets = sys.argv[1], sys.argv[2:]
groups = [{"targets": [t.split("=", 1)[1]], "labels": {"role": t.split("=", 1)[0]}} for t in targets]
with open(path + ".tmp", "w") as f:
    json.dump(groups, f)
os.replace(path + ".tmp", path)
EOF
}
targets() {
    local args=() expect=()
    for name in "$@"; do args+=("$name=$(instance "$name")"); expect+=(--expect "$(instance "$name")"); done
    set_targets "${args[@]}"
    python3 scripts/alert_prom.py targets --prom "$PROM" "${expect[@]}" --timeout 30
}

declare -A LOAD READY
# start_load NAME MODE [driver options...]: the load driver in the background; waits (bounded)
# until its setup is done and sets READY[NAME] to the epoch at which its traffic started.
start_load() {
    local name=$1 mode=$2; shift 2
    rm -f "$WORK/ready-$name"
    python3 scripts/alert_load.py "$mode" --ready-file "$WORK/ready-$name" "$@" >"$WORK/load-$name.json" 2>"$WORK/load-$name.err" &
    LOAD[$name]=$!
    PIDS+=("$!")
}
wait_ready() {
    local name=$1 deadline=$(($(date +%s) + 30))
    until [ -s "$WORK/ready-$name" ]; do
        kill -0 "${LOAD[$name]}" 2>/dev/null || { cat "$WORK/load-$name.err" >&2; fail "load driver $name exited during its setup"; }
        [ "$(date +%s)" -lt "$deadline" ] || fail "load driver $name not set up within 30s"
        sleep 0.2
    done
    READY[$name]=$(cat "$WORK/ready-$name")
}
# finish_load NAME: ends the driver's traffic (SIGTERM) and checks that it exited 0.
finish_load() {
    local name=$1 pid=${LOAD[$1]}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" || { cat "$WORK/load-$name.err" >&2; fail "load driver $name failed"; }
}


# quantiles WINDOW NAME...: per server, the p50/p95/p99 of the handling, server-measured round
# trip and timer lateness histograms over the last WINDOW, as Prometheus computes them, with
# the observation count and the share of observations above 50 ms (the alerts' threshold).
quantiles() {
    local window=$1; shift
    local args=()
    for name in "$@"; do args+=("$name=$(instance "$name")"); done
    python3 - "$PROM" "$window" "${args[@]}" <<'EOF'
import sys
sys.path.insert(0, "scripts")
from alert_prom import value
prom, window, servers = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
def num(expr):
    v = value(prom, expr)
    return float(v) if v not in ("", "NaN") else float("nan")
for name, i in servers:
    for h in ("owp_message_handling_seconds", "owp_client_rtt_seconds", "owp_scheduling_lateness_seconds"):
        sel = f'instance="{i}"'
        qs = [num(f"histogram_quantile({q}, sum by (le) (increase({h}_bucket{{{sel}}}[{window}])))") for q in (0.5, 0.95, 0.99)]
        n = num(f"sum(increase({h}_count{{{sel}}}[{window}]))")
        over = 1 - num(f'sum(increase({h}_bucket{{{sel},le="0.05"}}[{window}]))') / n if n else float("nan")
        print(f"       {name:<10} {h:<32} n={n:<6.0f} p50={qs[0]*1000:7.1f} ms  p95={qs[1]*1000:7.1f} ms  "
              f"p99={qs[2]*1000:7.1f} ms  share>50ms={over:.2%}")
EOF
}

# --- Prerequisites ------------------------------------------------------------------------
step "Prerequisites"
command -v prometheus >/dev/null && command -v promtool >/dev/null \
    || fail "prometheus and promtool are needed (Debian: apt-get install -y --no-install-recommends prometheus)"
python3 -c 'import websockets' 2>/dev/null || fail "python3 websockets is needed (pip install websockets)"
ok "$(prometheus --version 2>&1 | head -1); $("$BIN" --version 2>&1 | head -1)"
promtool check rules grafana/alerts.yml >/dev/null || { promtool check rules grafana/alerts.yml; fail "promtool check rules grafana/alerts.yml"; }
promtool test rules grafana/alerts.test.yml >"$WORK/promtool-test.out" 2>&1 || { cat "$WORK/promtool-test.out"; fail "promtool test rules grafana/alerts.test.yml"; }
ok "grafana/alerts.yml passes promtool check rules and its unit tests"

# --- The rules with shortened `for:` -----------------------------------------------------
step "grafana/alerts.yml with every for: shortened to ${FOR_SECONDS}s"
python3 - grafana/alerts.yml "$WORK/alerts-fast.yml" "$FOR_SECONDS" <<'EOF' || exit 1
import re, sys
source, target, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(source).read().split("\n")
out, changed, alerts = [], 0, []
for line in lines:
    m = re.match(r"^(\s+)for: (\S+)\s*$", line)
    if m:
        out.append(f"{m.group(1)}for: {seconds}s")
        changed += 1
    else:
        out.append(line)
    a = re.match(r"^\s+- alert: (\S+)", line)
    if a:
        alerts.append(a.group(1))
open(target, "w").write("\n".join(out))
# Nothing but the `for:` lines differs (expressions, thresholds, windows, labels untouched).
diff = [(a, b) for a, b in zip(lines, out) if a != b]
assert len(lines) == len(out) and all(re.match(r"^\s+for: ", a) and re.match(r"^\s+for: \d+s$", b) for a, b in diff), diff
print(f"ok   {len(alerts)} alerts ({', '.join(alerts)}); {changed} for: lines shortened, no other line differs")
EOF
promtool check rules "$WORK/alerts-fast.yml" >/dev/null || fail "the shortened copy does not pass promtool check rules"
RULES_TOTAL=$(grep -c '^ *- alert: ' grafana/alerts.yml)

# --- Prometheus ---------------------------------------------------------------------------
step "Prometheus (scrape and evaluation every 1s, file_sd targets, the shortened rules)"
PROM_PORT=$(free_port)
PROM="http://127.0.0.1:$PROM_PORT"
echo '[]' >"$WORK/targets.json"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $WORK/alerts-fast.yml
scrape_configs:
  - job_name: owp-server
    metrics_path: /metrics
    file_sd_configs:
      - files: ['$WORK/targets.json']
        refresh_interval: 1s
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "generated prometheus.yml is invalid"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_http "$PROM/-/ready" 30 || { cat "$WORK/prometheus.log"; fail "Prometheus did not become ready on port $PROM_PORT"; }
LOADED=$(python3 - "$PROM" <<'EOF'
import json, sys, time, urllib.request
for _ in range(20):
    with urllib.request.urlopen(sys.argv[1] + "/api/v1/rules?type=alert", timeout=5) as r:
        rules = [x for g in json.load(r)["data"]["groups"] for x in g["rules"]]
    if rules:
        break
    time.sleep(0.5)
print(len(rules))
EOF
)
[ "$LOADED" = "$RULES_TOTAL" ] || fail "Prometheus loaded $LOADED alert rules, grafana/alerts.yml has $RULES_TOTAL"
ok "Prometheus ready on 127.0.0.1:$PROM_PORT with all $LOADED alert rules"

RESULTS="$WORK/fired.jsonl"
: >"$RESULTS"

# --- 1. Healthy -----------------------------------------------------------------------------
step "1. Healthy watch parties ($HEALTHY_PARTIES) for ${HEALTHY_SECONDS}s: no alert may be pending or firing"
start_server healthy
targets healthy
start_load healthy party --url "$(url healthy)" --duration "$HEALTHY_SECONDS" --parties "$HEALTHY_PARTIES"
wait_ready healthy
python3 scripts/alert_prom.py watch --prom "$PROM" --since "${READY[healthy]}" --quiet "$(instance healthy)" \
    --name "$(instance healthy)=healthy" --min-seconds "$HEALTHY_SECONDS" --timeout $((HEALTHY_SECONDS + 10))
finish_load healthy
H=$(instance healthy)
python3 - "$PROM" "$H" <<'EOF' || exit 1
# The traffic guards of every traffic-dependent rule were met: each rule saw real data and
# was quiet because the values were healthy, not because the server was idle.
import sys
sys.path.insert(0, "scripts")
from alert_prom import value
prom, i = sys.argv[1:3]
sel = f'job="owp-server", instance="{i}"'
checks = [
    ("OWPHandlingLatencyHigh", f"sum(rate(owp_messages_received_total{{{sel}}}[5m]))", 0.5, "messages/s",
     f"histogram_quantile(0.99, sum by (le) (rate(owp_message_handling_seconds_bucket{{{sel}}}[5m])))", 0.05, "p99 handling s"),
    ("OWPErrorRateHigh", f"sum(rate(owp_messages_received_total{{{sel}}}[5m]))", 0.5, "messages/s",
     f"sum(rate(owp_errors_sent_total{{{sel}}}[5m])) / sum(rate(owp_messages_received_total{{{sel}}}[5m]))", 0.05, "error ratio"),
    ("OWPSyncDriftHigh", f"sum(increase(owp_sync_drift_seconds_count{{{sel}}}[5m]))", 10, "host reports in 5m",
     f"histogram_quantile(0.95, sum by (le) (rate(owp_sync_drift_seconds_bucket{{{sel}}}[5m])))", 1, "p95 drift s"),
    ("OWPSchedulingLate", f"sum(increase(owp_scheduling_lateness_seconds_count{{{sel}}}[5m]))", 5, "releases in 5m",
     f"histogram_quantile(0.99, sum by (le) (rate(owp_scheduling_lateness_seconds_bucket{{{sel}}}[5m])))", 0.05, "p99 lateness s"),
]
bad = []
for alert, guard, minimum, gunit, signal, threshold, sunit in checks:
    g, s = float(value(prom, guard) or "nan"), float(value(prom, signal) or "nan")
    print(f"ok   healthy {alert}: guard {g:.4g} {gunit} (needs >= {minimum:g}: met), {sunit} {s:.4g} (threshold {threshold:g})"
          if g >= minimum and s <= threshold else f"FAIL healthy {alert}: guard {g:.4g} {gunit} (needs >= {minimum:g}), {sunit} {s:.4g}")
    if not (g >= minimum and s <= threshold):
        bad.append(alert)
for expr, what in ((f"sum(increase(owp_slow_client_disconnects_total{{{sel}}}[5m]))", "slow-client disconnects"),
                   (f"sum(increase(owp_connections_rejected_total{{{sel}}}[5m]))", "refused upgrades")):
    print(f"ok   healthy: {float(value(prom, expr) or 'nan'):.4g} {what} in 5m")
if bad:
    sys.exit(f"FAIL the healthy party did not exercise {', '.join(bad)} (guard not met or value unhealthy)")
EOF
printf '     measured by the server over the party (Prometheus histogram_quantile):\n'
quantiles "${HEALTHY_SECONDS}s" healthy
targets  # scrape nothing before stopping the server: a stopped target is OWPTargetDown
kill "${PID[healthy]}"; wait "${PID[healthy]}" 2>/dev/null || true
ok "phase 1 done at $(elapsed)s"

# --- 2. One provocation per alert, five fresh servers at once -------------------------------
step "2. Provoke OWPTargetDown, OWPSyncDriftHigh, OWPErrorRateHigh, OWPSlowClientDisconnectSpike, OWPUpgradesRefused"
start_server down
start_server drift
start_server errors
start_server slow --outbound-queue-size 32
start_server refused
targets down drift errors slow refused
start_load drift drift --url "$(url drift)" --duration 60
start_load errors errors --url "$(url errors)" --duration 60 --connections 10
start_load slow slow --url "$(url slow)" --duration 60 --stalled 8 --rate 10
start_load refused origin --url "$(url refused)" --duration 60 --rate 5 --origin http://wrong-origin.example
for name in drift errors slow refused; do wait_ready "$name"; done
kill -KILL "${PID[down]}"; wait "${PID[down]}" 2>/dev/null || true
DOWN_AT=$(date +%s.%N)
ok "provocations running: host at 3x speed, malformed JSON, 8 clients that never read (outbound queue 32), wrong Origin at 5/s; server 'down' SIGKILLed"
PHASE2_SINCE=$(python3 -c "print(min(float(x) for x in '${READY[drift]} ${READY[errors]} ${READY[slow]} ${READY[refused]} $DOWN_AT'.split()))")
python3 scripts/alert_prom.py watch --prom "$PROM" --since "$PHASE2_SINCE" --timeout 75 --json "$RESULTS" \
    --expect "$(instance down)=OWPTargetDown" --name "$(instance down)=down" \
    --expect "$(instance drift)=OWPSyncDriftHigh" --name "$(instance drift)=drift" \
    --expect "$(instance errors)=OWPErrorRateHigh" --name "$(instance errors)=errors" \
    --expect "$(instance slow)=OWPSlowClientDisconnectSpike" --name "$(instance slow)=slow" \
    --expect "$(instance refused)=OWPUpgradesRefused" --name "$(instance refused)=refused"
start_server down
RESTART_AT=$(date +%s.%N)
python3 scripts/alert_prom.py resolved --prom "$PROM" --instance "$(instance down)" --alert OWPTargetDown --since "$RESTART_AT" --timeout 20
for name in drift errors slow refused; do finish_load "$name"; done
python3 - "$WORK" <<'EOF' || exit 1
import json, sys
work = sys.argv[1]
load = lambda name: json.loads(open(f"{work}/load-{name}.json").read())
errors, refused, slow = load("errors"), load("refused"), load("slow")
assert errors.get("errors", {}).get("INVALID_JSON", 0) > 0, errors
print(f"ok   errors driver: {errors['sent']} messages sent, answered with {errors['errors']}")
assert set(refused["statuses"]) == {"403"} and refused["allowed_origin_connected"], refused
print(f"ok   refused driver: {refused['statuses']['403']} upgrades with a wrong Origin, all answered 403; "
      "an allowed Origin (http://localhost:8096) still connects")
print(f"ok   slow driver: {slow['stalled']} stalled clients joined the busy room; its 4 reading members stayed connected")
EOF
targets
for name in down drift errors slow refused; do kill "${PID[$name]}" 2>/dev/null || true; wait "${PID[$name]}" 2>/dev/null || true; done
ok "phase 2 done at $(elapsed)s"

# --- 2b. The shared store (DATABASE_URL), two throw-away PostgreSQL clusters ---------------
step "2b. Provoke OWPStoreUnreachable (the database stopped) and OWPStoreLeaseLost (another owner claimed a room)"
PG_ROOT="$(mktemp -d /tmp/owp-alerts-pg.XXXXXX)"
chmod 755 "$PG_ROOT"  # the clusters run as the postgres user when this runs as root
CLUSTERS+=("$PG_ROOT/a" "$PG_ROOT/b")
URL_A=$(bash scripts/pg_throwaway.sh start "$PG_ROOT/a") || fail "could not start a PostgreSQL cluster (needs the postgresql package)"
URL_B=$(bash scripts/pg_throwaway.sh start "$PG_ROOT/b") || fail "could not start a PostgreSQL cluster"
DATABASE_URL="$URL_A" start_server store
DATABASE_URL="$URL_B" start_server stolen --room-lease-seconds 3
targets store stolen
python3 - "$(url stolen)" <<'EOF' || fail "could not create a room on the 'stolen' server"
import asyncio, json, sys
import websockets
async def main():
    async with websockets.connect(sys.argv[1], origin="http://localhost:8096") as ws:
        await ws.send(json.dumps({"type": "create_room", "payload": {"name": "to be claimed elsewhere"}, "ts": 0}))
        while json.loads(await ws.recv())["type"] != "room_state":
            pass
        await asyncio.sleep(0.5)  # written to the store within 100 ms
asyncio.run(main())
EOF
# What a second owner does when it claims: take the row and move its fencing epoch.
CLAIMED=$(psql "$URL_B" -tAqc "UPDATE owp_rooms SET owner = 'another-replica', epoch = epoch + 1 RETURNING room_id" | wc -l)
[ "$CLAIMED" = 1 ] || fail "expected the one room of 'stolen' in its database, claimed $CLAIMED"
bash scripts/pg_throwaway.sh stop "$PG_ROOT/a"
STORE_SINCE=$(date +%s.%N)
ok "database of 'store' stopped; the room of 'stolen' claimed by another owner in its database"
python3 scripts/alert_prom.py watch --prom "$PROM" --since "$STORE_SINCE" --timeout 60 --json "$RESULTS" \
    --expect "$(instance store)=OWPStoreUnreachable" --name "$(instance store)=store" \
    --expect "$(instance stolen)=OWPStoreLeaseLost" --name "$(instance stolen)=stolen"
grep -q "Room claim lost to another replica" "$WORK/server-stolen.log" || fail "'stolen' did not log the lost claim"
grep -q "Shared store unreachable" "$WORK/server-store.log" || fail "'store' did not log its unreachable database"
targets
for name in store stolen; do kill "${PID[$name]}" 2>/dev/null || true; wait "${PID[$name]}" 2>/dev/null || true; done
ok "phase 2b done at $(elapsed)s"

# --- 2c. The bus between replicas ------------------------------------------------------------
step "2c. Provoke OWPCrossReplicaLatencyHigh (a relayed member's replica paused in bursts)"
CLUSTERS+=("$PG_ROOT/c")
URL_C=$(bash scripts/pg_throwaway.sh start "$PG_ROOT/c") || fail "could not start a PostgreSQL cluster"
DATABASE_URL="$URL_C" start_server owner
DATABASE_URL="$URL_C" start_server relay
targets owner relay
sleep 2  # both listening on the bus (heartbeats every second)
python3 - "$(url owner)" "$(url relay)" "$WORK/ready-bus" >"$WORK/load-bus.log" 2>&1 <<'EOF' &
import asyncio, json, sys, time
import websockets
async def main():
    owner, relay, ready = sys.argv[1:4]
    async with websockets.connect(owner, origin="http://localhost:8096") as host, websockets.connect(relay, origin="http://localhost:8096") as guest:
        await host.send(json.dumps({"type": "create_room", "payload": {"name": "bus"}, "ts": 0}))
        while (message := json.loads(await host.recv()))["type"] != "room_state":
            pass
        room = message["room"]
        await asyncio.sleep(0.5)  # written to the store: the relay finds its owner
        await guest.send(json.dumps({"type": "join_room", "room": room, "ts": 0}))
        while json.loads(await guest.recv())["type"] != "room_state":
            pass
        open(ready, "w").write(str(time.time()))
        async def drain(ws):
            async for _ in ws:
                pass
        readers = [asyncio.create_task(drain(host)), asyncio.create_task(drain(guest))]
        for n in range(20 * 90):
            await host.send(json.dumps({"type": "chat_message", "room": room, "payload": {"text": f"m{n}"}, "ts": 0}))
            await asyncio.sleep(0.05)
        for reader in readers:
            reader.cancel()
asyncio.run(main())
EOF
BUS_LOAD=$!
PIDS+=("$BUS_LOAD")
deadline=$(($(date +%s) + 30))
until [ -s "$WORK/ready-bus" ]; do
    kill -0 "$BUS_LOAD" 2>/dev/null || { cat "$WORK/load-bus.log" >&2; fail "the bus load exited during its setup"; }
    [ "$(date +%s)" -lt "$deadline" ] || fail "the bus load was not set up within 30s"
    sleep 0.2
done
grep -q "Connection served by the room's owner" "$WORK/server-relay.log" || fail "the guest on 'relay' was not served through 'owner'"
( while kill -STOP "${PID[relay]}" 2>/dev/null; do sleep 0.15; kill -CONT "${PID[relay]}" 2>/dev/null || break; sleep 0.15; done ) &
PAUSER=$!
PIDS+=("$PAUSER")
BUS_SINCE=$(cat "$WORK/ready-bus")
ok "a guest on 'relay' served by 'owner'; 'relay' paused 150 ms of every 300 ms"
python3 scripts/alert_prom.py watch --prom "$PROM" --since "$BUS_SINCE" --timeout 75 --json "$RESULTS" \
    --expect "$(instance relay)=OWPCrossReplicaLatencyHigh" --name "$(instance relay)=relay"
kill "$PAUSER" 2>/dev/null || true
wait "$PAUSER" 2>/dev/null || true
kill -CONT "${PID[relay]}" 2>/dev/null || true
kill "$BUS_LOAD" 2>/dev/null || true
targets
for name in owner relay; do kill "${PID[$name]}" 2>/dev/null || true; wait "${PID[$name]}" 2>/dev/null || true; done
ok "phase 2c done at $(elapsed)s"

# --- 3. CPU quota -----------------------------------------------------------------------------
step "3. Same traffic on three servers: starved (quota ${STARVED_SHARE} x need), throttled (${THROTTLED_SHARE} x need), control (none)"
# make_cgroup NAME PID: a cpu cgroup holding PID, no quota yet, in CG_DIR (not in a
# subshell, so that CGROUPS, which the exit trap removes, keeps it).
make_cgroup() {
    local dir
    CG_DIR=""
    if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        dir=/sys/fs/cgroup/cpu/owp-alerts-$$-$1        # cgroup v1
        mkdir "$dir" 2>/dev/null || return 1
        CGROUPS+=("$dir")
        echo 100000 >"$dir/cpu.cfs_period_us" && echo -1 >"$dir/cpu.cfs_quota_us" || return 1
    elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
        dir=/sys/fs/cgroup/owp-alerts-$$-$1            # cgroup v2 (not exercised here: v1 machine)
        mkdir "$dir" 2>/dev/null || return 1
        CGROUPS+=("$dir")
        echo "max 100000" >"$dir/cpu.max" || return 1
    else
        return 1
    fi
    echo "$2" >"$dir/cgroup.procs" || return 1
    CG_DIR=$dir
}
set_quota() {  # set_quota DIR MICROSECONDS_PER_100MS
    if [ -f "$1/cpu.cfs_quota_us" ]; then echo "$2" >"$1/cpu.cfs_quota_us"; else echo "$2 100000" >"$1/cpu.max"; fi
}
cpu_stat() {  # throttling counters, v1 or v2 names
    tr '\n' ' ' <"$1/cpu.stat"
}
start_server starved --max-ready-wait-ms 300 --log-level warning
start_server throttled --max-ready-wait-ms 300 --log-level warning
start_server control --max-ready-wait-ms 300 --log-level warning
if make_cgroup starved "${PID[starved]}"; then CG_STARVED=$CG_DIR; else CG_STARVED=""; fi
if [ -n "$CG_STARVED" ] && make_cgroup throttled "${PID[throttled]}"; then CG_THROTTLED=$CG_DIR; else CG_THROTTLED=""; fi
if [ -z "$CG_THROTTLED" ]; then
    printf 'SKIP OWPHandlingLatencyHigh / OWPSchedulingLate under a CPU quota: cannot create a cpu cgroup\n'
    printf '     (needs root and /sys/fs/cgroup/cpu (v1) writable, or cgroup v2 with the cpu controller\n'
    printf '     in /sys/fs/cgroup/cgroup.subtree_control). Every other alert was checked.\n'
    [ "${REQUIRE_CPU_QUOTA:-0}" = 1 ] && fail "REQUIRE_CPU_QUOTA=1 and no cpu cgroup"
    SKIPPED="the CPU-quota phase"
    exit 0
fi
ok "cpu cgroups $CG_STARVED and $CG_THROTTLED hold the starved and throttled servers (no quota yet)"
targets starved throttled control
for name in starved throttled control; do
    # Only the starved server may close members (4002: it reads its sockets in clumps, and the
    # rate window counts reads, docs/protocol.md choice 20); the others' drivers still fail on
    # any close.
    tolerate=(); [ "$name" = starved ] && tolerate=(--tolerate-server-closes)
    start_load "$name" steady --url "$(url "$name")" --duration 120 --connections 20 --rate 10 --barrier-rooms 6 "${tolerate[@]}"
done
for name in starved throttled control; do wait_ready "$name"; done
# What this traffic needs: the control's CPU over 5 s, from its own process_cpu_seconds_total.
cpu_of() { http_get "http://127.0.0.1:${PORT[$1]}/metrics" | awk '$1 == "process_cpu_seconds_total" { print $2 }'; }
C0=$(cpu_of control); T0=$(date +%s.%N); sleep 5; C1=$(cpu_of control); T1=$(date +%s.%N)
read -r NEED Q_STARVED Q_THROTTLED < <(python3 -c "
c0, c1, t0, t1, s, t = map(float, '$C0 $C1 $T0 $T1 $STARVED_SHARE $THROTTLED_SHARE'.split())
need = (c1 - c0) / (t1 - t0)
q = lambda share: max(1000, min(100000, int(need * share * 100000)))
print(f'{need:.4f} {q(s)} {q(t)}')")
set_quota "$CG_STARVED" "$Q_STARVED"
set_quota "$CG_THROTTLED" "$Q_THROTTLED"
QUOTA_AT=$(date +%s.%N)
for name in starved throttled control; do kill -USR1 "${LOAD[$name]}"; done
ok "the control needs $NEED CPU for this traffic: quota starved ${Q_STARVED}us / throttled ${Q_THROTTLED}us per 100ms period"
python3 scripts/alert_prom.py watch --prom "$PROM" --since "$QUOTA_AT" --timeout 75 --min-seconds 35 --json "$RESULTS" \
    --expect "$(instance starved)=OWPHandlingLatencyHigh" --expect "$(instance starved)=OWPSchedulingLate" \
    --observe "$(instance throttled)" \
    --never-firing "$(instance control)" \
    --name "$(instance starved)=starved" --name "$(instance throttled)=throttled" --name "$(instance control)=control"
WINDOW="$(python3 -c "import time; print(int(time.time() - $QUOTA_AT))")s"
printf '     measured by the servers over the %s since the quota (Prometheus histogram_quantile):\n' "$WINDOW"
quantiles "$WINDOW" starved throttled control
for name in starved throttled control; do finish_load "$name"; done
STARVED_CLOSES=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('$(url starved)', {}).get('closed_by_server', {}) or '')" "$WORK/load-starved.json" 2>/dev/null || true)
[ -n "$STARVED_CLOSES" ] && printf '     note: the starved server closed members (close code: count) %s: it read its backlog in clumps\n' "$STARVED_CLOSES"
printf '     measured by the clients (ping -> pong) over the same time:\n'
python3 - "$WORK" starved throttled control <<'EOF'
import json, sys
work, names = sys.argv[1], sys.argv[2:]
nan = float("nan")
for name in names:
    (url, stats), = json.load(open(f"{work}/load-{name}.json"))["result"].items()
    q = stats.get("client_rtt_after_mark", {})
    print(f"       {name:<10} {'client ping -> pong':<32} n={q.get('n', 0):<6} p50={q.get('p50_ms', nan):7.1f} ms  "
          f"p95={q.get('p95_ms', nan):7.1f} ms  p99={q.get('p99_ms', nan):7.1f} ms  max={q.get('max_ms', nan):.1f} ms")
EOF
printf '     cgroup cpu.stat: starved: %s\n                      throttled: %s\n' "$(cpu_stat "$CG_STARVED")" "$(cpu_stat "$CG_THROTTLED")"
ok "phase 3 done at $(elapsed)s"

# --- Summary ---------------------------------------------------------------------------------
step "Summary"
python3 - "$RESULTS" "$RULES_TOTAL" <<'EOF' || exit 1
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
names = {r["alert"] for r in rows}
for r in rows:
    print(f"     {r['alert']:<30} on {r['name']:<10} pending after {r['pending_s']:5.1f}s, firing after {r['firing_s']:5.1f}s")
total = int(sys.argv[2])
if len(names) != total:
    sys.exit(f"FAIL {len(names)} of the {total} alerts were seen firing: {sorted(names)}")
print(f"ok   all {total} alerts fired when provoked; none fired for the healthy party or the unquota'd control")
EOF
