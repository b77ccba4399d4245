#!/usr/bin/env bash
# Runs the Kubernetes integration tests (test/kube) against a real
# kube-apiserver and etcd, building them first when missing (see build.sh).
# Extra arguments go to `go test`, e.g. `hack/kube-bins/test.sh -run RBAC -v`.
# The scale test needs root (network namespace); as non-root it skips.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBE_BINS_DIR="$("$root/hack/kube-bins/build.sh" | tail -n 1)"
export KUBE_BINS_DIR
cd "$root"
exec go test -count=1 -timeout 10m "$@" ./test/kube/...
