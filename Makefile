# Sluice: eBPF dataplane for Kubernetes. `make help` lists the targets.
GO      ?= go
BIN     := $(CURDIR)/bin
BINARIES := sluice-cni sluice-agent sluice
# Privileged tests (netns, BPF) run by default as root.
SLUICE_PRIVILEGED_TESTS ?= $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)
export SLUICE_PRIVILEGED_TESTS
export SLUICE_BIN_DIR := $(BIN)

.PHONY: all build deps generate test lint demo clean help check-generate

all: build

help:
	@echo "make            build bin/sluice-cni, bin/sluice-agent, bin/sluice (+ bin/host-local IPAM)"
	@echo "make demo       install what is missing, build, run the standalone demo"
	@echo "make test       install what is missing, build, run unit and privileged tests"
	@echo "make lint       gofmt, go vet, staticcheck"
	@echo "make generate   recompile bpf/ with clang-19 and regenerate the Go mirrors"

deps:
	@hack/install-deps.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))
	$(GO) build -o $(BIN)/host-local github.com/containernetworking/plugins/plugins/ipam/host-local

generate: deps
	$(GO) generate ./datapath/...

# Fails when the committed generated code differs from a fresh generation.
check-generate: generate
	@git diff --exit-code -- datapath bpf || { echo "generated BPF code is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- datapath bpf)" || { git status --porcelain -- datapath bpf; echo "untracked generated files" >&2; exit 1; }

test: deps build
	@hack/test.sh

lint: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

demo: deps build
	$(GO) run ./hack/demo

clean:
	rm -rf $(BIN)
