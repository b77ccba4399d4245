#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the
# kubelet, kubectl and helm from Go modules, once per machine, into a
# cache outside the clone keyed by what they are built from:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/go-pmtud/kube-bins/<key>/
# (KUBE_BINS_DIR overrides the folder). Every clone and CI run on the machine
# shares it; a warm run checks the binaries against their SHA256SUMS and builds
# nothing. test/kube and test/cluster use them (test/cluster: a whole cluster);
# prebuilt release binaries cannot be downloaded where CI runs.
#
#   build.sh         build if needed; the last line of output is the folder
#   build.sh --dir   only print the folder (what the tests call to find it)
#
# Cold: about 15 min on 2 cores beside make test's other steps (887 s in a cold
# CI run; about 900 MB of module cache, 3 GB of build cache).
# Warm: well under a second.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

kube_version=v1.37.2
etcd_version=v3.7.0
helm_version=v4.3.1

cd "$here"
# The stamp records what the cached binaries were built from, so bumping a
# version in this script or go.mod builds them into a new folder.
stamp="kube=$kube_version etcd=$etcd_version helm=$helm_version go=$(go env GOVERSION) mod=$(sha256sum go.mod go.sum | sha256sum | cut -c1-16)"
key="$kube_version-$(printf '%s' "$stamp" | sha256sum | cut -c1-12)"
out="${KUBE_BINS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/go-pmtud/kube-bins/$key}"
if [[ "${1:-}" == "--dir" ]]; then
	echo "$out"
	exit 0
fi

bins=(etcd helm kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" && -f "$out/SHA256SUMS" ]] &&
	(cd "$out" && sha256sum --quiet -c SHA256SUMS); then
	echo "kube-bins: up to date (checksums verified)"
	echo "$out"
	exit 0
fi
mkdir -p "$out"
# One build per folder at a time; a second caller waits, then finds it built.
exec 9>"$out/.lock"
flock 9
if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" && -f "$out/SHA256SUMS" ]] &&
	(cd "$out" && sha256sum --quiet -c SHA256SUMS); then
	echo "kube-bins: built meanwhile by another run"
	echo "$out"
	exit 0
fi
rm -f "$out/.stamp" "$out/SHA256SUMS"

export CGO_ENABLED=0
# Nice: the machine is shared, and the build saturates every core for minutes.
build() { nice -n 10 go build -trimpath "$@"; }

major=${kube_version#v}; major=${major%%.*}
minor=${kube_version#v*.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
start=$SECONDS
echo "kube-bins: building etcd $etcd_version"
build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
echo "kube-bins: building helm $helm_version"
build -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" -o "$out/helm" helm.sh/helm/v4/cmd/helm
echo "kube-bins: building kube-apiserver $kube_version"
# Without the version stamp the server reports v0.0.0-master, which clients cannot parse.
build -ldflags "-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor" \
	-o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
# The rest share most of their packages with kube-apiserver, compiled just above.
for b in kube-controller-manager kube-scheduler kubelet kubectl; do
	echo "kube-bins: building $b $kube_version"
	build -ldflags "-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor" \
		-o "$out/$b" "k8s.io/kubernetes/cmd/$b"
done
(cd "$out" && sha256sum "${bins[@]}" >SHA256SUMS)
echo "$stamp" >"$out/.stamp"
echo "kube-bins: built in $((SECONDS - start)) s"
echo "$out"
