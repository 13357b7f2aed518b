# tokend — the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
FUZZTIME  ?= 40000x
BENCHTIME ?= 1s
COUNT     ?= 6
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

K6_VERSION ?= v1.8.1
K6        ?= $(shell command -v k6 2>/dev/null || echo $$($(GO) env GOPATH)/bin/k6)

.PHONY: run build test vet fmt-check tidy-check staticcheck race allocs bench-once fuzz bench instructions loadtest throughput typical typical-module drills overload wait-cost dpop-cost profile k6 benchstat mutants redis-server promtool curl image rootfs example clean

## run: start tokend on its embedded defaults (memory store, ephemeral key)
run:
	$(GO) run ./cmd/tokend

# -buildvcs=auto: stamp the VCS revision (tokend version) even where GOFLAGS turns it off.
## build: the tokend binary in ./bin
build:
	$(GO) build -buildvcs=auto -o bin/tokend ./cmd/tokend

IMAGE  ?= tokend:dev
# docker when its daemon answers, else podman (daemonless)
ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; elif command -v podman >/dev/null 2>&1; then echo podman; fi)
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt

# The image's root file system: the static binary, CA certificates, a non-root user.
rootfs:
	rm -rf bin/image && mkdir -p bin/image/rootfs/etc/ssl/certs
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags='-s -w' -o bin/image/rootfs/tokend ./cmd/tokend
	@[ -r "$(CA_CERTS)" ] || { echo "no CA bundle at $(CA_CERTS): set CA_CERTS (Debian: apt-get install ca-certificates)"; exit 1; }
	cp $(CA_CERTS) bin/image/rootfs/etc/ssl/certs/ca-certificates.crt
	printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > bin/image/rootfs/etc/passwd
	printf 'nonroot:x:65532:\n' > bin/image/rootfs/etc/group

## image: the container image $(IMAGE) (FROM scratch: no base image to pull), with docker or podman
image: rootfs
	@[ -n "$(ENGINE)" ] || { echo "no docker daemon and no podman (Debian: apt-get install podman)"; exit 1; }
	$(ENGINE) build $(if $(findstring podman,$(ENGINE)),--format docker) -t $(IMAGE) -f deploy/Dockerfile bin/image
	$(ENGINE) image inspect $(IMAGE) --format '{{.Config.User}} {{.Config.Entrypoint}} {{.Size}} bytes'

## test: everything — format, vet, staticcheck, race tests (real Redis and Prometheus on free ports), allocation bounds, every benchmark once, short fuzz runs, the example, the typical stack's module
test: redis-server promtool curl fmt-check tidy-check vet staticcheck race allocs bench-once fuzz example typical-module

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# go.mod and go.sum say exactly what the code imports: go mod tidy changes nothing.
tidy-check:
	@d=$$(mktemp -d); cp go.mod go.sum $$d/; $(GO) mod tidy; \
	if ! cmp -s go.mod $$d/go.mod || ! cmp -s go.sum $$d/go.sum; then \
	  diff -u $$d/go.mod go.mod; cp $$d/go.mod $$d/go.sum .; rm -rf $$d; \
	  echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; fi; rm -rf $$d

vet:
	$(GO) vet ./...

STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)

# staticcheck from the Go module proxy, installed the first time.
staticcheck:
	@[ -x "$(STATICCHECK)" ] || { echo "installing staticcheck $(STATICCHECK_VERSION)"; $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); }
	$(STATICCHECK) ./...

race:
	$(GO) test -race -count=1 -timeout 10m ./...

# sync.Pool is not reliable under -race: the allocation bounds run without it.
allocs:
	$(GO) test -count=1 -run='Allocations' ./bench/

# Every benchmark of make bench, one iteration each (seconds): a benchmark
# whose premises broke fails here, not on the day someone measures.
bench-once:
	$(GO) test -count=1 -run='^$$' -bench=. -benchtime=1x ./bench/ ./bench/floor/ ./server/watchdog/

# Every decoder and parser; go test -fuzz takes one target at a time.
# A count, not a duration: a time limit that ends during minimization is
# reported as "context deadline exceeded", a flake.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens
	$(GO) test -run='^$$' -fuzz='^FuzzOpaque$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens
	$(GO) test -run='^$$' -fuzz='^FuzzClaims$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./server/spring
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./server/aspnet
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens/dpop
	$(GO) test -run='^$$' -fuzz='^FuzzJSONScan$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens/dpop
	$(GO) test -run='^$$' -fuzz='^FuzzEdKeyVerify$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens/dpop
	$(GO) test -run='^$$' -fuzz='^FuzzForm$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./server/oauth2
	$(GO) test -run='^$$' -fuzz='^FuzzToken$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./server/oauth2
	$(GO) test -run='^$$' -fuzz='^FuzzSubject$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/tokens/session

## mutants: break tokend on purpose, one named mutation at a time (bench/mutants), and run the tests that must notice; writes bench/MUTANTS.md (MUTANTS=name runs those whose name contains it)
mutants: redis-server
	$(GO) run ./bench/mutants -root . -run '$(MUTANTS)' -o $(if $(MUTANTS),bench/mutants-partial.md,bench/MUTANTS.md)

## bench: go test -bench across the stack, -count enough for benchstat; builds the floor and the load generator
bench: redis-server
	$(GO) build -o bin/floor ./bench/floor
	$(GO) build -o bin/loadgen ./loadtest/loadgen
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) ./bench/ ./bench/floor/ ./server/watchdog/ | tee bench/latest.txt

## instructions: instructions per refresh of tokend's handlers and the floor's, counted by callgrind (repeatable where ns/op is not); installs valgrind
instructions:
	@command -v valgrind >/dev/null 2>&1 || { echo "installing valgrind (apt-get)"; $(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq && $(SUDO) apt-get -o DPkg::Lock::Timeout=300 install -y -qq valgrind >/dev/null; }
	bench/instructions.sh

## loadtest: k6 scripts (refresh.js, attack.js, oauth2.js; both dialects) with their thresholds, then one throughput comparison
loadtest: redis-server k6
	K6=$(K6) loadtest/run.sh k6
	RUNS=1 loadtest/run.sh compare

## throughput: the closed-loop generator against the floors and tokend (RUNS=3), then open loop at 25/50/75% of the Redis floor's maximum (FIXED_RUNS=2): latencies, Redis and server CPU per refresh, ratios to the floor (PIN=1: the generator on a CPU of its own)
throughput: redis-server
	loadtest/run.sh compare

## typical: the closed-loop generator against the floor, tokend and the typical Go stack (bench/typical), memory and Redis, then /oauth2/token plain and DPoP (RUNS=3): req/s, CPU per refresh, tokend over typical paired round by round
typical: redis-server
	loadtest/run.sh typical

## drills: every fault drill in its long form (minutes); prints the table bench/RESULTS.md keeps (bench/drills.md)
drills: redis-server
	$(GO) test -count=1 -timeout 30m -v ./loadtest/drill -args -drill.full -drill.table=$(CURDIR)/bench/drills.md

## dpop-cost: a DPoP refresh's tokend + Redis CPU above a plain one, against one verification measured in the same run by a CPU profile (RUNS=3, RATE=5000)
dpop-cost: redis-server
	loadtest/dpop-cost.sh

## wait-cost: WAIT 0 against WAIT 1 with a real replica (RUNS=3)
wait-cost: redis-server
	loadtest/wait-cost.sh

## overload: 64 and 2000 connections against TOKEND_MAX_INFLIGHT 512 and 0 (about a minute)
overload: redis-server
	loadtest/overload.sh

## profile: a CPU profile of tokend under the Redis load (bench/results/DATE-cpu.prof, DATE-cpu.txt)
profile: redis-server
	loadtest/run.sh profile

BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT ?= $(shell command -v benchstat 2>/dev/null || echo $$($(GO) env GOPATH)/bin/benchstat)

## benchstat: install benchstat (golang.org/x/perf) from the Go module proxy, then summarise bench/latest.txt
benchstat:
	@[ -x "$(BENCHSTAT)" ] || { echo "installing benchstat $(BENCHSTAT_VERSION)"; $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION); }
	@[ ! -f bench/latest.txt ] || $(BENCHSTAT) bench/latest.txt

# k6 from the Go module proxy (about 4 minutes the first time); never part of make test.
k6:
	@[ -x "$(K6)" ] || { echo "installing k6 $(K6_VERSION) (go install, a few minutes)"; $(GO) install go.k6.io/k6@$(K6_VERSION); }

# Tests start their own redis-server on free ports; install it when missing.
redis-server:
	@{ command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then \
	    echo "installing redis-server (apt-get)"; \
	    $(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq && $(SUDO) apt-get -o DPkg::Lock::Timeout=300 install -y -qq redis-server redis-tools >/dev/null; \
	  else \
	    echo "redis-server or redis-cli is missing: install them (Debian/Ubuntu: apt-get install redis-server redis-tools; macOS: brew install redis)"; exit 1; \
	  fi; }
	@redis-server --version

# The README's walk-through test runs curl; under CI=true a missing tool
# fails a test rather than skipping it.
curl:
	@command -v curl >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then \
	    echo "installing curl (apt-get)"; \
	    $(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends curl >/dev/null; \
	  else \
	    echo "curl is missing: install it (Debian/Ubuntu: apt-get install curl; macOS: brew install curl)"; exit 1; \
	  fi; }
	@curl --version | head -1

# The deploy tests run promtool (rules, config) and Prometheus itself: Debian's prometheus package.
promtool:
	@{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then \
	    echo "installing prometheus (apt-get: promtool and the server the deploy tests start)"; \
	    $(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "promtool or prometheus is missing: install them (Debian/Ubuntu: apt-get install prometheus; macOS: brew install prometheus)"; exit 1; \
	  fi; }
	@promtool --version 2>&1 | head -1

## example: build and test examples/resource-server (its own module) against a real tokend
example: staticcheck
	cd examples/resource-server && $(GO) mod tidy -diff && $(GO) vet ./... && $(STATICCHECK) ./... && $(GO) test -count=1 ./...

## typical-module: vet, staticcheck and race-test bench/typical (its own module, so that go-redis stays out of tokend's go.mod)
typical-module: staticcheck
	cd bench/typical && $(GO) mod tidy -diff && $(GO) vet ./... && $(STATICCHECK) ./... && $(GO) test -race -count=1 ./...

clean:
	rm -rf bin bench/latest.txt bench/cpu.prof
