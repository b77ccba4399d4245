# go-pmtud. The two commands of the README:
#   make lab    build go-pmtud and run the local ECMP lab (root)
#   make test   every test: unit, fuzz seeds, namespaces, end-to-end, Kubernetes, cluster (root)
export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
BIN       := bin/go-pmtud
PKGS      := ./...
FUZZTIME  ?= 3m
# One version string: the chart's appVersion (also the image tag the chart uses).
VERSION   ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*/\1/p' deploy/helm/go-pmtud/Chart.yaml)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/go-pmtud/go-pmtud/internal/version.version=$(VERSION) -X github.com/go-pmtud/go-pmtud/internal/version.revision=$(REVISION)

.PHONY: all build release lab test prebuild test-unit test-root test-safety test-e2e test-monitoring test-kube test-cluster test-kubernetes lint fmt bench bench-rate fuzz setup clean

all: build

setup:
	@bash hack/setup.sh

prebuild:
	@bash hack/prebuild.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/go-pmtud

# Static release binaries for both architectures (bin/go-pmtud-linux-<arch>).
release:
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/go-pmtud-linux-$$arch ./cmd/go-pmtud || exit 1; \
	done

lab: setup build
	./$(BIN) lab $(LAB_FLAGS)

# The whole suite, as root: root tests FAIL here when not root
# (GOPMTUD_REQUIRE_ROOT=1; CI=true does the same). The output is shortened
# to every skip with its reason, every failure, per-package counts and go
# test's own ok / FAIL lines (GOTEST_SHOW=1 for the full -v output).
GOTEST = bash -o pipefail -c 'GOPMTUD_REQUIRE_ROOT=1 $(GO) test -json "$$@" 2>&1 | \
	if [ "$(GOTEST_SHOW)" = 1 ]; then $(GO) run ./internal/testnet/testsummary -v; else $(GO) run ./internal/testnet/testsummary; fi' gotest

# prebuild starts the slow tool builds in the background first (hack/prebuild.sh):
# the kube-bins, then promtool, so that the Kubernetes tests (minutes, mostly
# waiting) run while promtool builds, and the alert rules' tests come last.
test: setup prebuild lint
	@$(GOTEST) -count=1 -timeout 20m ./internal/... ./cmd/...
	@$(GOTEST) -count=1 -timeout 12m -p 1 ./test/relay/... ./test/safety/...
	@$(GOTEST) -count=1 -timeout 20m ./test/image/...   # cross-compiles amd64 and arm64 (cold: minutes)
	@$(GOTEST) -count=1 -timeout 15m -p 1 ./test/e2e/...
	$(MAKE) test-kubernetes
	$(MAKE) test-monitoring

test-unit:
	@$(GOTEST) -count=1 ./internal/... ./cmd/...

# Real daemons in namespaces: relaying, hostile input, flood, faults, least privilege (root).
test-safety:
	@$(GOTEST) -count=1 -timeout 12m -p 1 ./test/relay/... ./test/safety/...

test-e2e:
	@$(GOTEST) -count=1 -timeout 15m -p 1 ./test/e2e/...

# Alert rules: promtool's rule unit tests (promtool built once per machine into a cache).
test-monitoring:
	@$(GOTEST) -count=1 -timeout 20m ./test/monitoring/...

# test/kube and test/cluster in one go test run, so the two packages run
# side by side (both mostly wait on API servers, kubelets and namespaces).
test-kubernetes:
	@dir=$$(bash hack/kube-bins/build.sh | tail -n 1) && KUBE_BINS_DIR=$$dir $(GOTEST) -count=1 -timeout 15m ./test/kube/... ./test/cluster/...

test-kube:
	@dir=$$(bash hack/kube-bins/build.sh | tail -n 1) && KUBE_BINS_DIR=$$dir $(GOTEST) -count=1 -timeout 15m ./test/kube/...

# The chart's pod run by a real kubelet and containerd per node namespace of
# the lab, and by the runtime alone: install, relay, status, upgrade,
# uninstall (root). helm and the kubelet come from the kube-bins cache;
# docs/cluster-test.md says what is not yet a full cluster.
test-cluster:
	@dir=$$(bash hack/kube-bins/build.sh | tail -n 1) && KUBE_BINS_DIR=$$dir $(GOTEST) -count=1 -timeout 10m ./test/cluster/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Hot-path benchmarks (parse + decide + relay); figures go to docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/ptb/ ./internal/policy/ ./internal/relay/

# The relay path end to end in namespaces at fixed rates (root, about a minute):
# latency, highest rate without loss, CPU per message, RSS; see docs/benchmarks.md.
# BENCH_BIN=path measures another build; BENCH_RATES=10000,50000 shapes the sweep.
bench-rate:
	PMTUD_BENCH_RATE=1 PMTUD_BENCH_BIN=$(BENCH_BIN) PMTUD_BENCH_RATES=$(BENCH_RATES) \
		$(GO) test -count=1 -p 1 -timeout 15m -v -run 'TestRate$$' ./internal/benchrate/

# Longer fuzzing than CI's seed run: FUZZTIME per target, in every package
# that has fuzz targets.
FUZZ_PKGS ?= $(shell grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u)
fuzz:
	@for p in $(FUZZ_PKGS); do \
		for t in $$($(GO) test -list 'Fuzz.*' ./$$p/ | grep ^Fuzz); do \
			echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$p/ || exit 1; \
		done; done

clean:
	rm -rf bin
