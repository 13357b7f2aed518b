# tokend — the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
FUZZTIME  ?= 40000x
BENCHTIME ?= 1s
COUNT     ?= 6
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run build test vet fmt-check race allocs fuzz bench redis-server clean

## run: start tokend on its embedded defaults (memory store, ephemeral key)
run:
	$(GO) run ./cmd/tokend

## build: the tokend binary in ./bin
build:
	$(GO) build -o bin/tokend ./cmd/tokend

## test: everything — format, vet, race tests (real Redis on free ports), allocation bounds, short fuzz runs
test: redis-server fmt-check vet race allocs fuzz

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 10m ./...

# sync.Pool is not reliable under -race: the allocation bounds run without it.
allocs:
	$(GO) test -count=1 -run='Allocations' ./bench/

# Every decoder and parser; go test -fuzz takes one target at a time.
# A count, not a duration: a time limit that ends during minimization is
# reported as "context deadline exceeded", a flake.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./tokens
	$(GO) test -run='^$$' -fuzz='^FuzzOpaque$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./tokens
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./server/spring
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./server/aspnet

## bench: go test -bench across the stack, -count enough for benchstat
bench: redis-server
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) ./bench/ | tee bench/latest.txt

# Tests start their own redis-server on free ports; install it when missing.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then \
	    echo "installing redis-server (apt-get)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"; exit 1; \
	  fi; }
	@redis-server --version

clean:
	rm -rf bin bench/latest.txt
