# go-pmtud. The two commands of the README:
#   make lab    build go-pmtud and run the local ECMP lab (root)
#   make test   every test: unit, fuzz seeds, namespaces, end-to-end, Kubernetes (root)
export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
BIN       := bin/go-pmtud
PKGS      := ./...
FUZZTIME  ?= 3m
# One version string: the chart's appVersion (also the image tag the chart uses).
VERSION   ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*/\1/p' deploy/helm/go-pmtud/Chart.yaml)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/go-pmtud/go-pmtud/internal/version.version=$(VERSION) -X github.com/go-pmtud/go-pmtud/internal/version.revision=$(REVISION)

.PHONY: all build release lab test test-unit test-root test-safety test-e2e test-monitoring test-kube lint fmt bench fuzz setup clean

all: build

setup:
	@bash hack/setup.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/go-pmtud

# Static release binaries for both architectures (bin/go-pmtud-linux-<arch>).
release:
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/go-pmtud-linux-$$arch ./cmd/go-pmtud || exit 1; \
	done

lab: setup build
	./$(BIN) lab $(LAB_FLAGS)

# The whole suite. Privileged tests skip with a message when not root; CI runs as root.
test: setup lint
	$(GO) test -count=1 -timeout 20m ./internal/... ./cmd/...
	$(GO) test -count=1 -timeout 5m -p 1 ./test/relay/... ./test/safety/...
	$(GO) test -count=1 -timeout 20m ./test/image/...   # cross-compiles amd64 and arm64 (cold: minutes)
	$(MAKE) test-monitoring
	$(GO) test -count=1 -timeout 15m -p 1 ./test/e2e/...
	$(MAKE) test-kube

test-unit:
	$(GO) test -count=1 ./internal/... ./cmd/...

# Real daemons in namespaces: relaying, hostile input, flood, faults, least privilege (root).
test-safety:
	$(GO) test -count=1 -timeout 5m -p 1 -v ./test/relay/... ./test/safety/...

test-e2e:
	$(GO) test -count=1 -timeout 15m -p 1 -v ./test/e2e/...

# Alert rules: promtool's rule unit tests (promtool built once per machine into a cache).
test-monitoring:
	$(GO) test -count=1 -timeout 20m ./test/monitoring/...

test-kube:
	@dir=$$(bash hack/kube-bins/build.sh | tail -n 1) && KUBE_BINS_DIR=$$dir $(GO) test -count=1 -timeout 10m ./test/kube/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Hot-path benchmarks (parse + decide + relay); figures go to docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/ptb/ ./internal/policy/ ./internal/relay/

# Longer fuzzing than CI's seed run: FUZZTIME per target.
fuzz:
	@for t in $$($(GO) test -list 'Fuzz.*' ./internal/ptb/ | grep ^Fuzz); do \
		echo "== ptb $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./internal/ptb/ || exit 1; done
	@for t in $$($(GO) test -list 'Fuzz.*' ./internal/policy/ | grep ^Fuzz); do \
		echo "== policy $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./internal/policy/ || exit 1; done
	@for t in $$($(GO) test -list 'Fuzz.*' ./internal/transport/ | grep ^Fuzz); do \
		echo "== transport $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./internal/transport/ || exit 1; done

clean:
	rm -rf bin
