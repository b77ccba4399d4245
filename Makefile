# go-pmtud. The two commands of the README:
#   make lab    build go-pmtud and run the local ECMP lab (root)
#   make test   every test: unit, fuzz seeds, namespaces, end-to-end, Kubernetes (root)
export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
BIN       := bin/go-pmtud
PKGS      := ./...
FUZZTIME  ?= 3m

.PHONY: all build lab test test-unit test-root test-safety test-e2e test-kube lint fmt bench fuzz setup clean

all: build

setup:
	@bash hack/setup.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/go-pmtud

lab: setup build
	./$(BIN) lab $(LAB_FLAGS)

# The whole suite. Privileged tests skip with a message when not root; CI runs as root.
test: setup lint
	$(GO) test -count=1 -timeout 20m ./internal/... ./cmd/...
	$(GO) test -count=1 -timeout 5m -p 1 ./test/relay/... ./test/safety/... ./test/image/...
	$(GO) test -count=1 -timeout 15m -p 1 ./test/e2e/...
	$(MAKE) test-kube

test-unit:
	$(GO) test -count=1 ./internal/... ./cmd/...

# Real daemons in namespaces: relaying, hostile input, flood, faults, least privilege (root).
test-safety:
	$(GO) test -count=1 -timeout 5m -p 1 -v ./test/relay/... ./test/safety/...

test-e2e:
	$(GO) test -count=1 -timeout 15m -p 1 -v ./test/e2e/...

test-kube:
	@if [ -x hack/kube-bins/build.sh ]; then bash hack/kube-bins/build.sh && $(GO) test -count=1 -timeout 10m ./test/kube/...; \
	else echo "test-kube: no Kubernetes tests yet"; fi

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
	@for t in $$($(GO) test -list 'Fuzz.*' ./internal/fanout/ | grep ^Fuzz); do \
		echo "== fanout $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./internal/fanout/ || exit 1; done

clean:
	rm -rf bin
