#!/usr/bin/env bash
# Lints and renders the statesync Helm chart (standalone, sidecar, and the example service chart
# that includes the sidecar) and asserts the rendered manifests with the Go test in deploy/.
#
#   bash deploy/helm_test.sh            # from anywhere
#   HELM=/path/to/helm bash deploy/helm_test.sh
#
# Needs Go only. Helm is built from the Go module proxy on first use and cached in
# ${STATESYNC_CACHE_DIR:-$HOME/.cache/statesync}/bin (about 2.5 minutes on 2 cores, then instant).
# Prints "helm: N passed, N failed" last; exits non-zero if anything failed.
set -euo pipefail

HELM_VERSION=v3.22.0
# Kubernetes minor of the client-go that HELM_VERSION is built with: the default --kube-version of
# helm template/lint, as in helm's own release builds.
HELM_K8S_MINOR=37

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_dir=${STATESYNC_CACHE_DIR:-$HOME/.cache/statesync}

log() { printf '%s\n' "helm_test: $*" >&2; }

ensure_helm() {
  if [[ -n ${HELM:-} ]]; then
    return
  fi
  HELM=$cache_dir/bin/helm
  if [[ -x $HELM ]] && [[ $("$HELM" version --template '{{.Version}}' 2>/dev/null) == "$HELM_VERSION" ]]; then
    return
  fi
  log "building helm $HELM_VERSION from the Go module proxy into $cache_dir/bin (first run only)"
  mkdir -p "$cache_dir/bin"
  local start=$SECONDS
  # Same -X flags as helm's Makefile, so `helm version` and the default Kubernetes version are right.
  (cd "$cache_dir" && GOFLAGS="" GOBIN="$cache_dir/bin" CGO_ENABLED=0 go install \
    -ldflags "-s -w \
      -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  log "helm $HELM_VERSION built in $((SECONDS - start))s"
}

ensure_helm
log "using $("$HELM" version --short) at $HELM"

# Keep helm's repositories, cache and plugins away from the user's: `helm dependency build` on
# file:// dependencies then needs no network and no prior `helm repo add`.
helm_home=$(mktemp -d)
trap 'rm -rf "$helm_home"' EXIT
export HELM_CACHE_HOME=$helm_home/cache HELM_CONFIG_HOME=$helm_home/config HELM_DATA_HOME=$helm_home/data

out=$helm_home/go-test.out
status=0
(cd "$deploy_dir" && HELM="$HELM" go test -count=1 -v ./... 2>&1) | tee "$out" || status=$?

# Every test and subtest counts once; a build failure counts as one failure.
passed=$(grep -cE '^[[:space:]]*--- PASS' "$out" || true)
failed=$(grep -cE '^[[:space:]]*--- FAIL' "$out" || true)
if [[ $status -ne 0 && $failed -eq 0 ]]; then
  failed=1
fi
echo "helm: $passed passed, $failed failed"
[[ $status -eq 0 && $failed -eq 0 ]]
