#!/bin/bash
# render.sh [helm template flags...]: renders install/helm/sluice with the helm built into the cache (hack/k8s/build.sh).
# With no flags, `render.sh > install/sluice.yaml` regenerates the committed default manifest.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-/var/cache/sluice-k8s}
HELM=${HELM:-$CACHE/bin/helm}
[ -x "$HELM" ] || { echo "no helm at $HELM: run hack/k8s/build.sh" >&2; exit 1; }
"$HELM" template sluice "$REPO/install/helm/sluice" --namespace kube-system "$@"
