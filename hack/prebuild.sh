#!/usr/bin/env bash
# Starts, in the background and at low priority, the builds that later steps
# of `make test` wait for: the arm64 cross-compile of the daemon (test/image),
# the kube-bins (test/kube, test/cluster) and promtool (test/monitoring). On
# a cold machine they take minutes of CPU that the first test steps, mostly
# waiting on namespaces and timers, leave idle. Each build
# is cached outside the clone and locked, so the step that needs it later
# either finds it done, waits for it, or (if the background build failed)
# builds it again in the foreground and shows the error there.
#
#   prebuild.sh         start the background builds and return at once
#   prebuild.sh --run   run them in the foreground (what the background runs)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
log="${XDG_CACHE_HOME:-$HOME/.cache}/go-pmtud/prebuild.log"

if [[ "${1:-}" != "--run" ]]; then
	mkdir -p "$(dirname "$log")"
	# setsid and no inherited pipes: make's output never waits on it.
	setsid nice -n 15 bash "$0" --run >"$log" 2>&1 </dev/null &
	echo "prebuild: the arm64 build, kube-bins and promtool started in the background (log: go-pmtud/prebuild.log in the cache)"
	exit 0
fi

cd "$root"
start=$SECONDS
step() {
	local t=$SECONDS
	"$@" >/dev/null 2>&1
	echo "prebuild: $* -> exit $? in $((SECONDS - t)) s"
}
# The kube-bins' modules (about 870 MB) download while the CPU compiles.
(cd hack/kube-bins && step go mod download) &
step env CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -o /dev/null ./cmd/go-pmtud
wait
# In the order make test needs them: the Kubernetes tests (minutes of mostly
# waiting) then run while promtool builds for the last step.
step bash hack/kube-bins/build.sh
step bash hack/tools/promtool.sh
echo "prebuild: done in $((SECONDS - start)) s"
