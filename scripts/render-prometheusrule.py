#!/usr/bin/env python3
"""Render deploy/k8s/base/prometheusrule.yaml from grafana/alerts.yml.

grafana/alerts.yml (a Prometheus rule file, `groups:` format) is the one source of truth for
the alert rules; the PrometheusRule manifest the Prometheus Operator loads is generated from
it, never edited by hand.

    python3 scripts/render-prometheusrule.py           # rewrite the manifest
    python3 scripts/render-prometheusrule.py --check   # exit 1 (with a diff) if it is stale

Runbook links. Every alert's `runbook_url` must be an absolute http(s) URL (Alertmanager and
Grafana show it as a link; a relative one is not clickable). grafana/alerts.yml links to
DEFAULT_RUNBOOK_BASE below followed by `#<anchor of the alert's section>`. To point the
links at your own copy of the runbook (a fork, an internal Git server, a wiki page with the
same anchors), give the document's URL without the fragment:

    python3 scripts/render-prometheusrule.py --runbook-base https://git.example.com/ops/owp-server/blob/v0.1.0/docs/operations.md \
        --output deploy/k8s/overlays/mine/prometheusrule.yaml
    RUNBOOK_BASE_URL=https://... python3 scripts/render-prometheusrule.py --output ...

Every runbook_url's part before `#` is replaced by that base; the fragment is kept. The
option wins over the environment variable; `--check` compares against the rendering with the
same base. Without either, the links are written as they are in grafana/alerts.yml.

Needs PyYAML (`pip install pyyaml`; scripts/check-deploy.sh installs it in its own venv).
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - message for a bare interpreter
    sys.exit("render-prometheusrule: PyYAML is missing (pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("grafana/alerts.yml")
OUTPUT = Path("deploy/k8s/base/prometheusrule.yaml")
NAME = "owp-server"
# The base of the runbook links in grafana/alerts.yml: this repository's docs/operations.md.
# There is no canonical public URL for the repository yet; this is the documented default,
# replaced with --runbook-base / RUNBOOK_BASE_URL when rendering.
DEFAULT_RUNBOOK_BASE = "https://github.com/openwatchparty/owp-server/blob/main/docs/operations.md"
RUNBOOK_ENV = "RUNBOOK_BASE_URL"

HEADER = """\
# GENERATED FILE - DO NOT EDIT.
# Rendered from {source} by scripts/render-prometheusrule.py; edit that file and
# run `python3 scripts/render-prometheusrule.py`. scripts/check-deploy.sh (CI) fails if this
# file and the rendering differ.
"""

BASE_NOTE = """\
# runbook_url base rewritten to {base} (--runbook-base / RUNBOOK_BASE_URL).
"""


class _Dumper(yaml.SafeDumper):
    """Block style, sequences indented under their key (as yamllint's default wants)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def fail(message: str) -> None:
    sys.exit(f"render-prometheusrule: {SOURCE}: {message}")


def load_groups(path: Path) -> list:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail("not found")
    except yaml.YAMLError as error:
        fail(f"not valid YAML: {error}")
    if not isinstance(doc, dict) or set(doc) != {"groups"}:
        fail("must be a Prometheus rule file: a mapping with the single key `groups`")
    groups = doc["groups"]
    if not isinstance(groups, list) or not groups:
        fail("`groups` must be a non-empty list")
    seen = set()
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            fail(f"groups[{index}] needs a string `name`")
        if group["name"] in seen:
            fail(f"group name {group['name']!r} appears twice")
        seen.add(group["name"])
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            fail(f"group {group['name']!r} needs a non-empty `rules` list")
        for rule in rules:
            if not isinstance(rule, dict) or not (("alert" in rule) ^ ("record" in rule)):
                fail(f"group {group['name']!r}: each rule needs exactly one of `alert`, `record`")
            if not isinstance(rule.get("expr"), (str, int, float)):
                fail(f"group {group['name']!r}: rule {rule.get('alert') or rule.get('record')!r} needs `expr`")
            if "alert" in rule:
                url = (rule.get("annotations") or {}).get("runbook_url")
                if url is None:
                    fail(f"alert {rule['alert']!r} has no runbook_url annotation")
                if not is_absolute_http(url):
                    fail(f"alert {rule['alert']!r}: runbook_url {url!r} is not an absolute http(s) URL"
                         " (Alertmanager and Grafana cannot open a relative link)")
    return groups


def is_absolute_http(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in url)


def runbook_base(option: str | None) -> str | None:
    """The base to rewrite the links to: --runbook-base, else $RUNBOOK_BASE_URL, else none."""
    base = option if option is not None else os.environ.get(RUNBOOK_ENV) or None
    if base is None:
        return None
    if not is_absolute_http(base) or "#" in base:
        sys.exit(f"render-prometheusrule: runbook base {base!r} must be an absolute http(s) URL without a"
                 " #fragment (the URL of the runbook document)")
    return base


def rebase_runbooks(groups: list, base: str) -> list:
    """The groups with every runbook_url's document part (before `#`) replaced by base."""
    for group in groups:
        for rule in group["rules"]:
            annotations = rule.get("annotations") or {}
            if "runbook_url" in annotations:
                _, hash_sign, fragment = annotations["runbook_url"].partition("#")
                annotations["runbook_url"] = base + hash_sign + fragment
    return groups


def render(groups: list, base: str | None = None) -> str:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME},
        "spec": {"groups": groups},
    }
    body = yaml.dump(
        manifest,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,  # never fold a PromQL expression
        explicit_start=True,
    )
    note = BASE_NOTE.format(base=base) if base is not None else ""
    return HEADER.format(source=SOURCE.as_posix()) + note + body


def display(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if stale")
    parser.add_argument("--source", type=Path, default=ROOT / SOURCE)
    parser.add_argument("--output", type=Path, default=ROOT / OUTPUT)
    parser.add_argument("--runbook-base", metavar="URL",
                        help=f"rewrite every runbook_url to URL#<anchor> (default: ${RUNBOOK_ENV}, else as in the source)")
    args = parser.parse_args()

    base = runbook_base(args.runbook_base)
    groups = load_groups(args.source)
    if base is not None:
        groups = rebase_runbooks(groups, base)
    rendered = render(groups, base)
    output = display(args.output)
    source = display(args.source)
    again = "python3 scripts/render-prometheusrule.py" + (f" --runbook-base {base}" if base else "")
    if args.output.resolve() != (ROOT / OUTPUT).resolve():
        again += f" --output {output}"
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current == rendered:
            print(f"{output} matches {source}" + (f" (runbook base {base})" if base else ""))
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"{output} (committed)",
                tofile=f"{output} (rendered from {source})",
            )
        )
        print(f"\n{output} is stale: run `{again}` and commit it", file=sys.stderr)
        return 1
    if not args.output.exists() or args.output.read_text(encoding="utf-8") != rendered:
        args.output.write_text(rendered, encoding="utf-8")
        print(f"wrote {output} from {source}" + (f" (runbook base {base})" if base else ""))
    else:
        print(f"{output} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
