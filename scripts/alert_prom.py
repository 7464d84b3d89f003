#!/usr/bin/env python3
"""Prometheus side of scripts/check-alerts-live.sh: waits for targets, watches alerts, reports.

Every subcommand polls a Prometheus HTTP API on loopback and is bounded by --timeout; all
print `ok   ...` lines for what holds and `FAIL ...` (on stderr, exit 1) for what does not.

    alert_prom.py targets --prom URL --expect 127.0.0.1:P1 [--expect ...] [--timeout 30]
        Waits until Prometheus's active targets are exactly these, each scraped up at least once.
    alert_prom.py watch --prom URL --since EPOCH --timeout S [--min-seconds S] \
            [--expect INSTANCE=ALERT ...] [--quiet INSTANCE ...] [--never-firing INSTANCE ...] \
            [--observe INSTANCE ...] [--name INSTANCE=label ...]
        Polls /api/v1/alerts every 0.5 s until every expected alert is firing on its instance
        (and at least --min-seconds have passed). Fails at once if a --quiet instance has any
        alert pending or firing, or a --never-firing instance has one firing (its pending
        alerts are reported: the alert's own `for:` absorbed a moment); fails at --timeout if an expected alert never fired. Prints,
        per expectation, how long after EPOCH (the start of the provocation) it became pending
        and firing, and which other alerts the provoked and --observe instances had meanwhile
        (a note, not a failure: a provocation may legitimately trip a second alert, and the claim checked
        here is that each alert fires when provoked and stays quiet when healthy).
        --json FILE appends one line per fired alert: {alert, instance, pending_s, firing_s}.
    alert_prom.py resolved --prom URL --instance I --alert A --since EPOCH --timeout S
        Waits until alert A is no longer pending or firing on instance I.
    alert_prom.py value --prom URL EXPR
        Prints the value of an instant query with at most one result ("" if none).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def api(prom: str, path: str, **params) -> dict:
    url = prom + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body.get('error')}")
    return body["data"]


def fail(message: str):
    print(f"FAIL {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def value(prom: str, expr: str) -> str:
    result = api(prom, "/api/v1/query", query=expr)["result"]
    if len(result) > 1:
        raise RuntimeError(f"{expr}: {len(result)} results, expected at most one")
    return result[0]["value"][1] if result else ""


def active_alerts(prom: str) -> list[dict]:
    return api(prom, "/api/v1/alerts")["alerts"]


def cmd_targets(args):
    deadline = time.monotonic() + args.timeout
    want = set(args.expect)
    seen = set()
    while time.monotonic() < deadline:
        targets = api(args.prom, "/api/v1/targets", state="active")["activeTargets"]
        seen = {t["labels"].get("instance") for t in targets}
        healthy = {t["labels"].get("instance") for t in targets if t.get("health") == "up"}
        if seen == want and healthy == want:
            print(f"ok   Prometheus scrapes exactly {', '.join(sorted(want)) or 'nothing'}" + (" (all up)" if want else ""), flush=True)
            return
        time.sleep(0.5)
    fail(f"Prometheus targets are {sorted(seen)}, expected {sorted(want)} all up, after {args.timeout}s")


def describe(alert: dict) -> str:
    labels = alert["labels"]
    extra = f" reason={labels['reason']}" if "reason" in labels else ""
    return f"{labels['alertname']}{extra} ({alert['state']}, value {alert.get('value', '?')})"


def cmd_watch(args):
    names = dict(item.split("=", 1) for item in args.name)
    expected: dict[tuple[str, str], dict] = {}
    for item in args.expect:
        instance, alert = item.split("=", 1)
        expected[(instance, alert)] = {}
    expect_instances = {instance for instance, _ in expected} | set(args.observe)
    others: dict[tuple[str, str], str] = {}
    quiet = set(args.quiet)
    never_firing = set(args.never_firing)
    pending_seen: dict[tuple[str, str], float] = {}
    label = lambda instance: f"{names.get(instance, instance)} ({instance})"  # noqa: E731
    start = time.monotonic()
    deadline = start + args.timeout
    while True:
        now_epoch = time.time()
        alerts = active_alerts(args.prom)
        for alert in alerts:
            instance, name = alert["labels"].get("instance"), alert["labels"].get("alertname")
            if instance in quiet or (instance in never_firing and alert["state"] == "firing"):
                fail(f"{label(instance)} should be quiet but has {describe(alert)} "
                     f"{now_epoch - args.since:.1f}s after the phase started")
            if instance in never_firing:
                pending_seen.setdefault((instance, name), now_epoch - args.since)
            if instance in expect_instances and (instance, name) not in expected:
                if others.get((instance, name)) != "firing":
                    others[(instance, name)] = alert["state"]
            record = expected.get((instance, name))
            if record is not None:
                record.setdefault("pending_s", now_epoch - args.since)
                if alert["state"] == "firing" and "firing_s" not in record:
                    record["firing_s"] = now_epoch - args.since
                    record["value"] = alert.get("value")
                    record["labels"] = alert["labels"]
                    active_at = alert.get("activeAt", "")
                    print(f"ok   {name} firing on {label(instance)}: pending after {record['pending_s']:.1f}s, "
                          f"firing after {record['firing_s']:.1f}s (value {record['value']}, activeAt {active_at})",
                          flush=True)
        elapsed = time.monotonic() - start
        if all("firing_s" in r for r in expected.values()) and elapsed >= args.min_seconds:
            break
        if time.monotonic() >= deadline:
            missing = [f"{alert} on {label(instance)} ({'pending since %.1fs' % r['pending_s'] if 'pending_s' in r else 'never pending'})"
                       for (instance, alert), r in expected.items() if "firing_s" not in r]
            fail(f"not firing after {args.timeout}s: " + "; ".join(missing))
        time.sleep(0.5)
    for (instance, alert), state in sorted(others.items()):
        print(f"     note: {label(instance)} also had {alert} ({state}) during the provocation", flush=True)
    for instance in sorted(set(args.observe)):
        if not any(i == instance for i, _ in others):
            print(f"     note: {label(instance)} had no alert pending or firing", flush=True)
    for instance in sorted(quiet):
        print(f"ok   {label(instance)}: no alert pending or firing for {time.monotonic() - start:.0f}s", flush=True)
    for instance in sorted(never_firing):
        print(f"ok   {label(instance)}: no alert firing for {time.monotonic() - start:.0f}s", flush=True)
    for (instance, alert), at in sorted(pending_seen.items()):
        print(f"     note: {label(instance)} had {alert} pending from {at:.1f}s, never firing", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for (instance, alert), r in expected.items():
                f.write(json.dumps({"alert": alert, "instance": instance, "name": names.get(instance, instance),
                                    "pending_s": round(r["pending_s"], 1), "firing_s": round(r["firing_s"], 1)}) + "\n")


def cmd_resolved(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        still = [a for a in active_alerts(args.prom)
                 if a["labels"].get("instance") == args.instance and a["labels"].get("alertname") == args.alert]
        if not still:
            print(f"ok   {args.alert} resolved on {args.instance} {time.time() - args.since:.1f}s after the recovery", flush=True)
            return
        time.sleep(0.5)
    fail(f"{args.alert} still active on {args.instance} {args.timeout}s after the recovery")


def cmd_value(args):
    print(value(args.prom, args.expr))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("targets")
    p.add_argument("--prom", required=True)
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_targets)
    p = sub.add_parser("watch")
    p.add_argument("--prom", required=True)
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--min-seconds", type=float, default=0)
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--quiet", action="append", default=[])
    p.add_argument("--never-firing", action="append", default=[])
    p.add_argument("--observe", action="append", default=[])
    p.add_argument("--name", action="append", default=[])
    p.add_argument("--json")
    p.set_defaults(func=cmd_watch)
    p = sub.add_parser("resolved")
    p.add_argument("--prom", required=True)
    p.add_argument("--instance", required=True)
    p.add_argument("--alert", required=True)
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_resolved)
    p = sub.add_parser("value")
    p.add_argument("--prom", required=True)
    p.add_argument("expr")
    p.set_defaults(func=cmd_value)
    args = parser.parse_args()
    if getattr(args, "timeout", 1) > 600:
        parser.error("--timeout is at most 600 s")
    try:
        args.func(args)
    except (OSError, RuntimeError) as error:
        fail(f"{args.command}: {error}")


if __name__ == "__main__":
    main()
