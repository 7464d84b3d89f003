#!/usr/bin/env python3
"""Render deploy/k8s/base/prometheusrule.yaml from grafana/alerts.yml.

grafana/alerts.yml (a Prometheus rule file, `groups:` format) is the one source of truth for
the alert rules; the PrometheusRule manifest the Prometheus Operator loads is generated from
it, never edited by hand.

    python3 scripts/render-prometheusrule.py           # rewrite the manifest
    python3 scripts/render-prometheusrule.py --check   # exit 1 (with a diff) if it is stale

Needs PyYAML (`pip install pyyaml`; scripts/check-deploy.sh installs it in its own venv).
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - message for a bare interpreter
    sys.exit("render-prometheusrule: PyYAML is missing (pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("grafana/alerts.yml")
OUTPUT = Path("deploy/k8s/base/prometheusrule.yaml")
NAME = "owp-server"

HEADER = """\
# GENERATED FILE - DO NOT EDIT.
# Rendered from {source} by scripts/render-prometheusrule.py; edit that file and
# run `python3 scripts/render-prometheusrule.py`. scripts/check-deploy.sh (CI) fails if this
# file and the rendering differ.
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
    return groups


def render(groups: list) -> str:
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
    return HEADER.format(source=SOURCE.as_posix()) + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if stale")
    parser.add_argument("--source", type=Path, default=ROOT / SOURCE)
    parser.add_argument("--output", type=Path, default=ROOT / OUTPUT)
    args = parser.parse_args()

    rendered = render(load_groups(args.source))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current == rendered:
            print(f"{OUTPUT} matches {SOURCE}")
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"{OUTPUT} (committed)",
                tofile=f"{OUTPUT} (rendered from {SOURCE})",
            )
        )
        print(f"\n{OUTPUT} is stale: run `python3 scripts/render-prometheusrule.py` and commit it", file=sys.stderr)
        return 1
    if not args.output.exists() or args.output.read_text(encoding="utf-8") != rendered:
        args.output.write_text(rendered, encoding="utf-8")
        print(f"wrote {OUTPUT} from {SOURCE}")
    else:
        print(f"{OUTPUT} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
