# restpipe — see README.md. Every target works on a fresh machine with Go.
GO            ?= go
PROTOC_GEN_GO  = google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS        = -X main.version=$(VERSION)
BIN            = bin/restpipe

.PHONY: all build demo test test-long browser-deps client-deps node-deps bench vet cross fmt-check proto clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/restpipe

## demo: a temporary CA, a server and a client on loopback, real calls both ways.
demo: build
	./$(BIN) demo

## test: vet, the cross builds, formatting and every test with the race
## detector; the slowest cases (1 GiB transfers) are skipped with -short.
## The browser test (tunnel/browser_test.go) is required: RESTPIPE_BROWSER=1.
test: vet cross fmt-check browser-deps client-deps
	RESTPIPE_BROWSER=1 $(GO) test -race -short -count=1 ./...

## test-long: every test at full size, the slow ones included.
test-long: vet cross fmt-check browser-deps client-deps
	RESTPIPE_BROWSER=1 $(GO) test -race -count=1 -timeout 30m ./...

## browser-deps: Debian's chromium and chromium-driver for the browser
## test, installed (as root, or with sudo) only when missing.
BROWSER_PKGS = chromium chromium-driver
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  command -v apt-get >/dev/null || { echo "browser-deps: no apt-get: install $(BROWSER_PKGS) (/usr/bin/chromium, /usr/bin/chromedriver) by hand"; exit 1; }; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; \
	  elif command -v sudo >/dev/null; then sudo=sudo; \
	  else echo "browser-deps: not root and no sudo: as root, apt-get install $(BROWSER_PKGS)"; exit 1; fi; \
	  echo "browser-deps: installing $(BROWSER_PKGS) for the browser test"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PKGS) >/dev/null; \
	fi

## client-deps: curl, h2load (nghttp2-client) and Debian's python3-requests, python3-websockets and
## python3-jwt, the clients that tunnel/cutshort_test.go and the interop
## suite (cmd/restpipe/interop_*_test.go) call the nodes with, installed
## (as root, or with sudo) only when missing. A module counts as there if
## the python3 on the PATH or Debian's /usr/bin/python3 has it (the tests
## fall back to the latter), and promtool (Debian's prometheus package)
## for the promtool check metrics of tunnel/metrics_test.go and
## cmd/restpipe/admin_test.go. Then, if npm is there, the Node GRIP
## publisher (@fanoutio/grip, and ws) into .interop/node for
## interop_grip_test.go; without npm or the network the test skips.
PY_HAS = { python3 -c 'import $(1)' || /usr/bin/python3 -c 'import $(1)'; } 2>/dev/null
client-deps:
	@missing=; command -v curl >/dev/null || missing=" curl"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	$(call PY_HAS,requests) || missing="$$missing python3-requests"; \
	$(call PY_HAS,websockets) || missing="$$missing python3-websockets"; \
	$(call PY_HAS,jwt) || missing="$$missing python3-jwt"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "client-deps: no apt-get: install$$missing by hand (the test skips what is absent)"; exit 0; }; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; \
	  elif command -v sudo >/dev/null; then sudo=sudo; \
	  else echo "client-deps: not root and no sudo: as root, apt-get install$$missing"; exit 0; fi; \
	  echo "client-deps: installing$$missing for the cut-reply, interop and metrics tests"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
	    echo "client-deps: apt-get install$$missing failed: the tests that need them skip"; \
	fi
	@$(MAKE) --no-print-directory node-deps

## node-deps: the Node GRIP publisher for interop_grip_test.go, in
## .interop/node (gitignored); a failure is reported, not fatal.
NODE_DEPS = @fanoutio/grip@4 ws@8
node-deps:
	@if [ ! -d .interop/node/node_modules/@fanoutio/grip ]; then \
	  if ! command -v npm >/dev/null; then echo "node-deps: no npm: install nodejs and npm for the Node GRIP interop case (it skips without them)"; exit 0; fi; \
	  echo "node-deps: npm install $(NODE_DEPS) into .interop/node"; \
	  mkdir -p .interop/node && \
	  ( cd .interop/node && npm install --no-audit --no-fund --no-save --loglevel=error $(NODE_DEPS) ) || \
	    echo "node-deps: npm install failed (no network?): the Node GRIP interop case skips"; \
	fi

## bench: cmd/restpipe-bench: one markdown table of restpipe against its
## baselines (about a minute on 2 cores; make bench BENCH_FLAGS=-quick for ~15 s).
bench:
	$(GO) run ./cmd/restpipe-bench $(BENCH_FLAGS)
	@echo 'Compare Go benchmarks between two commits:'
	@echo '  $(GO) test -run=^$$ -bench=. -benchmem -count=10 ./... > old.txt   # then again > new.txt'
	@echo '  $(GO) run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt'

vet:
	$(GO) vet ./...

## cross: every package, its tests included, must build for each OS and
## architecture restpipe supports. go vet type-checks a package with its
## _test.go files (internal and external) after compiling what it imports,
## which is what a build checks short of linking; test binaries for
## another OS cannot run here. For the other targets dependencies are
## compiled without optimisation (-N -l): the same type checks for a
## quarter less CPU on a cold cache; the host's own target is the vet
## target's go vet ./..., cached. About 3 min for all eight on a cold
## cache on 2 busy cores, 5 s warm. One line per target, vet's errors
## under a target that fails, each prefixed with it, and the targets that
## failed at the end.
CROSS = linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 freebsd/amd64 freebsd/arm64
cross:
	@host=$$($(GO) env GOOS)/$$($(GO) env GOARCH); failed=; for t in $(CROSS); do \
	  if [ "$$t" = "$$host" ]; then flags=; else flags='all=-N -l'; fi; \
	  if out=$$(GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet $${flags:+-gcflags="$$flags"} ./... 2>&1); then \
	    echo "cross: $$t ok"; \
	  else \
	    echo "cross: $$t FAILED:"; printf '%s\n' "$$out" | sed "s|^|  $$t: |"; failed="$$failed $$t"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "cross: go vet failed for$$failed"; exit 1; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

## proto: regenerate events/events.pb.go (protoc from Debian's protobuf-compiler).
proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	$(GO) install $(PROTOC_GEN_GO)
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc --go_out=. --go_opt=paths=source_relative events/events.proto

clean:
	rm -rf bin
