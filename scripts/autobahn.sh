#!/usr/bin/env bash
# WebSocket conformance: runs Autobahn|Testsuite's fuzzing client against owp-server in echo
# mode (--echo-conformance: the very same transport, with a handler that echoes every text
# and binary message back). Runnable from anywhere; see docs/conformance.md.
#
#   bash scripts/autobahn.sh [quick|full] [SERVER_BINARY]
#
#   quick (default)  cases 1.* 2.* 5.* 6.* 7.* 12.1.* 13.1.*   (~80 s)
#   full             every case, "*": 517 cases, permessage-deflate 12.*/13.* included
#                    (~12-13 min on 2 cores, most of it the Python client deflating 12.*/13.*)
#   SERVER_BINARY    default .build/debug/owp-server (built by `swift build --build-tests`)
#
# Installs Autobahn|Testsuite (Python 2.7 only) into a virtualenv outside the repository,
# once: ~/.cache/owp-autobahn (override with OWP_AUTOBAHN_DIR). The Python 2.7 interpreter
# is pyenv's 2.7.18, or `python2.7` on PATH, or PYTHON27. All Python 2 packages are pinned.
# Reports go to out/autobahn/<mode>/ (git-ignored): index.json, index.html, one file per case.
# Prints a table per section and every FAILED and NON-STRICT case; exits non-zero if any case
# FAILED (its behaviour or its closing behaviour), if the number of cases run is not the mode's (265
# quick, 517 full), if wstest failed or timed out, or if the server died.
# Other overrides: OWP_AUTOBAHN_TIMEOUT (seconds for the whole wstest run; default 900
# quick, 5400 full), OWP_AUTOBAHN_OUT (report folder), OWP_AUTOBAHN_CASES (a JSON list of
# case patterns instead of the mode's, e.g. '["12.*"]'), OWP_AUTOBAHN_SERVER_ARGS (extra
# server flags, word-split, e.g. '--ws-compression-threshold 0').
set -euo pipefail

mode=${1:-quick}
# A binary given on the command line is relative to where the script was started.
if [[ -n ${2:-} ]]; then server_bin=$(realpath -m -- "$2"); fi
cd "$(dirname "$0")/.."
server_bin=${server_bin:-.build/debug/owp-server}
# expected: how many cases the pinned Autobahn|Testsuite has for the mode's patterns.
case $mode in
  quick) cases='["1.*", "2.*", "5.*", "6.*", "7.*", "12.1.*", "13.1.*"]'; expected=265; default_timeout=900 ;;
  full) cases='["*"]'; expected=517; default_timeout=5400 ;;
  *) echo "usage: $0 [quick|full] [SERVER_BINARY]" >&2; exit 2 ;;
esac
if [[ -n ${OWP_AUTOBAHN_CASES:-} ]]; then cases=$OWP_AUTOBAHN_CASES; expected=0; fi
[[ -x $server_bin ]] || { echo "autobahn: no server binary at $server_bin (run: swift build --build-tests)" >&2; exit 2; }

AB_DIR=${OWP_AUTOBAHN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/owp-autobahn}
OUT=${OWP_AUTOBAHN_OUT:-out/autobahn/$mode}
TIMEOUT=${OWP_AUTOBAHN_TIMEOUT:-$default_timeout}

# autobahntestsuite 25.10.1 pins most of its own dependencies; the rest are pinned here to the
# last releases that install and run on Python 2.7 (resolved and tested on this machine).
AB_PINS=(
  autobahntestsuite==25.10.1 autobahn==0.10.9 txaio==2.1.0 Twisted==19.10.0 zope.interface==4.6.0
  setuptools==44.0.0 six==1.16.0 wsaccel==0.6.6 ujson==2.0.3 attrs==21.4.0 Automat==22.10.0
  constantly==15.1.0 hyperlink==21.0.0 idna==2.10 incremental==16.10.1 typing==3.10.0.0
  PyHamcrest==1.10.1 cryptography==3.3.2 cffi==1.15.1 pycparser==2.21 enum34==1.1.10
  ipaddress==1.0.23 pyOpenSSL==19.1.0 service-identity==18.1.0 pyasn1==0.5.1
  pyasn1-modules==0.3.0 klein==17.10.0 Werkzeug==1.0.1 Jinja2==2.11.3 MarkupSafe==1.1.1
  unittest2==1.1.0 traceback2==1.4.0 linecache2==1.0.0 argparse==1.4.0
)
# virtualenv 20.22 dropped creating Python 2 environments.
BOOTSTRAP_PINS=("virtualenv==20.21.1" "platformdirs==3.11.0" "filelock==3.12.4" "distlib==0.3.9")

log() { printf '== autobahn: %s\n' "$*"; }

# --- install (idempotent) ----------------------------------------------------------------
install_autobahn() {
  local py27=${PYTHON27:-}
  if [[ -z $py27 ]]; then
    for candidate in "$HOME/.pyenv/versions/2.7.18/bin/python2.7" "$(command -v python2.7 || true)"; do
      [[ -n $candidate && -x $candidate ]] && { py27=$candidate; break; }
    done
  fi
  [[ -n $py27 && -x $py27 ]] || { echo "autobahn: no Python 2.7 found (set PYTHON27)" >&2; exit 2; }
  log "installing Autobahn|Testsuite into $AB_DIR (python: $py27)"
  mkdir -p "$AB_DIR"
  # virtualenv<20.22 lives in its own Python 3 venv, so no global virtualenv is touched.
  python3 -m venv --clear "$AB_DIR/bootstrap"
  "$AB_DIR/bootstrap/bin/python" -m pip install -q --disable-pip-version-check "${BOOTSTRAP_PINS[@]}"
  "$AB_DIR/bootstrap/bin/python" -m virtualenv -q --clear -p "$py27" "$AB_DIR/py27"
  printf '%s\n' "${AB_PINS[@]}" > "$AB_DIR/constraints.txt"
  "$AB_DIR/py27/bin/python" -m pip install -q --disable-pip-version-check --no-python-version-warning \
    -c "$AB_DIR/constraints.txt" "${AB_PINS[@]}"
  echo "${AB_PINS[*]}" > "$AB_DIR/py27/.owp-pins"
}
if [[ ! -x $AB_DIR/py27/bin/wstest ]] || [[ "$(cat "$AB_DIR/py27/.owp-pins" 2>/dev/null)" != "${AB_PINS[*]}" ]]; then
  install_autobahn
fi
WSTEST=$AB_DIR/py27/bin/wstest
log "$("$WSTEST" --autobahnversion 2>/dev/null | tr '\n' ' ')"

# --- the echo server on a free loopback port ---------------------------------------------
work=$(mktemp -d)
server_pid=
wstest_pid=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  if [[ -n $wstest_pid ]] && kill -0 "$wstest_pid" 2>/dev/null; then
    kill -TERM "$wstest_pid" 2>/dev/null || true  # timeout(1) passes it on to wstest
    wait "$wstest_pid" 2>/dev/null || true
  fi
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_log=$work/server.log
read -r -a extra_args <<< "${OWP_AUTOBAHN_SERVER_ARGS:-}"
# Big enough for 9.1.6/9.2.6 (16 MiB messages) and the 9.7/9.8 bursts; echo mode has no rate limit.
"$server_bin" --echo-conformance --host 127.0.0.1 --port "$port" --allowed-origins '*' \
  --max-message-size 16777216 --outbound-queue-size 100000 --log-level warning \
  "${extra_args[@]}" > "$server_log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$server_log" >&2; echo "autobahn: server exited at start" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$server_log" >&2; echo "autobahn: server not ready" >&2; exit 1; }
log "echo server pid $server_pid on ws://127.0.0.1:$port/ws ($server_bin)"

# --- the fuzzing client --------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cat > "$work/spec.json" <<EOF
{
  "outdir": "$OUT",
  "servers": [{"agent": "owp-server", "url": "ws://127.0.0.1:$port/ws"}],
  "cases": $cases,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF
cp "$work/spec.json" "$OUT/spec.json"
log "running $mode suite (cases $cases), reports in $OUT"
start=$(date +%s)
rc=0
# In the background, so that a TERM or INT to this script reaches the trap at once.
(cd "$work" && exec timeout --kill-after=10 "$TIMEOUT" "$WSTEST" -m fuzzingclient -s spec.json) > "$OUT/wstest.log" 2>&1 &
wstest_pid=$!
wait "$wstest_pid" || rc=$?
wstest_pid=
elapsed=$(( $(date +%s) - start ))
log "wstest exited $rc after ${elapsed}s (log: $OUT/wstest.log)"
[[ $rc -eq 124 || $rc -eq 137 ]] && echo "autobahn: wstest timed out after ${TIMEOUT}s" >&2

server_alive=1
kill -0 "$server_pid" 2>/dev/null || server_alive=0
cp "$server_log" "$OUT/server.log"

# --- the report ----------------------------------------------------------------------------
report_rc=0
python3 - "$OUT" "$mode" "$expected" <<'PY' || report_rc=$?
import json, os, re, sys
out, mode, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
index_path = os.path.join(out, "index.json")
if not os.path.exists(index_path):
    print("autobahn: no report (%s missing)" % index_path)
    sys.exit(1)
with open(index_path) as f:
    index = json.load(f)
if not index:
    print("autobahn: empty report")
    sys.exit(1)
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]

def clean(html):
    text = re.sub(r"<[^>]+>", "", html).strip()
    return "\n               ".join(line.strip() for line in text.splitlines() if line.strip())

def key(case_id):
    return [int(p) for p in case_id.split(".")]

def status(r):
    b, c = r.get("behavior"), r.get("behaviorClose")
    if "FAILED" in (b, c):
        return "FAILED"
    if b == "UNIMPLEMENTED":
        return "UNIMPLEMENTED"
    if "NON-STRICT" in (b, c):
        return "NON-STRICT"
    if b == "INFORMATIONAL":
        return "INFORMATIONAL"
    if b == "OK":
        return "OK"
    return "FAILED"  # anything unknown counts against

failed = 0
for agent, results in sorted(index.items()):
    sections = {}
    notes = []
    for case_id in sorted(results, key=key):
        r = results[case_id]
        s = status(r)
        sections.setdefault(case_id.split(".")[0], dict.fromkeys(COLUMNS, 0))[s] += 1
        if s in ("FAILED", "NON-STRICT"):
            desc = exp = ""
            try:
                with open(os.path.join(out, r["reportfile"])) as f:
                    detail = json.load(f)
                desc = clean(detail.get("description", ""))
                exp = clean(detail.get("expectation", ""))
            except Exception:
                pass
            notes.append((s, case_id, r, desc, exp))
    print("\nAutobahn|Testsuite fuzzingclient, %s suite, agent %s" % (mode, agent))
    header = "%-8s %6s" % ("section", "cases") + "".join(" %13s" % c for c in COLUMNS)
    print(header)
    print("-" * len(header))
    total = dict.fromkeys(COLUMNS, 0)
    for sec in sorted(sections, key=int):
        counts = sections[sec]
        for c in COLUMNS:
            total[c] += counts[c]
        print("%-8s %6d" % (sec, sum(counts.values())) + "".join(" %13d" % counts[c] for c in COLUMNS))
    print("-" * len(header))
    print("%-8s %6d" % ("total", sum(total.values())) + "".join(" %13d" % total[c] for c in COLUMNS))
    for s, case_id, r, desc, exp in notes:
        print("\n%s %s (behavior %s, close %s, remote close code %s)" % (
            s, case_id, r.get("behavior"), r.get("behaviorClose"), r.get("remoteCloseCode")))
        if desc:
            print("  description: %s" % desc)
        if exp:
            print("  expectation: %s" % exp)
    failed += total["FAILED"]
ran = sum(len(r) for r in index.values())
print("\n%d passed, %d failed" % (ran - failed, failed))
if expected and ran != expected:
    print("autobahn: %d cases ran, %d expected" % (ran, expected))
    sys.exit(1)
sys.exit(1 if failed else 0)
PY

status=0
if [[ $report_rc -ne 0 ]]; then status=1; fi
if [[ $rc -ne 0 ]]; then echo "autobahn: wstest failed (exit $rc); tail of its log:" >&2; tail -20 "$OUT/wstest.log" >&2; status=1; fi
if [[ $server_alive -eq 0 ]]; then echo "autobahn: the server died during the run; its log:" >&2; tail -40 "$OUT/server.log" >&2; status=1; fi
if [[ $status -eq 0 ]]; then log "$mode suite passed in ${elapsed}s"; else log "$mode suite FAILED"; fi
exit $status
