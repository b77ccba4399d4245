#!/usr/bin/env bash
# Runs the Kubernetes integration tests (test/kube) against a real
# kube-apiserver and etcd, building them first when missing (see build.sh).
# Extra arguments go to `go test`, e.g. `hack/kube-bins/test.sh -run RBAC -v`.
# The scale test needs root (network namespace); as non-root it skips.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$root/hack/kube-bins/build.sh"
cd "$root"
exec go test -count=1 -timeout 10m "$@" ./test/kube/...
