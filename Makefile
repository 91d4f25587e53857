# scaleout: build, test, and the runs of the team's KEDA runbook.
# `make demo` runs the main job on the embedded simulator; `make test` runs the tests.

GO       ?= go
BIN      := bin/scaleout
SCENARIO ?= scenarios/demo.yaml

# Optional overrides for the cluster runs: make validate-gpu GATEWAY=http://… PROMETHEUS=http://…
GATEWAY    ?=
PROMETHEUS ?=
TARGET     ?=
MODEL      ?=
RUN_FLAGS  ?=

target_flags = $(if $(GATEWAY),--target $(GATEWAY)) $(if $(TARGET),--target $(TARGET)) $(if $(MODEL),--model $(MODEL)) $(if $(PROMETHEUS),--prometheus $(PROMETHEUS))

.PHONY: all build image test test-short vet lint fmt-check run demo bench validate-gpu sim-proof sim perf perf-quick fuzz setup clean \
	rig-build cluster-up cluster-down test-cluster rig-unit

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/scaleout

# The whole suite: formatting, vet, staticcheck, every test with the race
# detector, and a short fuzzing pass over the parsers. The end-to-end tests need the Debian
# prometheus package (and chromium for the report page): `make setup`.
#
# The fuzzing budgets are counts of inputs, not durations: with a duration, Go 1.26's
# fuzzing coordinator can report its own deadline as a failure ("context deadline
# exceeded", no failing input; seen in .ci/run) when the deadline reaches it before its
# workers' context (internal/fuzz/fuzz.go, CoordinateFuzzing's stop; go.dev/issue/75804,
# fixed in Go 1.27). A count sets no deadline; a busy machine only takes longer. Each
# takes 7 to 16 s on this 2-core machine when idle (time each line of this target).
test: fmt-check vet lint rig-unit
	$(GO) test -race -count=1 -timeout 12m ./...
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 80000x -fuzzminimizetime 5s ./scenario/
	$(GO) test -run '^$$' -fuzz FuzzExpectation -fuzztime 60000x -fuzzminimizetime 5s ./timeline/
	$(GO) test -run '^$$' -fuzz FuzzReadStream -fuzztime 120000x -fuzzminimizetime 5s ./loadgen/
	$(GO) test -run '^$$' -fuzz FuzzParseQuery -fuzztime 120000x -fuzzminimizetime 5s ./promql/

# The container image without Docker: scaleout cross-compiled statically for
# linux/amd64 and linux/arm64, one image index written as an OCI layout at
# bin/image/oci, read back and checked. Push: crane push bin/image/oci REF --index
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
image:
	$(GO) run ./cmd/scaleout-image -out bin/image/oci -platforms $(IMAGE_PLATFORMS) -go $(GO)

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

# staticcheck at a pinned version, built by go run from the module proxy: no
# global install, and nothing added to go.mod. ./... stops at nested modules.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

# One run of any scenario: make run SCENARIO=scenarios/x.yaml RUN_FLAGS="--after 1m"
run: build
	$(BIN) run $(SCENARIO) $(target_flags) $(RUN_FLAGS)

# The main job on the embedded simulator: the 1→N→1 story in about 90 seconds.
demo: build
	$(BIN) run scenarios/demo.yaml $(RUN_FLAGS)

# The benchmark that replaces the hand-run hey/vegeta: make bench TARGET=http://… MODEL=…
bench: build
	$(BIN) run scenarios/bench.yaml $(target_flags) $(RUN_FLAGS)

# Runbook §2: KEDA computes scale intent on the one-GPU tier (desired >= 2 while ready stays 1).
validate-gpu: build
	$(BIN) run scenarios/gpu-trigger.yaml $(target_flags) --strict-guard $(RUN_FLAGS)

# Runbook §3: real 1→N→1 on the CPU simulator backends (ready reaches the max and comes back).
sim-proof: build
	$(BIN) run scenarios/sim-1toN.yaml $(target_flags) $(RUN_FLAGS)

# The simulated fleet as a server on 127.0.0.1:8000.
sim: build
	$(BIN) sim $(RUN_FLAGS)

# Load-generator speed against vegeta's own CLI on a loopback server in
# another process; writes docs/perf.md (about 30 minutes; perf-quick: about 6).
# CPU profiles of each client go to PERF_PROFILES.
PERF_PROFILES ?= /tmp/scaleout-perf-profiles
perf:
	$(GO) run ./cmd/scaleout-perf -out docs/perf.md -profile $(PERF_PROFILES)

perf-quick:
	$(GO) run ./cmd/scaleout-perf -quick -out /tmp/scaleout-perf.md

# Counts, as in make test (2 to 3 minutes each here).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 1000000x ./scenario/
	$(GO) test -run '^$$' -fuzz FuzzExpectation -fuzztime 1000000x ./timeline/
	$(GO) test -run '^$$' -fuzz FuzzReadStream -fuzztime 1000000x ./loadgen/
	$(GO) test -run '^$$' -fuzz FuzzParseChunk -fuzztime 1000000x ./loadgen/
	$(GO) test -run '^$$' -fuzz FuzzParseQuery -fuzztime 1000000x ./promql/

# The rig (docs/cluster.md): a real control plane on loopback, in the module rig/.
# rig-build builds its binaries once into a cache outside the repository
# ($$SCALEOUT_RIG_CACHE, default ~/.cache/scaleout-rig): about 30 minutes the first
# time on an idle 2-core machine, about a second afterwards.
RIG_DIR ?= .rig
rig-build:
	@bash rig/build.sh >/dev/null

# The rig's own unit tests and vet (part of make test); its cluster tests skip here.
rig-unit:
	cd rig && $(GO) vet ./... && $(GO) test -short -count=1 ./...

# Start the rig in the background for a person; prints the env (KUBECONFIG, PROMETHEUS,
# GPU_GATEWAY, SIM_GATEWAY). `bin/rig env` prints it again; cluster-down stops it.
cluster-up: rig-build
	cd rig && $(GO) build -o ../bin/rig ./cmd/rig
	bin/rig up --dir $(RIG_DIR)

cluster-down:
	@if [ -x bin/rig ]; then bin/rig down --dir $(RIG_DIR); else echo "no bin/rig: nothing to stop"; fi

# The end-to-end tests against the rig: smoke, a second rig, the GPU tier
# (gpu-trigger.yaml) and the CPU-sim tier (sim-1toN.yaml) through the real scaleout binary.
test-cluster: rig-build
	cd rig && SCALEOUT_RIG_BIN="$$(bash build.sh 2>/dev/null | tail -n 1)" $(GO) test -count=1 -timeout 45m -v ./...

# Everything a fresh machine lacks for the full test suite.
setup:
	bash .ci/setup

clean:
	rm -rf bin runs
