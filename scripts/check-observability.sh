#!/usr/bin/env bash
# Checks the operator-facing observability artefacts against promtool, a running owp-server
# and a real Prometheus:
#
#   1. grafana/alerts.yml passes `promtool check rules`;
#   2. grafana/alerts.test.yml passes `promtool test rules` (a firing and a quiet case per
#      alert), and every runbook_url points at an existing heading;
#   3. grafana/dashboard.json is well-formed (uid, datasource variable used by every panel and
#      target, instance variable) and every PromQL expression in it parses;
#   4. the server's /metrics passes `promtool check metrics` with no findings, exposes every
#      documented metric family, and every owp_* series the dashboard and alerts use exists;
#   5. a real Prometheus scraping the server (job="owp-server", every 1 s, the alert rules
#      loaded) sees owp_rooms_active == 2 after a Python websockets client created two rooms,
#      evaluates every alert rule without error, and runs every dashboard query.
#
# Usage (from the repository root): scripts/check-observability.sh [path/to/owp-server]
# The server binary defaults to .build/debug/owp-server. Exits non-zero on any failure.
set -euo pipefail

BIN="${1:-.build/debug/owp-server}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

step() { printf '\n==> %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/owp-observability.XXXXXX")"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    if [ "$status" -eq 0 ]; then
        printf '\nAll observability checks passed.\n'
    else
        printf '\nObservability checks FAILED (exit %s).\n' "$status" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, http_get, wait_http
# shellcheck source=scripts/lib/http.sh
source "$ROOT/scripts/lib/http.sh"

# --- Prerequisites ------------------------------------------------------------------------
step "Prerequisites"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "promtool/prometheus missing: installing the prometheus package"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi
command -v python3 >/dev/null 2>&1 || fail "python3 is required"
if ! python3 -c 'import websockets' >/dev/null 2>&1; then
    echo "python websockets missing: installing it with pip"
    python3 -m pip install --quiet websockets || python3 -m pip install --quiet --user websockets
fi
[ -x "$BIN" ] || fail "server binary not found or not executable: $BIN"
ok "$(promtool --version 2>&1 | head -n 1)"
ok "$(prometheus --version 2>&1 | head -n 1)"
ok "python websockets $(python3 -c 'import websockets; print(websockets.__version__)')"
ok "server binary $BIN"

# --- Alert rules --------------------------------------------------------------------------
step "promtool check rules grafana/alerts.yml"
promtool check rules grafana/alerts.yml
ok "alert rules are valid"

step "promtool test rules grafana/alerts.test.yml"
promtool test rules grafana/alerts.test.yml
python3 - grafana/alerts.yml grafana/alerts.test.yml <<'EOF' || exit 1
# Every alert must have a test case where it fires and one where it does not.
import re, sys
rules = open(sys.argv[1]).read()
tests = open(sys.argv[2]).read()
alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)", rules, re.M)
cases = re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\[\])?", tests)
missing = []
for alert in alerts:
    fires = any(name == alert and not empty for name, empty in cases)
    quiet = any(name == alert and empty for name, empty in cases)
    if not (fires and quiet):
        missing.append(f"{alert} (firing case: {fires}, quiet case: {quiet})")
if missing:
    sys.exit("FAIL alerts without both a firing and a quiet test case: " + ", ".join(missing))
print(f"ok   every alert ({', '.join(alerts)}) has a firing and a quiet test case")
EOF

step "runbook_url anchors"
python3 - grafana/alerts.yml <<'EOF' || exit 1
# Every alert links to a runbook section that exists (GitHub heading anchors). The links are
# absolute (https://<host>/<owner>/<repo>/blob/<ref>/<path>#<anchor>, so that Alertmanager and
# Grafana can open them); <path> is checked in this checkout.
import os, re, sys
rules = open(sys.argv[1]).read()
alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)", rules, re.M)
urls = re.findall(r'runbook_url:\s*"?([^"\s]+)"?', rules)
problems = [] if len(urls) == len(alerts) else [f"{len(alerts)} alerts but {len(urls)} runbook_url annotations"]
def slug(heading):
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))
for url in urls:
    document, _, anchor = url.partition("#")
    repo_path = re.match(r"^https?://[^/]+/[^/]+/[^/]+/blob/[^/]+/(.+)$", document)
    if not repo_path:
        problems.append(f"{url}: not an absolute https://<host>/<owner>/<repo>/blob/<ref>/<path> link")
        continue
    path = repo_path.group(1)
    if not os.path.isfile(path):
        problems.append(f"{url}: {path} does not exist")
        continue
    anchors = {slug(h) for h in re.findall(r"^#+\s+(.*)$", open(path).read(), re.M)}
    if anchor not in anchors:
        problems.append(f"{url}: no heading with anchor #{anchor} in {path}")
if problems:
    sys.exit("FAIL runbook links:\n  " + "\n  ".join(problems))
print(f"ok   all {len(urls)} runbook_url anchors exist ({', '.join(sorted(set(u.split('#')[0] for u in urls)))})")
EOF

# --- Dashboard ----------------------------------------------------------------------------
step "grafana/dashboard.json: structure and PromQL"
python3 - grafana/dashboard.json "$WORK/dashboard-rules.yml" "$WORK/dashboard-exprs.txt" <<'EOF' || exit 1
import json, re, sys

path, rules_out, exprs_out = sys.argv[1:4]
dashboard = json.load(open(path))
errors = []

def need(condition, message):
    if not condition:
        errors.append(message)

need(dashboard.get("uid") == "owp-server", f"uid is {dashboard.get('uid')!r}, expected 'owp-server'")
need(dashboard.get("title") == "OpenWatchParty session server", f"unexpected title {dashboard.get('title')!r}")
need(isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36, "schemaVersion missing or too old")
variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
ds = variables.get("datasource")
need(ds is not None and ds.get("type") == "datasource" and ds.get("query") == "prometheus",
     "no 'datasource' template variable of type datasource/prometheus")
instance = variables.get("instance")
definition = json.dumps(instance.get("query")) if instance else ""
need(instance is not None and "label_values(owp_build_info, instance)" in definition,
     "no 'instance' variable from label_values(owp_build_info, instance)")

DS_UIDS = {"${datasource}", "$datasource", "[[datasource]]"}

def uses_variable(ds):
    if isinstance(ds, dict):
        return ds.get("uid") in DS_UIDS
    return isinstance(ds, str) and ds in DS_UIDS

def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))

exprs = []
panel_count = 0
ids = set()
for panel in walk(dashboard.get("panels", [])):
    title = panel.get("title", "?")
    need(panel.get("id") not in ids, f"duplicate panel id {panel.get('id')}")
    ids.add(panel.get("id"))
    if panel.get("type") == "row":
        continue
    panel_count += 1
    need(panel.get("type") in ("timeseries", "stat"), f"panel {title!r}: unexpected type {panel.get('type')!r}")
    need(uses_variable(panel.get("datasource")), f"panel {title!r} does not use the $datasource variable")
    targets = panel.get("targets") or []
    need(targets, f"panel {title!r} has no targets")
    for target in targets:
        need(uses_variable(target.get("datasource")), f"panel {title!r} target {target.get('refId')} does not use $datasource")
        need(bool(target.get("expr")), f"panel {title!r} target {target.get('refId')} has no expr")
        if target.get("expr"):
            exprs.append((f"panel {title!r} {target.get('refId')}", target["expr"]))
        need('instance=~"$instance"' in target.get("expr", ""), f"panel {title!r} target {target.get('refId')} ignores $instance")
for annotation in dashboard.get("annotations", {}).get("list", []):
    if annotation.get("expr"):
        need(uses_variable(annotation.get("datasource")), f"annotation {annotation.get('name')!r} does not use $datasource")
        exprs.append((f"annotation {annotation.get('name')!r}", annotation["expr"]))

# Grafana variables -> concrete values, so promtool can parse the expressions.
SUBST = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__range_s": "3600",
         "__interval_ms": "60000", "instance": ".*"}
def substitute(expr, where):
    def one(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in SUBST:
            errors.append(f"{where}: unknown Grafana variable {match.group(0)!r}")
            return match.group(0)
        return SUBST[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", one, expr)

concrete = [(where, substitute(expr, where)) for where, expr in exprs]
with open(rules_out, "w") as f:
    f.write("groups:\n  - name: dashboard-expressions\n    rules:\n")
    for i, (where, expr) in enumerate(concrete):
        f.write(f"      # {where}\n      - record: dashboard:expr_{i}\n        expr: {json.dumps(expr)}\n")
with open(exprs_out, "w") as f:
    for where, expr in concrete:
        f.write(json.dumps({"where": where, "expr": expr}) + "\n")
if instance:
    with open(exprs_out, "a") as f:
        f.write(json.dumps({"where": "variable instance", "expr": "owp_build_info"}) + "\n")

if errors:
    sys.exit("FAIL dashboard:\n  " + "\n  ".join(errors))
print(f"ok   uid {dashboard['uid']!r}, schemaVersion {dashboard['schemaVersion']}, variables {sorted(variables)}")
print(f"ok   {panel_count} panels, every panel and target uses $datasource and filters on $instance")
print(f"ok   {len(exprs)} PromQL expressions extracted (variables substituted)")
EOF
promtool check rules "$WORK/dashboard-rules.yml" >"$WORK/dashboard-rules.out" 2>&1 || {
    cat "$WORK/dashboard-rules.out"
    echo "dashboard:expr_<n> is the n-th expression:"
    python3 -c 'import json, sys
for i, line in enumerate(open(sys.argv[1])):
    item = json.loads(line)
    print("  expr_%d: %s: %s" % (i, item["where"], item["expr"]))' "$WORK/dashboard-exprs.txt"
    fail "a dashboard expression does not parse (see above)"
}
ok "every dashboard expression parses ($(grep -o '[0-9]* rules found' "$WORK/dashboard-rules.out"))"

# --- The server's /metrics ----------------------------------------------------------------
step "owp-server /metrics: promtool check metrics"
SERVER_PORT=$(free_port)
"$BIN" --host 127.0.0.1 --port "$SERVER_PORT" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SERVER_PORT/readyz" 20 || { cat "$WORK/server.log"; fail "server did not become ready on port $SERVER_PORT"; }
ok "owp-server listening on 127.0.0.1:$SERVER_PORT (/readyz answers)"
http_get "http://127.0.0.1:$SERVER_PORT/metrics" >"$WORK/metrics.txt"
LINT_STATUS=0
promtool check metrics <"$WORK/metrics.txt" >"$WORK/lint.txt" 2>&1 || LINT_STATUS=$?
if [ "$LINT_STATUS" -ne 0 ] || [ -s "$WORK/lint.txt" ]; then
    echo "promtool check metrics findings (exit $LINT_STATUS):"
    cat "$WORK/lint.txt"
    fail "/metrics has lint findings"
fi
ok "promtool check metrics: exit 0, no findings ($(grep -c '^# TYPE' "$WORK/metrics.txt") metric families)"

python3 - "$WORK/metrics.txt" "$WORK/dashboard-exprs.txt" grafana/alerts.yml <<'EOF' || exit 1
import json, re, sys
metrics_path, exprs_path, alerts_path = sys.argv[1:4]
text = open(metrics_path).read()
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
series = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}
# The families and types documented in docs/operations.md, "Metrics reference": the table is
# the contract, so a family that the code adds, drops or retypes without the docs fails here.
reference = open("docs/operations.md").read().split("## Metrics reference", 1)[1]
expected = dict(re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram)\b", reference, re.M))
if len(expected) < 20:
    sys.exit(f"FAIL docs/operations.md metrics reference: only {len(expected)} families parsed")
problems = [f"{name}: expected {kind}, got {types.get(name, 'nothing')}" for name, kind in expected.items() if types.get(name) != kind]
problems += [f"{name}: exposed but not in docs/operations.md's metrics reference" for name in types if name not in expected]
used = set()
for line in open(exprs_path):
    used |= set(re.findall(r"\b(?:owp|process)_[a-z0-9_]+", json.loads(line)["expr"]))
alert_names = set(re.findall(r"\b(?:owp|process)_[a-z0-9_]+", open(alerts_path).read()))
problems += [f"dashboard uses {name}, which /metrics does not expose" for name in sorted(used - series)]
problems += [f"alerts use {name}, which /metrics does not expose" for name in sorted(alert_names - series)]
if problems:
    sys.exit("FAIL metric families:\n  " + "\n  ".join(problems))
print(f"ok   all {len(expected)} documented metric families exposed with the documented types")
print(f"ok   all {len(used)} owp_*/process_* series used by the dashboard and {len(alert_names)} used by the alerts exist")
EOF

# --- A real Prometheus --------------------------------------------------------------------
step "Prometheus scraping owp-server (job=\"owp-server\", every 1s, alert rules loaded)"
PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/grafana/alerts.yml
scrape_configs:
  - job_name: owp-server
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$SERVER_PORT']
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"
wait_http "$PROM/-/ready" 30 || { cat "$WORK/prometheus.log"; fail "Prometheus did not become ready on port $PROM_PORT"; }
ok "Prometheus ready on 127.0.0.1:$PROM_PORT"

# The value of an instant query with one result ("" when there is none).
prom_value() {
    python3 - "$PROM" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
with urllib.request.urlopen(url, timeout=5) as response:
    body = json.load(response)
result = body["data"]["result"] if body.get("status") == "success" else []
print(result[0]["value"][1] if len(result) == 1 else "")
EOF
}

step "Two rooms from a Python websockets client"
cat >"$WORK/rooms_client.py" <<'EOF'
"""Creates two rooms from two connections and keeps both connected until killed."""
import asyncio, json, sys, time
import websockets

URL, READY = sys.argv[1], sys.argv[2]

def now_ms():
    return int(time.time() * 1000)

async def recv_type(ws, type_, timeout=5):
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("type") == type_:
            return message

async def main():
    connections, rooms = [], []
    for i in (1, 2):
        ws = await websockets.connect(URL)
        connections.append(ws)
        await recv_type(ws, "client_hello")
        await ws.send(json.dumps({"type": "create_room", "ts": now_ms(),
                                  "payload": {"name": f"Observability check {i}", "user_name": f"checker{i}"}}))
        rooms.append((await recv_type(ws, "room_state"))["room"])
    assert len(set(rooms)) == 2, rooms
    print("created rooms " + " ".join(rooms), flush=True)
    with open(READY, "w") as f:
        f.write(" ".join(rooms))

    async def drain(ws):
        async for _ in ws:
            pass

    await asyncio.gather(*(drain(ws) for ws in connections))
    print("a connection closed", flush=True)

asyncio.run(main())
EOF
python3 "$WORK/rooms_client.py" "ws://127.0.0.1:$SERVER_PORT/ws" "$WORK/rooms.ready" >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
for _ in $(seq 1 50); do
    [ -s "$WORK/rooms.ready" ] && break
    kill -0 "$CLIENT_PID" 2>/dev/null || { cat "$WORK/client.log"; fail "the websockets client exited before creating the rooms"; }
    sleep 0.2
done
[ -s "$WORK/rooms.ready" ] || { cat "$WORK/client.log"; fail "the websockets client did not create two rooms within 10s"; }
ok "created rooms $(cat "$WORK/rooms.ready") (clients stay connected)"
ok "server says owp_rooms_active $(grep '^owp_rooms_active ' <(http_get "http://127.0.0.1:$SERVER_PORT/metrics") | cut -d' ' -f2)"

step "Query Prometheus until owp_rooms_active == 2 (timeout 30s)"
ROOMS=""
for i in $(seq 1 30); do
    ROOMS=$(prom_value 'owp_rooms_active' || true)
    if [ -n "$ROOMS" ] && python3 -c "import sys; sys.exit(0 if float('$ROOMS') == 2 else 1)"; then
        break
    fi
    kill -0 "$CLIENT_PID" 2>/dev/null || { cat "$WORK/client.log"; fail "the websockets client disconnected"; }
    sleep 1
done
[ -n "$ROOMS" ] && python3 -c "import sys; sys.exit(0 if float('$ROOMS') == 2 else 1)" \
    || fail "Prometheus reports owp_rooms_active=${ROOMS:-<no result>} after 30s, expected 2"
ok "Prometheus /api/v1/query?query=owp_rooms_active returns 2 (after ~${i}s)"
UP=$(prom_value 'up{job="owp-server"}')
[ "$UP" = "1" ] || fail "up{job=\"owp-server\"} is ${UP:-<no result>}, expected 1"
ok "up{job=\"owp-server\"} == 1"
CONNS=$(prom_value 'owp_connections_active{job="owp-server"}')
ok "owp_connections_active = $CONNS"

step "Alert rules evaluated by Prometheus"
for _ in $(seq 1 20); do
    python3 - "$PROM" "$(grep -c '^ *- alert: ' grafana/alerts.yml)" >"$WORK/rules.txt" 2>&1 <<'EOF' && break
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/api/v1/rules?type=alert", timeout=5) as response:
    groups = json.load(response)["data"]["groups"]
rules = [rule for group in groups for rule in group["rules"]]
bad = [f"{r['name']}: health={r.get('health')} {r.get('lastError', '')}" for r in rules if r.get("health") != "ok"]
firing = [r["name"] for r in rules if r.get("state") == "firing"]
if len(rules) != int(sys.argv[2]) or bad:
    sys.exit(f"{len(rules)} alert rules loaded; not healthy: {bad}")
print(f"ok   {len(rules)} alert rules loaded and evaluated without error ({', '.join(r['name'] for r in rules)}); firing: {firing or 'none'}")
EOF
    sleep 1
done
cat "$WORK/rules.txt"
grep -q '^ok ' "$WORK/rules.txt" || fail "alert rules did not evaluate cleanly in Prometheus"

step "Every dashboard query against Prometheus"
python3 - "$PROM" "$WORK/dashboard-exprs.txt" <<'EOF' || exit 1
import json, sys, urllib.error, urllib.parse, urllib.request
prom, path = sys.argv[1:3]
failures, with_data, total = [], 0, 0
for line in open(path):
    item = json.loads(line)
    total += 1
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": item["expr"]})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        failures.append(f"{item['where']}: {body.get('error')}")
    elif body["data"]["result"]:
        with_data += 1
if failures:
    sys.exit("FAIL dashboard queries rejected by Prometheus:\n  " + "\n  ".join(failures))
print(f"ok   {total} dashboard queries accepted by Prometheus ({with_data} already return data)")
EOF
