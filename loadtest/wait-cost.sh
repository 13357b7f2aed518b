#!/usr/bin/env bash
# The cost of TOKEND_REDIS_WAIT_REPLICAS: a private primary and one replica
# (free ports), tokend with WAIT 0 then WAIT 1, loadgen -c 64, RUNS times
# interleaved. Usage: RUNS=3 loadtest/wait-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
mkdir -p bin
go build -o bin/tokend ./cmd/tokend
go build -o bin/loadgen ./loadtest/loadgen
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(free); R=$(free); PP=$(free); AP=$(free)
dir=$(mktemp -d) # the replica writes the RDB it receives
common=(--dir "$dir" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --logfile '' --loglevel warning --repl-diskless-sync-delay 0)
redis-server --port "$P" "${common[@]}" >/dev/null & PPID_=$!
redis-server --port "$R" --replicaof 127.0.0.1 "$P" "${common[@]}" >/dev/null & RPID=$!
trap 'kill $PPID_ $RPID 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 1
for run in $(seq "$RUNS"); do
  for w in 0 1; do
    TOKEND_ADDR=127.0.0.1:$PP TOKEND_ADMIN_ADDR=127.0.0.1:$AP TOKEND_STORE=redis TOKEND_REDIS_ADDR=127.0.0.1:$P \
      TOKEND_HMAC_SECRET=wait-cost-secret-0123456789abcdef-012 TOKEND_REDIS_WAIT_REPLICAS=$w TOKEND_LOG_LEVEL=error bin/tokend & TPID=$!
    sleep 0.7
    bin/loadgen -url "http://127.0.0.1:$PP" -admin "http://127.0.0.1:$AP" -c 64 -d 8s -warmup 2s -label "run $run wait=$w" | tail -1
    kill "$TPID"; wait "$TPID" 2>/dev/null || true
  done
done
