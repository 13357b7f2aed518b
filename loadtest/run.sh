#!/usr/bin/env bash
# loadtest/run.sh — load tests on 127.0.0.1, bounded in time, stopping
# everything they start (by PID) on the way out.
#
#   loadtest/run.sh compare   the closed-loop generator against the floors
#                             (spring's, aspnet's) and tokend (spring, aspnet),
#                             memory and Redis, RUNS times; medians and shares
#                             of the floor, paired run by run. Then open loop
#                             at 25%, 50% and 75% of the Redis floor's maximum
#                             (FIXED_RUNS times): p50/p99/p99.9 from each
#                             request's scheduled time, and the Redis CPU per
#                             refresh of the floor and tokend, with the ratio
#   loadtest/run.sh fixed     the open-loop part of compare alone, after one
#                             closed-loop run of the Redis floor for its maximum
#   loadtest/run.sh cluster   the sizing check: one tokend on one Redis against
#                             two tokend on a 3-master Cluster, at the same
#                             fixed rate (RATE, 8000): CPU per refresh of
#                             tokend and of Redis (the masters summed)
#   loadtest/run.sh oauth2    tokend spring on Redis, closed loop: the dialect
#                             endpoint, /oauth2/token, and /oauth2/token with
#                             a DPoP proof per refresh (ES256, then EdDSA),
#                             RUNS rounds; with RATE, open loop at that rate
#   loadtest/run.sh typical   the closed-loop generator against the floor,
#                             tokend and the typical Go stack (bench/typical:
#                             net/http, jwx, go-redis), spring endpoint on
#                             memory and Redis, then /oauth2/token plain and
#                             with an ES256 DPoP proof on Redis (tokend and
#                             the typical stack), one after the other in each
#                             of RUNS rounds; medians, and tokend over the
#                             typical stack paired round by round
#   loadtest/run.sh k6        the k6 scripts (refresh.js, attack.js, oauth2.js)
#                             against tokend on Redis, with their thresholds
#   loadtest/run.sh profile   a CPU profile of tokend under the Redis load
#
# Settings (environment): DURATION (10s), WARMUP (2s), CONNS (64), RUNS (3), FIXED_RUNS (2),
# K6 (path of k6), OUT (the directory of raw results, bench/results), OUT_FILE
# (the raw file's name without .jsonl; by default the day and what ran:
# DATE-closed-loop for compare, DATE-open-loop for fixed, DATE-cluster,
# DATE-oauth2, DATE-typical, DATE-cpu for profile's .prof and .txt; -pinned appended with
# PIN=1; DATE is today's, UTC), PIN (0; 1: the generator on CPU 0, servers
# and Redis on the others, so that the generator does not take CPU from the
# server it measures; needs taskset and 2+ CPUs).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
RUNS=${RUNS:-3}
FIXED_RUNS=${FIXED_RUNS:-2}
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
DAY=$(date -u +%F)
SECRET=loadtest-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef
TMP=$(mktemp -d)
PIDS=()
GEN=() SRV=() # command prefixes that pin the generator and the servers (PIN=1)
if [ "${PIN:-0}" = 1 ]; then
  n=$(nproc)
  [ "$n" -ge 2 ] || { echo "loadtest: PIN=1 needs 2 or more CPUs" >&2; exit 2; }
  GEN=(taskset -c 0) SRV=(taskset -c "1-$((n - 1))")
fi

# raw_name WHAT sets RAW, the name (without .jsonl) of the file in $OUT
# that this command's runs are written to: OUT_FILE, or DATE-WHAT.
raw_name() {
  local pinned=
  [ "${PIN:-0}" = 1 ] && pinned=-pinned
  RAW=${OUT_FILE:-$DAY-$1$pinned}
  log "raw results: $OUT/$RAW"
}

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

log() { echo "loadtest: $*" >&2; }

# free_port prints a port of 127.0.0.1 nobody listens on, below Linux's
# ephemeral range (32768 and up): a port a client connection holds there
# cannot be bound by a server even though nobody listens on it.
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# wait_port waits until something listens on port $1; if nothing does, it
# shows what the servers logged.
wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  log "nothing listens on $1; the last lines the servers logged:"
  tail -n 20 "$TMP"/*.log >&2 || true
  return 1
}

# stop kills one process we started and waits for it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

build() {
  mkdir -p bin
  go build -o bin/tokend ./cmd/tokend
  go build -o bin/floor ./bench/floor
  go build -o bin/loadgen ./loadtest/loadgen
}

start_redis() { # sets REDIS_PORT, REDIS_PID
  REDIS_PORT=$(free_port)
  "${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_port "$REDIS_PORT"
}

# start_tokend DIALECT STORE [extra env...]: sets PUB, ADM, TOKEND_PID
start_tokend() {
  local dialect=$1 store=$2; shift 2
  local pp ap alg=HS256
  pp=$(free_port); ap=$(free_port)
  [ "$dialect" = aspnet ] && alg=HS512
  env TOKEND_DIALECT="$dialect" TOKEND_STORE="$store" TOKEND_REDIS_ADDR="127.0.0.1:${REDIS_PORT:-6379}" \
    TOKEND_ADDR="127.0.0.1:$pp" TOKEND_ADMIN_ADDR="127.0.0.1:$ap" TOKEND_PUBLIC_URL="http://127.0.0.1:$pp" \
    TOKEND_HMAC_SECRET="$SECRET" TOKEND_HMAC_ALG="$alg" "$@" \
    "${SRV[@]}" bin/tokend 2>>"$TMP/tokend.log" &
  TOKEND_PID=$!
  PIDS+=("$TOKEND_PID")
  wait_port "$pp"; wait_port "$ap"
  PUB=http://127.0.0.1:$pp ADM=http://127.0.0.1:$ap
}

# start_floor STORE DIALECT (STORE: none or redis): sets PUB, ADM, FLOOR_PID
start_floor() {
  local pp args=()
  pp=$(free_port)
  # the floor's client holds writes to Redis as long as tokend's does by
  # default (TOKEND_REDIS_FLUSH_DELAY), so that it stays the bound
  [ "$1" = redis ] && args+=(-redis "127.0.0.1:$REDIS_PORT" -flush-delay 20us)
  "${SRV[@]}" bin/floor -addr "127.0.0.1:$pp" -dialect "$2" "${args[@]}" 2>>"$TMP/floor.log" &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
  wait_port "$pp"
  PUB=http://127.0.0.1:$pp ADM=$PUB
}

# start_typical STORE (memory or redis): the typical Go stack with tokend's
# HS256 secret; sets PUB, ADM (the same listener), TYPICAL_PID
start_typical() {
  local pp args=(-store "$1")
  pp=$(free_port)
  [ "$1" = redis ] && args+=(-redis "127.0.0.1:$REDIS_PORT")
  "${SRV[@]}" bin/typical -addr "127.0.0.1:$pp" -public-url "http://127.0.0.1:$pp" -secret "$SECRET" -clients loadgen \
    "${args[@]}" 2>>"$TMP/typical.log" &
  TYPICAL_PID=$!
  PIDS+=("$TYPICAL_PID")
  wait_port "$pp"
  PUB=http://127.0.0.1:$pp ADM=$PUB
}

# loadgen LABEL DIALECT PID [extra loadgen flags...]: one run, its JSON line
# appended to $OUT/$RAW.jsonl; with Redis running, its CPU per refresh too.
loadgen() {
  local label=$1 dialect=$2 pid=$3; shift 3
  local cpu=(-pid "$pid")
  [ -n "${REDIS_PORT:-}" ] && cpu+=(-redis "127.0.0.1:$REDIS_PORT")
  "${GEN[@]}" bin/loadgen -url "$PUB" -admin "$ADM" -dialect "$dialect" -label "$label" -c "$CONNS" -d "$DURATION" -warmup "$WARMUP" \
    "${cpu[@]}" -json "$@" | tee -a "$OUT/$RAW.jsonl"
}

compare() {
  raw_name closed-loop
  build
  start_redis
  : >"$OUT/$RAW.jsonl"
  for run in $(seq 1 "$RUNS"); do
    log "run $run of $RUNS ($DURATION each, $CONNS connections)"
    # each tokend run right after its floor: shares are taken pairwise
    for store in memory redis; do
      local fstore=none
      [ "$store" = redis ] && fstore=redis
      start_floor "$fstore" spring;  loadgen "floor/$fstore" spring "$FLOOR_PID";        stop "$FLOOR_PID"
      start_tokend spring "$store";  loadgen "spring/$store" spring "$TOKEND_PID";       stop "$TOKEND_PID"
      start_floor "$fstore" aspnet;  loadgen "floor-aspnet/$fstore" aspnet "$FLOOR_PID"; stop "$FLOOR_PID"
      start_tokend aspnet "$store";  loadgen "aspnet/$store" aspnet "$TOKEND_PID";       stop "$TOKEND_PID"
    done
  done
  fixed_rates
  bin/loadgen -summarize "$OUT/$RAW.jsonl"
  # what one session costs Redis
  start_tokend spring redis
  curl -s -XPOST "$ADM/admin/sessions" -H 'Content-Type: application/json' -d '{"sub":"4ef1c711-06ff-41ea-888a-456579e447d6"}' >/dev/null
  # session records have binary keys (tokend:b + the id's 16 bytes): found and measured inside Redis
  echo "Redis MEMORY USAGE of one session record: $(redis-cli -p "$REDIS_PORT" EVAL "local r = redis.call('SCAN', 0, 'MATCH', 'tokend:b*', 'COUNT', 1000) return redis.call('MEMORY', 'USAGE', r[2][1])" 0) bytes;" \
    "its subject index: $(redis-cli -p "$REDIS_PORT" MEMORY USAGE 'tokend:u:{4ef1c711-06ff-41ea-888a-456579e447d6}') bytes"
  stop "$TOKEND_PID"
}

# fixed_rates: open loop at 25/50/75% of the Redis floor's closed-loop
# median, the floor and tokend (spring) in turn at each rate.
fixed_rates() {
  local max rate pct
  max=$(bin/loadgen -summarize "$OUT/$RAW.jsonl" -median floor/redis)
  for run in $(seq 1 "$FIXED_RUNS"); do
    for pct in 25 50 75; do
      rate=$((max * pct / 100))
      log "open loop, run $run of $FIXED_RUNS: $rate refreshes/s ($pct% of the Redis floor's $max)"
      start_floor redis spring;     loadgen "floor/redis @$pct%" spring "$FLOOR_PID" -rate "$rate";   stop "$FLOOR_PID"
      start_tokend spring redis;    loadgen "spring/redis @$pct%" spring "$TOKEND_PID" -rate "$rate"; stop "$TOKEND_PID"
    done
  done
}

cluster() {
  raw_name cluster
  build
  local rate=${RATE:-8000} ports=() pids=() addrs=()
  start_redis
  : >"$OUT/$RAW.jsonl"
  for run in $(seq 1 "$FIXED_RUNS"); do
    start_tokend spring redis
    loadgen "one tokend, one Redis" spring "$TOKEND_PID" -rate "$rate"
    stop "$TOKEND_PID"
  done
  for i in 1 2 3; do
    ports+=("$(free_port)")
    "${SRV[@]}" redis-server --port "${ports[-1]}" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" --cluster-enabled yes \
      --cluster-config-file "$TMP/nodes-${ports[-1]}.conf" >"$TMP/cluster-$i.log" 2>&1 &
    pids+=($!); PIDS+=($!)
    addrs+=("127.0.0.1:${ports[-1]}")
  done
  for p in "${ports[@]}"; do wait_port "$p"; done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  until redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_state:ok'; do sleep 0.1; done
  local seeds pubs tpids
  seeds=$(IFS=,; echo "${addrs[*]}")
  for run in $(seq 1 "$FIXED_RUNS"); do
    pubs=() tpids=()
    for i in 1 2; do
      REDIS_PORT=${ports[0]} start_tokend spring redis TOKEND_REDIS_ADDR="$seeds"
      pubs+=("$PUB"); tpids+=("$TOKEND_PID")
    done
    PUB=$(IFS=,; echo "${pubs[*]}")
    "${GEN[@]}" bin/loadgen -url "$PUB" -admin "$ADM" -label "two tokend, 3-master Cluster" -c "$CONNS" -d "$DURATION" -warmup "$WARMUP" \
      -rate "$rate" -pid "$(IFS=,; echo "${tpids[*]}")" -redis "$seeds" -json | tee -a "$OUT/$RAW.jsonl"
    for p in "${tpids[@]}"; do stop "$p"; done
  done
  bin/loadgen -summarize "$OUT/$RAW.jsonl"
}

fixed() {
  raw_name open-loop
  build
  start_redis
  : >"$OUT/$RAW.jsonl"
  start_floor redis spring; loadgen "floor/redis" spring "$FLOOR_PID"; stop "$FLOOR_PID"
  fixed_rates
  bin/loadgen -summarize "$OUT/$RAW.jsonl"
}

# oauth2: tokend spring on Redis, closed loop: the dialect endpoint,
# /oauth2/token, and /oauth2/token with a DPoP proof per refresh, ES256
# (dpop) and EdDSA (dpop-EdDSA), signed by loadgen before each run, one
# after the other in each of RUNS rounds: bench/results/DATE-oauth2.jsonl
# and its table. With RATE, open loop at RATE requests/s instead
# (DATE-oauth2-open.jsonl): every endpoint at the same rate, so that what
# a request costs in system calls (more per request the fewer arrive
# together) is the same for all, and DPoP's extra CPU per refresh is the
# DPoP work alone; the DPoP rows' CPU is paired with /oauth2/token's.
oauth2() {
  local open=()
  if [ -n "${RATE:-}" ]; then
    raw_name oauth2-open
    open=(-rate "$RATE")
  else
    raw_name oauth2
  fi
  build
  start_redis
  : >"$OUT/$RAW.jsonl"
  for run in $(seq 1 "$RUNS"); do
    log "run $run of $RUNS: /api/auth/refresh, /oauth2/token, /oauth2/token with DPoP (ES256, EdDSA)${RATE:+, at $RATE/s}"
    for endpoint in dialect oauth2 dpop dpop-EdDSA; do
      local alg=ES256
      [ "$endpoint" = dpop-EdDSA ] && alg=EdDSA
      start_tokend spring redis TOKEND_CLIENTS=loadgen
      loadgen "$endpoint/redis" spring "$TOKEND_PID" -endpoint "${endpoint%-EdDSA}" -alg "$alg" "${open[@]}"
      stop "$TOKEND_PID"
    done
  done
  bin/loadgen -summarize "$OUT/$RAW.jsonl" -ratio dpop/redis=oauth2/redis -ratio dpop-EdDSA/redis=oauth2/redis
}

# typical: the headline comparison. In each of RUNS rounds, on the spring
# endpoint: the floor, tokend and the typical stack on memory, then on
# Redis; then /oauth2/token plain and with a DPoP proof, tokend then the
# typical stack, on Redis. Each tokend run is beside its typical run, so the
# ratios are taken round by round.
typical() {
  raw_name typical
  build
  (cd bench/typical && go build -o ../../bin/typical .)
  start_redis
  : >"$OUT/$RAW.jsonl"
  for run in $(seq 1 "$RUNS"); do
    log "round $run of $RUNS ($DURATION each, $CONNS connections): floor, tokend, typical"
    for store in memory redis; do
      local fstore=none
      [ "$store" = redis ] && fstore=redis
      start_floor "$fstore" spring;  loadgen "floor/$fstore" spring "$FLOOR_PID";     stop "$FLOOR_PID"
      start_tokend spring "$store";  loadgen "spring/$store" spring "$TOKEND_PID";   stop "$TOKEND_PID"
      start_typical "$store";        loadgen "typical/$store" spring "$TYPICAL_PID"; stop "$TYPICAL_PID"
    done
    for endpoint in oauth2 dpop; do
      start_tokend spring redis TOKEND_CLIENTS=loadgen
      loadgen "$endpoint/redis" spring "$TOKEND_PID" -endpoint "$endpoint"; stop "$TOKEND_PID"
      start_typical redis
      loadgen "typical-$endpoint/redis" spring "$TYPICAL_PID" -endpoint "$endpoint"; stop "$TYPICAL_PID"
    done
  done
  bin/loadgen -summarize "$OUT/$RAW.jsonl" -ratio spring/memory=typical/memory -ratio spring/redis=typical/redis \
    -ratio oauth2/redis=typical-oauth2/redis -ratio dpop/redis=typical-dpop/redis \
    -ratio typical/memory=floor/none -ratio typical/redis=floor/redis
}

profile() {
  raw_name cpu
  build
  start_redis
  start_tokend spring redis
  "${GEN[@]}" bin/loadgen -url "$PUB" -admin "$ADM" -c "$CONNS" -d "$DURATION" -warmup "$WARMUP" >/dev/null &
  local lg=$!
  sleep 3
  curl -s -o "$OUT/$RAW.prof" "$ADM/debug/pprof/profile?seconds=5"
  wait "$lg" || true
  go tool pprof -top -nodecount=25 bin/tokend "$OUT/$RAW.prof" 2>/dev/null | tee "$OUT/$RAW.txt"
  stop "$TOKEND_PID"
}

k6run() {
  K6=${K6:-$(command -v k6 || echo "$(go env GOPATH)/bin/k6")}
  [ -x "$K6" ] || { log "k6 is missing: make loadtest installs it"; exit 1; }
  build
  start_redis
  # a short grace window, so the thieves of attack.js need not wait 10 s
  for dialect in spring aspnet; do
    start_tokend "$dialect" redis TOKEND_REUSE_GRACE=1s
    for script in refresh attack oauth2; do
      log "k6 $script.js ($dialect) against $PUB"
      DIALECT=$dialect GRACE_MS=1000 PUBLIC="$PUB" PUBLIC_URL="$PUB" ADMIN="$ADM" "${GEN[@]}" "$K6" run --quiet "loadtest/$script.js"
    done
    stop "$TOKEND_PID"
  done
}

case "${1:-}" in
  compare) compare ;;
  k6) k6run ;;
  profile) profile ;;
  fixed) fixed ;;
  cluster) cluster ;;
  oauth2) oauth2 ;;
  typical) typical ;;
  *) echo "usage: $0 compare|fixed|cluster|oauth2|typical|k6|profile" >&2; exit 2 ;;
esac
