#!/usr/bin/env bash
# Installs what go-pmtud's lab and tests need on a fresh Debian/Ubuntu machine.
# Idempotent: does nothing when everything is present. Run as root.
set -euo pipefail

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)            # test namespaces
command -v sysctl >/dev/null 2>&1 || need+=(procps)           # sysctls inside test namespaces
command -v unshare >/dev/null 2>&1 || need+=(util-linux)      # read-only /proc/sys test
command -v mount >/dev/null 2>&1 || need+=(mount)
command -v make >/dev/null 2>&1 || need+=(make)
command -v git >/dev/null 2>&1 || need+=(git)
command -v openssl >/dev/null 2>&1 || need+=(openssl) # kube-apiserver test certificates
# test/cluster: the container runtime the DaemonSet's pod runs in (the
# package brings ctr and containerd-shim-runc-v2; the test starts its own
# containerd, on its own socket, and stops it).
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
	echo "setup: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		echo "setup: go is in /usr/local/go/bin; add it to PATH" >&2
	else
		echo "setup: Go 1.26 is required (https://go.dev/dl/)" >&2
	fi
	exit 1
fi
go mod download
