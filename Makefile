# restpipe — see README.md. Every target works on a fresh machine with Go.
GO            ?= go
PROTOC_GEN_GO  = google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS        = -X main.version=$(VERSION)
BIN            = bin/restpipe

.PHONY: all build demo test test-long bench vet fmt-check proto clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/restpipe

## demo: a temporary CA, a server and a client on loopback, real calls both ways.
demo: build
	./$(BIN) demo

## test: vet, formatting and every test with the race detector; the
## slowest cases (1 GiB transfers) are skipped with -short.
test: vet fmt-check
	$(GO) test -race -short -count=1 ./...

## test-long: every test at full size, the slow ones included.
test-long: vet fmt-check
	$(GO) test -race -count=1 -timeout 30m ./...

## bench: cmd/restpipe-bench: one markdown table of restpipe against its
## baselines (about a minute on 2 cores; make bench BENCH_FLAGS=-quick for ~15 s).
bench:
	$(GO) run ./cmd/restpipe-bench $(BENCH_FLAGS)
	@echo 'Compare Go benchmarks between two commits:'
	@echo '  $(GO) test -run=^$$ -bench=. -benchmem -count=10 ./... > old.txt   # then again > new.txt'
	@echo '  $(GO) run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt'

vet:
	$(GO) vet ./...

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
