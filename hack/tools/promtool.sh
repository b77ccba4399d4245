#!/usr/bin/env bash
# Builds promtool (Prometheus' rule checker and rule unit tester) once per
# machine into a cache outside the clone, keyed by version, and prints its
# path. `go install ...@version` refuses the Prometheus module (its go.mod has
# replace directives), so it is built from a throwaway module that requires it.
set -euo pipefail
version="${PROMTOOL_VERSION:-v0.316.0}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/go-pmtud/tools"
out="$cache/promtool-$version"
if [[ -x "$out/promtool" ]] && "$out/promtool" --version >/dev/null 2>&1; then
	echo "$out/promtool"
	exit 0
fi
mkdir -p "$out"
# One build at a time (make test starts one in the background); a second
# caller waits for the lock, then finds it built.
exec 9>"$out/.lock"
flock 9
if [[ -x "$out/promtool" ]] && "$out/promtool" --version >/dev/null 2>&1; then
	echo "$out/promtool"
	exit 0
fi
src="$cache/promtool-$version-src"
rm -rf "$src" && mkdir -p "$src"
cd "$src"
go mod init promtool-build >/dev/null 2>&1
GOFLAGS=-mod=mod go get "github.com/prometheus/prometheus@$version" >&2
# remove_all_sd leaves out the cloud service discoveries (AWS, Azure, GCE,
# ...): promtool's rule tests need none of them, and they are about a
# fifth of its packages and most of its compile time.
CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -tags remove_all_sd -trimpath -o "$out/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool >&2
mv "$out/promtool.tmp" "$out/promtool"
echo "$out/promtool"
