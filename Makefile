# shoal — build and test entry points. `make help` lists them.
#
# Knobs (make VAR=value):
#   PKGS         packages for test/bench/lint/fuzz          (./...)
#   GOTESTFLAGS  extra flags for go test in `make test`       (e.g. -run TestX -v)
#   BENCHTIME    -benchtime for `make bench`                  (200ms: the whole run stays under 2 min)
#   BENCHFLAGS   extra flags for `make bench`                 (e.g. -cpu 2 -count 10 for benchstat)
#   FUZZTIME     time per fuzz target in `make fuzz`          (10s)
#   E2EFLAGS     flags for bin/shoal-bench in `make bench-e2e` (-profile; see bench/README.md)
#   STATICCHECK  `go run` argument for staticcheck, empty skips it
#   CONFIG       config file for `make run`                   (examples/shoal.yml)

GO          ?= go
PKGS        ?= ./...
BIN         ?= bin/shoal
CONFIG      ?= examples/shoal.yml
RUNFLAGS    ?=
BENCHTIME   ?= 200ms
BENCHFLAGS  ?=
FUZZTIME    ?= 10s
E2EFLAGS    ?= -profile
GOTESTFLAGS ?=
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The version stamped into the binary: `git describe`, or "dev" outside a git checkout
# (a source tarball) or before the first commit. cmd/shoal declares `var version`.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

export PKGS GOTESTFLAGS FUZZTIME STATICCHECK GO

.DEFAULT_GOAL := build
.PHONY: help build run test test-short bench bench-load bench-e2e lint fuzz clean distclean testenv-up testenv-down

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# bin/shoal is built without cgo: a static binary needs no libc at run time
# and maps 2 MB less (libc, the dynamic loader); nothing in shoal uses cgo
# (DNS goes through Go's resolver or discovery/'s own client).
build: ## build bin/shoal (static, no cgo)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/shoal

run: build ## build, then run shoal standalone on examples/shoal.yml (samples to stdout)
	$(BIN) run --config.file=$(CONFIG) $(RUNFLAGS)

test: ## the full suite: start real services, go vet, go test -race, stop the services
	scripts/testenv.sh run -- scripts/gotest.sh

test-short: ## the fast loop: go test -short, no services
	$(GO) test -short $(GOTESTFLAGS) $(PKGS)

bench: ## every micro-benchmark once, briefly (BENCHTIME); use BENCHFLAGS='-count 10' for benchstat
	$(GO) test -short -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count=1 -timeout 5m $(BENCHFLAGS) $(PKGS)

bench-load: ## the engine load benchmark: 1k and 10k loopback targets (bench/), about a minute
	$(GO) test -run '^$$' -bench 'BenchmarkEngine' -benchtime=1x -count=1 -cpu=2 -timeout 10m $(BENCHFLAGS) ./bench/

bench-e2e: ## floors, shoal and Prometheus agent against one farm, one core each (about 12 min; bench/README.md)
	scripts/bench-e2e.sh $(E2EFLAGS)

lint: ## gofmt, go vet, go mod tidy -diff, staticcheck
	scripts/lint.sh

fuzz: ## each fuzz target for FUZZTIME
	scripts/fuzz.sh

testenv-up: ## start the test services and leave them running (see .testenv/env)
	scripts/testenv.sh up

testenv-down: ## stop the test services
	scripts/testenv.sh down

clean: ## stop test services, remove build and test output
	scripts/testenv.sh down
	rm -rf bin .testenv
	rm -f *.test *.prof cpu.out mem.out

distclean: clean ## clean, and drop downloaded caches (.cache: Kafka jars)
	rm -rf .cache
