#!/usr/bin/env python3
"""Checks on a rendered kustomization that generic schema validation cannot make.

Used by scripts/check-deploy.sh; needs PyYAML.

    check_deploy_manifests.py split RENDERED CORE_OUT CRD_OUT
        Split a multi-document rendering into the built-in kinds (for kubernetes-validate,
        which has no schemas for custom resources) and the Prometheus Operator's kinds.

    check_deploy_manifests.py verify RENDERED --alerts grafana/alerts.yml --rules-out FILE
                                     --site {absent,present}
        Check the custom resources (ServiceMonitor, PrometheusRule) field by field, check the
        deployment's invariants (one replica, grace period longer than the shutdown sequence,
        probes, hardening, no committed secret, absolute runbook links), the site inputs
        (ALLOWED_ORIGINS and TRUSTED_PROXIES only from the ConfigMap owp-server-site, which
        the base must not render (`--site absent`) and an overlay must (`--site present`),
        with valid values), the admin API (loopback only, a token from the Secret, never
        behind a Service or a NetworkPolicy ingress rule), and write the PrometheusRule's
        groups as a plain Prometheus rule file to FILE for `promtool check rules`.

    check_deploy_manifests.py set-literal KUSTOMIZATION GENERATOR KEY=VALUE
        In a (scratch copy of a) kustomization, set a literal of the configMapGenerator named
        GENERATOR. Comments are lost: never run it on the repository's files.

    check_deploy_manifests.py rollout BEFORE AFTER GENERATOR
        Two renderings that differ only in a value of GENERATOR's ConfigMap: the ConfigMap's
        generated name must differ, the Deployment must reference the new name, and so its
        pod template must differ (a config change rolls the pod).

Exit status 1 with one line per problem when anything is wrong.
"""
from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

CRD_GROUP = "monitoring.coreos.com"
APP = "owp-server"
# Prometheus duration: one or more <number><unit>, e.g. 1m, 1h30m, 500ms.
DURATION = re.compile(r"^((\d+)(ms|s|m|h|d|w|y))+$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Settings only a site knows; the Deployment reads them from this ConfigMap, which only
# overlays generate (deploy/k8s/base/kustomization.yaml).
SITE_CONFIGMAP = "owp-server-site"
SITE_KEYS = ("ALLOWED_ORIGINS", "TRUSTED_PROXIES")
# A generated ConfigMap's name: the generator's name, optionally followed by kustomize's hash.
GENERATED_SUFFIX = r"(-[0-9a-z]{6,})?"
# An ALLOWED_ORIGINS entry as the server accepts it: http(s)://host[:port], host a DNS name,
# an IPv4 address or a [bracketed IPv6] address, no path, no trailing slash.
ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*)(:(\d{1,5}))?$")
LOOPBACK_NAMES = {"localhost"}


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
        problem = f"{self.source}: {where}: {message}"
        if not condition and problem not in self.problems:
            self.problems.append(problem)
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
                url = ann.get("runbook_url")
                c.need(is_absolute_http(url), rw,
                       f"runbook_url {url!r} must be an absolute http(s) URL (a relative link is not clickable"
                       " in Alertmanager or Grafana)")
            unknown = set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            c.need(not unknown, rw, f"unknown fields {sorted(unknown)}")
    # One source of truth: the rendered rule groups are exactly the ones in grafana/alerts.yml,
    # except for the runbook links' base, which an overlay may re-render with
    # `render-prometheusrule.py --runbook-base` (the anchors must stay).
    source = yaml.safe_load(alerts_path.read_text(encoding="utf-8"))
    c.need(without_runbook_base(groups) == without_runbook_base((source or {}).get("groups")), where,
           f"spec.groups differ from {alerts_path} (other than the runbook_url base)")
    if rules_out is not None:
        rules_out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")


def is_absolute_http(url: object) -> bool:
    if not isinstance(url, str) or any(ch.isspace() for ch in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def without_runbook_base(groups: object) -> object:
    """A copy of the rule groups whose runbook_urls are reduced to their #fragment."""
    if not isinstance(groups, list):
        return groups
    copy = yaml.safe_load(yaml.safe_dump(groups))
    for g in copy:
        for r in (g.get("rules") or []) if isinstance(g, dict) else []:
            ann = r.get("annotations") if isinstance(r, dict) else None
            if isinstance(ann, dict) and isinstance(ann.get("runbook_url"), str):
                ann["runbook_url"] = "#" + ann["runbook_url"].partition("#")[2]
    return copy


def generated(name: object, generator: str) -> bool:
    return isinstance(name, str) and re.fullmatch(re.escape(generator) + GENERATED_SUFFIX, name) is not None


def valid_origin(entry: str) -> bool:
    m = ORIGIN.match(entry)
    return m is not None and (m.group(4) is None or 1 <= int(m.group(4)) <= 65535)


def valid_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry.strip("[]") if "/" not in entry else entry, strict=False)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def env_entries(ctr: dict, name: str) -> list[dict]:
    return [e for e in ctr.get("env") or [] if e.get("name") == name]


def check_site_inputs(c: Checker, docs: list[dict], ctr: dict, cw: str, settings: dict, site: str) -> None:
    """ALLOWED_ORIGINS and TRUSTED_PROXIES: required inputs of an overlay, never base defaults."""
    configmaps = {cm["metadata"]["name"]: cm for cm in by_kind(docs, "ConfigMap")}
    for key in SITE_KEYS:
        c.need(key not in settings, cw,
               f"{key} is in the ConfigMap the container takes with envFrom: it belongs in the overlay's"
               f" {SITE_CONFIGMAP} (an `env` entry wins over envFrom, and a base default is wrong behind an ingress)")
        entries = env_entries(ctr, key)
        if not c.need(len(entries) == 1, cw, f"{key} must be set exactly once, from the ConfigMap {SITE_CONFIGMAP}"):
            continue
        entry = entries[0]
        c.need("value" not in entry, cw, f"{key} must not have a literal value (no default in the base)")
        ref = (entry.get("valueFrom") or {}).get("configMapKeyRef") or {}
        if not c.need(generated(ref.get("name"), SITE_CONFIGMAP) and ref.get("key") == key, cw,
                      f"{key} must come from configMapKeyRef {SITE_CONFIGMAP}/{key} (found {ref or entry})"):
            continue
        c.need(ref.get("optional", False) is False, cw,
               f"{key}'s configMapKeyRef must be optional: false, so that a missing site ConfigMap stops the pod")
        cm = configmaps.get(ref["name"])
        if site == "absent":
            c.need(cm is None, cw,
                   f"the base renders {ref['name']}: only overlays may provide {SITE_CONFIGMAP} (no site defaults in the base)")
            continue
        if not c.need(cm is not None, cw, f"{key}: the overlay must generate the ConfigMap {SITE_CONFIGMAP} (not rendered)"):
            continue
        c.need(ref["name"] != SITE_CONFIGMAP, cw,
               f"{SITE_CONFIGMAP} must come from a configMapGenerator (hashed name), so that a change rolls the pod")
        value = (cm.get("data") or {}).get(key)
        if not c.need(isinstance(value, str) and value.strip(), cw, f"{ref['name']} must provide a non-empty {key}"):
            continue
        items = [v.strip() for v in value.split(",") if v.strip()]
        if key == "ALLOWED_ORIGINS":
            c.need("*" not in items, cw, "ALLOWED_ORIGINS must name the Jellyfin origin(s), never `*`, in a committed overlay")
            bad = [v for v in items if v != "*" and not valid_origin(v)]
            c.need(not bad, cw, f"ALLOWED_ORIGINS entries {bad} are not scheme://host[:port] (no path, no trailing slash)")
        else:
            bad = [v for v in items if not valid_network(v)]
            c.need(not bad, cw, f"TRUSTED_PROXIES entries {bad} are not IP addresses or CIDR networks")
    sites = [n for n in configmaps if generated(n, SITE_CONFIGMAP)]
    if site == "absent":
        c.need(not sites, "ConfigMap", f"the base renders {sites}: {SITE_CONFIGMAP} is an overlay's input")
    else:
        c.need(len(sites) == 1, "ConfigMap", f"expected exactly one {SITE_CONFIGMAP}, found {sites}")
        # Every ConfigMap the pod reads exists in the rendering and has a generated (hashed) name.
        refs = [(r.get("configMapRef") or {}).get("name") for r in ctr.get("envFrom") or []]
        refs += [((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") for e in ctr.get("env") or []]
        for name in sorted(set(filter(None, refs))):
            c.need(name in configmaps, cw, f"references the ConfigMap {name}, which the overlay does not render")


def container_port_numbers(ctr: dict) -> dict:
    return {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}


def check_admin_api(c: Checker, docs: list[dict], d: dict, ctr: dict, cw: str, settings: dict) -> None:
    """The admin API: off, or on the pod's loopback with a token from the Secret, never exposed."""
    c.need("ADMIN_TOKEN" not in settings, cw, "ADMIN_TOKEN must come from the Secret, never from a ConfigMap")
    c.need("ADMIN_TOKEN_FILE" not in settings or "ADMIN_TOKEN_FILE" not in {e.get("name") for e in ctr.get("env") or []},
           cw, "ADMIN_TOKEN_FILE is set twice (ConfigMap and env)")
    for e in env_entries(ctr, "ADMIN_TOKEN"):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
        c.need("value" not in e and ref.get("name"), cw, "ADMIN_TOKEN must come from a secretKeyRef, never a literal")
    if "ADMIN_PORT" not in settings and not env_entries(ctr, "ADMIN_PORT"):
        return  # off (the base's state)
    raw = settings.get("ADMIN_PORT")
    c.need(not env_entries(ctr, "ADMIN_PORT"), cw, "set ADMIN_PORT in owp-server-config, not as an env entry")
    try:
        port = int(raw)
    except (TypeError, ValueError):
        c.need(False, cw, f"ADMIN_PORT {raw!r} is not a port number")
        return
    c.need(1 <= port <= 65535 and port != int(settings.get("PORT", 3000)), cw,
           f"ADMIN_PORT {port} must be a port other than PORT")
    host = settings.get("ADMIN_HOST", "127.0.0.1")
    c.need(is_loopback(host), cw,
           f"ADMIN_HOST {host!r} must be a loopback address: the admin API is reached with kubectl port-forward only")

    # The token: ADMIN_TOKEN from the Secret, or ADMIN_TOKEN_FILE inside a mounted Secret volume.
    token_env = env_entries(ctr, "ADMIN_TOKEN")
    file_env = env_entries(ctr, "ADMIN_TOKEN_FILE")
    token_file = file_env[0].get("value") if file_env else settings.get("ADMIN_TOKEN_FILE")
    c.need(bool(token_env) != bool(token_file), cw,
           "ADMIN_PORT needs exactly one of ADMIN_TOKEN (secretKeyRef) and ADMIN_TOKEN_FILE (the server refuses none and both)")
    if token_file:
        pod = d["spec"]["template"]["spec"]
        secret_volumes = {v["name"]: v["secret"] for v in pod.get("volumes") or [] if "secret" in v}
        mounts = [m for m in ctr.get("volumeMounts") or []
                  if m.get("name") in secret_volumes and str(token_file).startswith(m["mountPath"].rstrip("/") + "/")]
        c.need(bool(mounts), cw, f"ADMIN_TOKEN_FILE {token_file!r} is not inside a mounted Secret volume")
        for m in mounts:
            c.need(m.get("readOnly") is True, cw, f"the admin token's volume {m['name']} must be mounted readOnly")

    # Never reachable from outside the pod: no container port, no Service port, no NetworkPolicy rule.
    names = container_port_numbers(ctr)
    c.need(port not in names.values(), cw, f"declares containerPort {port} (the admin port): leave it undeclared")
    for svc in by_kind(docs, "Service"):
        sw = f"Service/{svc['metadata']['name']}"
        for sp in svc.get("spec", {}).get("ports") or []:
            target = sp.get("targetPort", sp.get("port"))
            target = names.get(target, target) if isinstance(target, str) else target
            c.need(port not in (sp.get("port"), target), sw,
                   f"port {sp.get('name')!r} targets the admin port {port}: the admin API must never be behind a Service")
    for np in by_kind(docs, "NetworkPolicy"):
        nw = f"NetworkPolicy/{np['metadata']['name']}"
        for i, rule in enumerate(np.get("spec", {}).get("ingress") or []):
            ports = rule.get("ports")
            if not c.need(bool(ports), nw, f"ingress[{i}] has no ports, so it opens every port, the admin port {port} too"):
                continue
            for np_port in ports:
                number = np_port.get("port")
                number = names.get(number, number) if isinstance(number, str) else number
                end = np_port.get("endPort", number)
                c.need(number is not None and not (isinstance(number, int) and number <= port <= (end or number)), nw,
                       f"ingress[{i}] opens the admin port {port} (or all ports)")


def check_replicas(c: Checker, docs: list[dict], spec: dict, pod: dict, where: str) -> None:
    """Several replicas only with the rooms in PostgreSQL (DATABASE_URL required from a
    Secret); a PodDisruptionBudget that keeps all but one serving; one pod in memory."""
    replicas = spec.get("replicas")
    env = [e for ctr in pod.get("containers") or [] for e in ctr.get("env") or [] if e.get("name") == "DATABASE_URL"]
    ref = ((env[0].get("valueFrom") or {}).get("secretKeyRef") or {}) if env else {}
    c.need(not env or "value" not in env[0], where, "DATABASE_URL holds a password: from a Secret, never a literal")
    shared = bool(env) and ref.get("optional") is False and bool(ref.get("name"))
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if not c.need(len(pdbs) == 1, "PodDisruptionBudget", f"expected exactly one, found {len(pdbs)}"):
        return
    budget = pdbs[0].get("spec", {})
    if shared:
        c.need(isinstance(replicas, int) and replicas >= 3, where, "with a shared store, at least 3 replicas (one can roll while two serve)")
        c.need(budget.get("minAvailable") == (replicas or 0) - 1 and "maxUnavailable" not in budget, "PodDisruptionBudget",
               f"minAvailable must be replicas - 1 = {(replicas or 0) - 1}")
    else:
        c.need(replicas == 1, where, "without DATABASE_URL (required, from a Secret) rooms live in memory: replicas must be 1")
        c.need(budget.get("maxUnavailable") == 1 and "minAvailable" not in budget, "PodDisruptionBudget",
               "one pod: maxUnavailable 1 (minAvailable would block every node drain)")


def check_deployment(c: Checker, docs: list[dict], site: str) -> None:
    deployments = by_kind(docs, "Deployment")
    if not c.need(len(deployments) == 1, "Deployment", f"expected exactly one, found {len(deployments)}"):
        return
    d = deployments[0]
    where = f"Deployment/{d['metadata']['name']}"
    spec = d.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    check_replicas(c, docs, spec, pod, where)
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
    for ref in ctr.get("envFrom") or []:
        name = (ref.get("configMapRef") or {}).get("name")
        c.need(generated(name, "owp-server-config") and name != "owp-server-config", cw,
               f"envFrom {name!r} must be the generated owp-server-config-<hash>, so that a change rolls the pod")
    check_site_inputs(c, docs, ctr, cw, settings, site)
    check_admin_api(c, docs, d, ctr, cw, settings)

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
    check_deployment(c, docs, args.site)
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
    print(f"{args.rendered}: {len(docs)} objects; deployment invariants, site inputs ({SITE_CONFIGMAP} {args.site}),"
          " admin API, ServiceMonitor and PrometheusRule OK")
    return 0


def cmd_set_literal(args: argparse.Namespace) -> int:
    path = Path(args.kustomization)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    key, sep, _ = args.literal.partition("=")
    if not sep or not key:
        sys.exit(f"set-literal: {args.literal!r} is not KEY=VALUE")
    for gen in doc.get("configMapGenerator") or []:
        if gen.get("name") == args.generator:
            literals = [lit for lit in gen.get("literals") or [] if lit.partition("=")[0] != key]
            gen["literals"] = literals + [args.literal]
            path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
            print(f"{path}: {args.generator}: {args.literal}")
            return 0
    sys.exit(f"set-literal: {path} has no configMapGenerator named {args.generator}")


def cmd_rollout(args: argparse.Namespace) -> int:
    problems = []
    views = []
    for path in (args.before, args.after):
        docs = load(path)
        names = [cm["metadata"]["name"] for cm in by_kind(docs, "ConfigMap") if generated(cm["metadata"]["name"], args.generator)]
        deployments = by_kind(docs, "Deployment")
        if len(names) != 1 or len(deployments) != 1:
            sys.exit(f"rollout: {path}: expected one {args.generator} ConfigMap and one Deployment, found {names}")
        template = deployments[0]["spec"]["template"]
        views.append((names[0], template, yaml.safe_dump(template, sort_keys=True)))
    (name_a, _, tpl_a), (name_b, _, tpl_b) = views
    if name_a == name_b:
        problems.append(f"{args.generator}: a changed value kept the name {name_a} (no content hash: the pod would not roll)")
    if name_b not in tpl_b:
        problems.append(f"the Deployment does not reference the new {name_b}")
    if name_a in tpl_b:
        problems.append(f"the Deployment still references the old {name_a}")
    if tpl_a == tpl_b:
        problems.append("the Deployment's pod template is unchanged: a config change would not roll the pod")
    if problems:
        print("\n".join(f"rollout: {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"{args.generator}: changed value -> {name_a} became {name_b}; the pod template changed, so the pod rolls")
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
    verify.add_argument("--site", choices=("absent", "present"), required=True,
                        help=f"whether the rendering must (overlay) or must not (base) contain {SITE_CONFIGMAP}")
    verify.set_defaults(run=cmd_verify)
    set_literal = sub.add_parser("set-literal")
    set_literal.add_argument("kustomization")
    set_literal.add_argument("generator")
    set_literal.add_argument("literal", metavar="KEY=VALUE")
    set_literal.set_defaults(run=cmd_set_literal)
    rollout = sub.add_parser("rollout")
    rollout.add_argument("before")
    rollout.add_argument("after")
    rollout.add_argument("generator")
    rollout.set_defaults(run=cmd_rollout)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
