# Sluice: eBPF dataplane for Kubernetes. `make help` lists the targets.
GO      ?= go
BIN     := $(CURDIR)/bin
BINARIES := sluice-cni sluice-agent sluice
# Privileged tests (netns, BPF) run by default as root.
SLUICE_PRIVILEGED_TESTS ?= $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)
export SLUICE_PRIVILEGED_TESTS
export SLUICE_BIN_DIR := $(BIN)
# What `sluice status` reports as the agent's version.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
VERSION_LDFLAG := -X github.com/sluicenet/sluice/agent/daemon.Version=$(VERSION)

.PHONY: all build deps generate test lint demo clean help check-generate fuzz

all: build

help:
	@echo "make            build bin/sluice-cni, bin/sluice-agent, bin/sluice (+ bin/host-local IPAM)"
	@echo "make demo       install what is missing, build, run the standalone demo"
	@echo "make test       install what is missing, build, run unit and privileged tests"
	@echo "make lint       gofmt, go vet, staticcheck"
	@echo "make fuzz       run every Go fuzz target for FUZZTIME (default 10s) each"
	@echo "make generate   recompile bpf/ with clang-19 and regenerate the Go mirrors"

deps:
	@hack/install-deps.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(VERSION_LDFLAG)" -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))
	$(GO) build -o $(BIN)/host-local github.com/containernetworking/plugins/plugins/ipam/host-local
	$(GO) build -o $(BIN)/crr ./test/bench/crr

generate: deps
	GO=$(GO) hack/bpf-generate.sh
	$(GO) generate ./policy/tracing/

# Fails when the committed generated code differs from a fresh generation
# (the BPF objects and their Go mirrors, the syscall tables of tracing
# policies from the kernel headers).
check-generate: generate
	@git diff --exit-code -- datapath bpf policy/tracing || { echo "generated code is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- datapath bpf policy/tracing)" || { git status --porcelain -- datapath bpf policy/tracing; echo "untracked generated files" >&2; exit 1; }

test: deps build
	@hack/test.sh

# Go fuzz targets as package:Target; `go test -fuzz` takes one target per run, so
# `make fuzz` runs them one after the other, each for FUZZTIME. Their seed corpora
# (f.Add and testdata/fuzz/) run as plain tests in `make test`. FuzzPacket is
# privileged (BPF) and skips without SLUICE_PRIVILEGED_TESTS=1.
FUZZTIME  ?= 10s
FUZZFLAGS ?= -parallel 1
FUZZ_TARGETS := \
	./policy:FuzzPolicyTranslation \
	./agent/source/manifests:FuzzParseFile \
	./agent/source/manifests:FuzzFastYAMLToJSON \
	./cni:FuzzParseConfig \
	./cni:FuzzParseArgs \
	./agent/server:FuzzPutEndpoint \
	./datapath:FuzzPacket

fuzz:
	@missing=$$(git grep -h -o '^func Fuzz[A-Za-z0-9_]*' -- '*_test.go' | sed 's/^func //' | sort -u | \
		while read -r f; do case " $(FUZZ_TARGETS) " in *":$$f "*) ;; *) echo "$$f";; esac; done); \
		test -z "$$missing" || { echo "fuzz targets not in FUZZ_TARGETS (Makefile): $$missing" >&2; exit 1; }
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "=== fuzz $${t##*:} ($${t%%:*}) for $(FUZZTIME)"; \
		hack/fuzz-one.sh $(GO) "$${t%%:*}" "$${t##*:}" $(FUZZTIME) $(FUZZFLAGS); \
	done

lint: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

demo: deps build
	$(GO) run ./hack/demo

clean:
	rm -rf $(BIN)

# --- Kubernetes: image and end-to-end tests on a real local node (hack/local-cluster.sh) ---
IMAGE     ?= sluice.local/sluice:dev
IMAGE_TAR ?= $(BIN)/sluice-image.tar
.PHONY: image e2e e2e-multinode

# A docker-archive tar of static binaries, built without Docker (hack/k8s/mkimage.sh); load with `ctr images import`.
image:
	@rm -rf $(BIN)/image && mkdir -p $(BIN)/image/usr/bin $(BIN)/image/usr/lib/sluice/cni
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(VERSION_LDFLAG)" -o $(BIN)/image/usr/bin/ ./cmd/sluice-agent ./cmd/sluice ./install/cni-install
	mv $(BIN)/image/usr/bin/cni-install $(BIN)/image/usr/bin/sluice-install-cni
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/image/usr/lib/sluice/cni/ ./cmd/sluice-cni \
		github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/main/loopback
	hack/k8s/mkimage.sh $(IMAGE) $(IMAGE_TAR) $(BIN)/image /usr/bin/sluice-agent

# Runs test/e2e against the node `hack/local-cluster.sh up` started (SLUICE_E2E=1; skipped otherwise).
# Fails also when no e2e test passed or one was skipped (hack/check-test-log.sh): a run that tested nothing is no pass.
e2e:
	@bash -c 'set -o pipefail; log=$$(mktemp /tmp/sluice-e2e.XXXXXX.log); echo "e2e log: $$log"; \
		SLUICE_E2E=1 $(GO) test -count=1 -timeout 20m -v ./test/e2e/... 2>&1 | tee "$$log"; rc=$$?; \
		hack/check-test-log.sh e2e "$$log" || rc=1; exit $$rc'

# Runs the cross-node tests against `hack/local-cluster.sh up --nodes 2` (or 3); they fail, never skip, with fewer Ready nodes.
# Fails also when none passed or one was skipped (hack/check-test-log.sh), as `make e2e`.
e2e-multinode:
	@bash -c 'set -o pipefail; log=$$(mktemp /tmp/sluice-e2e-multinode.XXXXXX.log); echo "e2e-multinode log: $$log"; \
		SLUICE_E2E=1 SLUICE_E2E_NODES=$${SLUICE_E2E_NODES:-2} $(GO) test -count=1 -timeout 20m -v -run TestMultiNode ./test/e2e/... 2>&1 | tee "$$log"; rc=$$?; \
		hack/check-test-log.sh multinode "$$log" || rc=1; exit $$rc'


# Upstream network conformance (Kubernetes v1.33.13 e2e.test: `[sig-network] Services` and `[sig-network] .*
# [Conformance]`, minus hack/conformance-skip.txt) against the cluster `hack/local-cluster.sh up` started; builds e2e.test,
# ginkgo and the test images on first use (cached). PROCS=4 parallel ginkgo processes by default.
.PHONY: conformance
conformance:
	@hack/conformance.sh

# --- CRDs: generated from the policy/ Go types with controller-gen (a go.mod tool) into the chart's crds/ ---
CRD_DIR := install/helm/sluice/crds
.PHONY: generate-crds check-generate-crds

generate-crds:
	$(GO) tool controller-gen crd:crdVersions=v1 paths=./policy/... output:crd:dir=$(CRD_DIR)

# Fails when the committed CRDs differ from a fresh generation (part of check-generate).
check-generate-crds: generate-crds
	@git diff --exit-code -- $(CRD_DIR) || { echo "CRDs are stale: run make generate-crds and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- $(CRD_DIR))" || { git status --porcelain -- $(CRD_DIR); echo "untracked CRD files" >&2; exit 1; }
check-generate: check-generate-crds

# The SluiceIdentity CRD (identity/k8sstore) is generated into the same crds/ (and checked by check-generate-crds).
.PHONY: generate-identity-crd
generate-crds: generate-identity-crd
generate-identity-crd:
	$(GO) tool controller-gen crd:crdVersions=v1 paths=./identity/k8sstore/... output:crd:dir=$(CRD_DIR)
