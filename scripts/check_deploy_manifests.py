#!/usr/bin/env python3
"""Checks on a rendered kustomization that generic schema validation cannot make.

Used by scripts/check-deploy.sh; needs PyYAML.

    check_deploy_manifests.py split RENDERED CORE_OUT CRD_OUT
        Split a multi-document rendering into the built-in kinds (for kubernetes-validate,
        which has no schemas for custom resources) and the Prometheus Operator's kinds.

    check_deploy_manifests.py verify RENDERED --alerts grafana/alerts.yml --rules-out FILE
        Check the custom resources (ServiceMonitor, PrometheusRule) field by field, check the
        deployment's invariants (one replica, grace period longer than the shutdown sequence,
        probes, hardening, no committed secret), and write the PrometheusRule's groups as a
        plain Prometheus rule file to FILE for `promtool check rules`.

Exit status 1 with one line per problem when anything is wrong.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

CRD_GROUP = "monitoring.coreos.com"
APP = "owp-server"
# Prometheus duration: one or more <number><unit>, e.g. 1m, 1h30m, 500ms.
DURATION = re.compile(r"^((\d+)(ms|s|m|h|d|w|y))+$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def load(path: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d is not None]
    if not docs:
        sys.exit(f"{path}: no documents")
    return docs


def is_crd_kind(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] == CRD_GROUP


def cmd_split(args: argparse.Namespace) -> int:
    docs = load(args.rendered)
    core = [d for d in docs if not is_crd_kind(d)]
    crds = [d for d in docs if is_crd_kind(d)]
    for out, part in ((args.core_out, core), (args.crd_out, crds)):
        Path(out).write_text(yaml.safe_dump_all(part, sort_keys=False), encoding="utf-8")
    print(f"{len(core)} built-in objects, {len(crds)} Prometheus Operator objects")
    return 0


class Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def need(self, condition: bool, where: str, message: str) -> bool:
        if not condition:
            self.problems.append(f"{self.source}: {where}: {message}")
        return bool(condition)


def string_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def check_common(c: Checker, docs: list[dict]) -> None:
    seen = set()
    for i, doc in enumerate(docs):
        where = f"document {i}"
        if not c.need(isinstance(doc, dict), where, "not a mapping"):
            continue
        c.need(isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], where, "apiVersion missing")
        c.need(isinstance(doc.get("kind"), str) and doc["kind"], where, "kind missing")
        meta = doc.get("metadata")
        if c.need(isinstance(meta, dict) and isinstance(meta.get("name"), str), where, "metadata.name missing"):
            key = (doc.get("apiVersion"), doc.get("kind"), meta.get("namespace"), meta["name"])
            c.need(key not in seen, where, f"duplicate object {key}")
            seen.add(key)
        c.need(doc.get("kind") != "Secret", where, "a Secret is rendered: secrets are never committed")


def check_service_monitor(c: Checker, sm: dict, services: list[dict]) -> None:
    where = f"ServiceMonitor/{sm['metadata']['name']}"
    c.need(sm.get("apiVersion") == f"{CRD_GROUP}/v1", where, "apiVersion must be monitoring.coreos.com/v1")
    spec = sm.get("spec")
    if not c.need(isinstance(spec, dict), where, "spec missing"):
        return
    selector = (spec.get("selector") or {}).get("matchLabels")
    c.need(string_map(selector) and selector, where, "spec.selector.matchLabels must be a non-empty string map")
    endpoints = spec.get("endpoints")
    if not c.need(isinstance(endpoints, list) and endpoints, where, "spec.endpoints must be a non-empty list"):
        return
    namespace = sm["metadata"].get("namespace")
    matches = [
        s for s in services
        if s["metadata"].get("namespace") == namespace
        and string_map(selector) and selector
        and all((s["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
    ]
    c.need(len(matches) == 1, where, f"selector {selector} must match exactly one Service (matches {len(matches)})")
    for j, ep in enumerate(endpoints):
        ew = f"{where} endpoints[{j}]"
        if not c.need(isinstance(ep, dict), ew, "not a mapping"):
            continue
        c.need(isinstance(ep.get("port"), str) and ep["port"], ew, "needs a named `port`")
        c.need(ep.get("path") == "/metrics", ew, "path must be /metrics")
        c.need(ep.get("scheme", "http") in ("http", "https"), ew, "scheme must be http or https")
        for key in ("interval", "scrapeTimeout"):
            if key in ep:
                c.need(isinstance(ep[key], str) and DURATION.match(ep[key]), ew, f"{key} is not a duration")
        if matches:
            names = [p.get("name") for p in matches[0]["spec"].get("ports", [])]
            c.need(ep.get("port") in names, ew, f"port {ep.get('port')!r} is not a port of the Service ({names})")


def check_prometheus_rule(c: Checker, pr: dict, alerts_path: Path, rules_out: Path | None) -> None:
    where = f"PrometheusRule/{pr['metadata']['name']}"
    c.need(pr.get("apiVersion") == f"{CRD_GROUP}/v1", where, "apiVersion must be monitoring.coreos.com/v1")
    groups = (pr.get("spec") or {}).get("groups")
    if not c.need(isinstance(groups, list) and groups, where, "spec.groups must be a non-empty list"):
        return
    names = set()
    for g in groups:
        gw = f"{where} group {g.get('name')!r}"
        c.need(isinstance(g.get("name"), str) and g["name"] not in names, gw, "needs a unique name")
        names.add(g.get("name"))
        if "interval" in g:
            c.need(isinstance(g["interval"], str) and DURATION.match(g["interval"]), gw, "interval is not a duration")
        rules = g.get("rules")
        if not c.need(isinstance(rules, list) and rules, gw, "rules must be a non-empty list"):
            continue
        for r in rules:
            rw = f"{gw} rule {r.get('alert') or r.get('record')!r}"
            c.need(("alert" in r) ^ ("record" in r), rw, "exactly one of alert / record")
            c.need(isinstance(r.get("expr"), (str, int, float)) and str(r["expr"]).strip(), rw, "expr missing")
            if "alert" in r:
                c.need(LABEL_NAME.match(str(r["alert"])) is not None, rw, "alert name is not a valid label value name")
                if "for" in r:
                    c.need(isinstance(r["for"], str) and DURATION.match(r["for"]), rw, "`for` is not a duration")
                c.need(string_map(r.get("labels", {})), rw, "labels must map strings to strings")
                c.need(string_map(r.get("annotations", {})), rw, "annotations must map strings to strings")
                c.need("severity" in (r.get("labels") or {}), rw, "needs a severity label")
                ann = r.get("annotations") or {}
                c.need("summary" in ann and "description" in ann, rw, "needs summary and description annotations")
            unknown = set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            c.need(not unknown, rw, f"unknown fields {sorted(unknown)}")
    # One source of truth: the rendered rule groups are exactly the ones in grafana/alerts.yml.
    source = yaml.safe_load(alerts_path.read_text(encoding="utf-8"))
    c.need(groups == (source or {}).get("groups"), where, f"spec.groups differ from {alerts_path}")
    if rules_out is not None:
        rules_out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")


def check_deployment(c: Checker, docs: list[dict]) -> None:
    deployments = by_kind(docs, "Deployment")
    if not c.need(len(deployments) == 1, "Deployment", f"expected exactly one, found {len(deployments)}"):
        return
    d = deployments[0]
    where = f"Deployment/{d['metadata']['name']}"
    spec = d.get("spec", {})
    c.need(spec.get("replicas") == 1, where, "replicas must be 1 while rooms live in memory")
    pod = spec.get("template", {}).get("spec", {})
    c.need(pod.get("automountServiceAccountToken") is False, where, "automountServiceAccountToken must be false")
    containers = pod.get("containers") or []
    if not c.need(len(containers) == 1, where, "expected one container"):
        return
    ctr = containers[0]
    cw = f"{where} container {ctr.get('name')}"

    # Settings the shutdown timing depends on, from the ConfigMap the container reads.
    settings: dict = {}
    for ref in ctr.get("envFrom") or []:
        name = (ref.get("configMapRef") or {}).get("name")
        for cm in by_kind(docs, "ConfigMap"):
            if cm["metadata"]["name"] == name:
                settings.update(cm.get("data") or {})
    c.need("JWT_SECRET" not in settings, cw, "JWT_SECRET must come from a Secret, not the ConfigMap")
    c.need(settings.get("LOG_FORMAT") == "json", cw, "LOG_FORMAT must be json in the cluster")

    def seconds(key: str, default: float) -> float:
        try:
            return float(settings.get(key, default))
        except ValueError:
            c.need(False, cw, f"{key} is not a number")
            return default

    drain = seconds("DRAIN_DELAY_SECONDS", 0)
    grace = seconds("SHUTDOWN_GRACE_SECONDS", 10)
    c.need(drain > 0, cw, "DRAIN_DELAY_SECONDS should be a few seconds in Kubernetes")
    cmd = (((ctr.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
    pre_stop = 0.0
    if c.need(len(cmd) == 2 and cmd[0] == "sleep", cw, "preStop must be exec [sleep, N]"):
        pre_stop = float(cmd[1])
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    total = pre_stop + drain + grace
    c.need(tgps > total, where,
           f"terminationGracePeriodSeconds {tgps} must exceed preStop {pre_stop:g} + DRAIN_DELAY_SECONDS {drain:g}"
           f" + SHUTDOWN_GRACE_SECONDS {grace:g} = {total:g}")

    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
    c.need(ports.get("http") == int(settings.get("PORT", 3000)), cw, "containerPort `http` must equal PORT")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = (ctr.get(probe) or {}).get("httpGet") or {}
        c.need(get.get("path") == path and get.get("port") in ("http", 3000), cw, f"{probe} must GET {path} on http")

    sc = ctr.get("securityContext") or {}
    psc = pod.get("securityContext") or {}
    c.need(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, cw, "runAsNonRoot")
    c.need(sc.get("runAsUser", psc.get("runAsUser")) == 10001, cw, "runAsUser 10001")
    c.need(sc.get("readOnlyRootFilesystem") is True, cw, "readOnlyRootFilesystem")
    c.need(sc.get("allowPrivilegeEscalation") is False, cw, "allowPrivilegeEscalation false")
    c.need((sc.get("capabilities") or {}).get("drop") == ["ALL"], cw, "capabilities drop ALL")
    seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    c.need(seccomp == "RuntimeDefault", cw, "seccompProfile RuntimeDefault")
    res = ctr.get("resources") or {}
    c.need(bool(res.get("requests")) and bool(res.get("limits")), cw, "resources requests and limits")

    secret_env = [e for e in ctr.get("env") or [] if e.get("name") == "JWT_SECRET"]
    if c.need(len(secret_env) == 1, cw, "JWT_SECRET must be set from a Secret"):
        ref = (secret_env[0].get("valueFrom") or {}).get("secretKeyRef") or {}
        c.need("value" not in secret_env[0], cw, "JWT_SECRET must not have a literal value")
        c.need(ref.get("optional") is True and ref.get("name"), cw, "JWT_SECRET secretKeyRef must be optional")

    services = by_kind(docs, "Service")
    c.need(any(any(p.get("name") == "http" for p in s["spec"].get("ports", [])) for s in services),
           "Service", "needs a port named http")


def cmd_verify(args: argparse.Namespace) -> int:
    docs = load(args.rendered)
    c = Checker(args.rendered)
    check_common(c, docs)
    check_deployment(c, docs)
    monitors = by_kind(docs, "ServiceMonitor")
    rules = by_kind(docs, "PrometheusRule")
    c.need(len(monitors) == 1, "ServiceMonitor", f"expected exactly one, found {len(monitors)}")
    c.need(len(rules) == 1, "PrometheusRule", f"expected exactly one, found {len(rules)}")
    for sm in monitors:
        check_service_monitor(c, sm, by_kind(docs, "Service"))
    for pr in rules:
        check_prometheus_rule(c, pr, Path(args.alerts), Path(args.rules_out) if args.rules_out else None)
    for doc in docs:
        if is_crd_kind(doc):
            c.need(doc.get("kind") in ("ServiceMonitor", "PrometheusRule"), doc.get("kind", "?"),
                   "unexpected monitoring.coreos.com kind")
    if c.problems:
        print("\n".join(c.problems), file=sys.stderr)
        return 1
    print(f"{args.rendered}: {len(docs)} objects; deployment invariants, ServiceMonitor and PrometheusRule OK")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    split = sub.add_parser("split")
    split.add_argument("rendered")
    split.add_argument("core_out")
    split.add_argument("crd_out")
    split.set_defaults(run=cmd_split)
    verify = sub.add_parser("verify")
    verify.add_argument("rendered")
    verify.add_argument("--alerts", required=True)
    verify.add_argument("--rules-out")
    verify.set_defaults(run=cmd_verify)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
