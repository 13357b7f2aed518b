#!/usr/bin/env bash
# Overload drill: tokend on a private redis-server (free port), the
# closed-loop generator at 64 connections (saturation) and at 2000, for each
# TOKEND_MAX_INFLIGHT given (default: 512 0). 503s are retried by the
# client after 20 ms with the same token; the figures are of the 200s.
# Usage: loadtest/overload.sh [max-inflight ...]   (make overload)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/tokend ./cmd/tokend
go build -o bin/loadgen ./loadtest/loadgen
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free); PP=$(free); AP=$(free)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --logfile '' --loglevel warning >/dev/null & RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
sleep 0.5
for mi in "${@:-512 0}"; do
  for m in $mi; do
    TOKEND_ADDR=127.0.0.1:$PP TOKEND_ADMIN_ADDR=127.0.0.1:$AP TOKEND_STORE=redis TOKEND_REDIS_ADDR=127.0.0.1:$RP \
      TOKEND_HMAC_SECRET=overload-secret-0123456789abcdef-0123 TOKEND_MAX_INFLIGHT=$m TOKEND_LOG_LEVEL=error bin/tokend & TPID=$!
    sleep 0.7
    for c in 64 2000; do
      bin/loadgen -url "http://127.0.0.1:$PP" -admin "http://127.0.0.1:$AP" -c "$c" -d 10s -warmup 2s -label "max-inflight=$m" | tail -1
    done
    kill "$TPID"; wait "$TPID" 2>/dev/null || true
  done
done
