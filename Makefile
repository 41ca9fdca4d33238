# Keyhold build. `make run` and `make test` work on a fresh Debian machine:
# they install what is missing (they run as root, or use sudo if present).

GO        ?= go
BIN       := bin/keyhold
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
DEV_DIR   ?= $(CURDIR)/dev-data
DEV_ADDR  ?= 127.0.0.1:8200
BENCH_COUNT ?= 6

export CGO_ENABLED := 1

# Debian packages the build and the tests need, as "command:package"; the
# PostgreSQL server (tests start their own from its binaries) is checked by path.
DEPS := softhsm2-util:softhsm2 openssl:openssl gcc:gcc sqlite3:sqlite3 \
        curl:curl jq:jq uuidgen:uuid-runtime xxd:xxd chromium:chromium pykmip-server:python3-pykmip

SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: all deps build run test test-go lint bench clean ui-deps ui-screenshots

all: build

deps:
	@missing=""; for d in $(DEPS); do \
	  command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d##*:}"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl)"; exit 1; }

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/keyhold

# A dev appliance on its embedded defaults: SoftHSM2 token + SQLite in
# $(DEV_DIR) (kept across runs), plain HTTP on $(DEV_ADDR).
run: build
	./$(BIN) server -dev -dev-dir $(DEV_DIR) -dev-listen-address $(DEV_ADDR)

# Everything CI runs.
test: deps lint ui-deps test-go

# The web console's end-to-end tests (ui/e2e) drive Debian's chromium (in
# DEPS) with playwright-core, installed from ui/e2e/package-lock.json.
UI_E2E := ui/e2e
ui-deps: deps
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "Node.js 20 and npm are required for the console's tests"; exit 1; }
	@[ $(UI_E2E)/node_modules/.package-lock.json -nt $(UI_E2E)/package-lock.json ] || npm ci --prefix $(UI_E2E) --no-audit --no-fund

# Screenshots of the console's main pages in ui/e2e/screenshots (or
# KEYHOLD_SCREENSHOTS), made by the workflow test.
ui-screenshots: build ui-deps
	KEYHOLD_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -run 'TestConsoleWorkflow' ./ui/e2e

# The KMIP conformance runner (kmip/conformance) replays the OASIS test
# cases in ../shared/kmip-testcases during the tests; its report follows.
test-go:
	@rm -f kmip-conformance.txt test-go.log
	@KMIP_CONFORMANCE_REPORT=$(CURDIR)/kmip-conformance.txt $(GO) test -race -count=1 -timeout 15m ./... > test-go.log 2>&1; status=$$?; \
	  echo "==> KMIP conformance (OASIS KMIP 1.4 test cases of the claimed profiles over mutual TLS; every file must pass)"; \
	  cat kmip-conformance.txt 2>/dev/null || echo "(no report: the conformance test did not run)"; \
	  echo "==> go test -race ./..."; cat test-go.log; exit $$status

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks: medians over $(BENCH_COUNT) runs, side by side in one run.
# The audit overhead of XKS Encrypt and KMIP Get (device off and on
# interleaved over several client counts, medians of three rounds each, the
# clients in a process of their own; one package at a time) runs once,
# after. So do the XKS load runs (open loop at XKS_LOAD_RATE req/s for
# XKS_LOAD_DURATION, then max Encrypt beside a minimal baseline server), the
# KMIP load tool (Create and Get over KMIP_LOAD_CONNECTIONS mutual-TLS
# connections against Keyhold and a PyKMIP server it starts) and the KMIP
# cryptographic load (AES-GCM Encrypt, RSA-2048 and ECDSA P-256 Sign over
# those connections beside the same calls raw on one PKCS#11 session).
bench: deps
	$(GO) test -run '^$$' -bench . -skip 'XKSLoad|KMIPLoad|KMIPCryptoLoad|KMIP1M|AuditOverhead' -benchmem -count $(BENCH_COUNT) -timeout 60m ./... | tee bench.txt
	$(GO) test -run '^$$' -bench 'AuditOverhead' -benchtime 1x -count 1 -p 1 -timeout 30m ./xks ./kmip | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'XKSLoad' -benchtime 1x -count 1 -timeout 30m ./xks | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'KMIPLoad' -benchtime 1x -count 1 -timeout 30m ./kmip | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'KMIPCryptoLoad' -benchtime 1x -count 1 -timeout 30m ./kmip | tee -a bench.txt
	# KMIP Get and Locate by name over the protocol with 1,000,000 objects in the store, both backends (loads for minutes).
	$(GO) test -run '^$$' -bench 'KMIP1M' -count 1 -timeout 30m ./server | tee -a bench.txt

clean:
	rm -rf bin bench.txt $(UI_E2E)/screenshots kmip-conformance.txt
