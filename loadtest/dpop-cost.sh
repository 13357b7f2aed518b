#!/usr/bin/env bash
# What a DPoP refresh costs against one verification of its proof, both
# measured in the same run: tokend on a private Redis (free ports), open
# loop at RATE/s (5000) on /oauth2/token plain, with ES256 proofs and with
# EdDSA proofs, RUNS rounds (3). Each run's tokend and Redis CPU per
# refresh come from loadgen; a CPU profile of tokend taken in the middle
# of each DPoP run gives what the signature check itself (verifySignature)
# cost per refresh in that run. Prints, per round, (DPoP - plain) of
# tokend + Redis as a multiple of that verification, then the medians.
# Raw: bench/results/DATE-dpop-cost.jsonl (loadgen's lines and one
# {"label":…,"verify_us":…} line per profile). Usage:
#   RUNS=3 RATE=5000 loadtest/dpop-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RATE=${RATE:-5000}
OUT=${OUT:-bench/results}
RAW="$OUT/$(date -u +%F)-dpop-cost.jsonl"
mkdir -p bin "$OUT"
go build -o bin/tokend ./cmd/tokend
go build -o bin/loadgen ./loadtest/loadgen
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
R=$(free); PP=$(free); AP=$(free)
dir=$(mktemp -d)
redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile '' --loglevel warning >/dev/null &
RPID=$!
TPID=
trap 'kill $RPID $TPID 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 0.5
: >"$RAW"
for run in $(seq "$RUNS"); do
  for ep in oauth2 dpop-ES256 dpop-EdDSA; do
    endpoint=${ep%-*} alg=${ep#*-}
    [ "$ep" = oauth2 ] && alg=ES256
    TOKEND_ADDR=127.0.0.1:$PP TOKEND_ADMIN_ADDR=127.0.0.1:$AP TOKEND_PUBLIC_URL=http://127.0.0.1:$PP \
      TOKEND_STORE=redis TOKEND_REDIS_ADDR=127.0.0.1:$R TOKEND_CLIENTS=loadgen TOKEND_LOG_LEVEL=error \
      TOKEND_HMAC_SECRET=dpop-cost-secret-0123456789abcdef-0123 bin/tokend &
    TPID=$!
    sleep 0.7
    bin/loadgen -url "http://127.0.0.1:$PP" -admin "http://127.0.0.1:$AP" -endpoint "$endpoint" -alg "$alg" \
      -rate "$RATE" -c 64 -d 10s -warmup 2s -pid "$TPID" -redis "127.0.0.1:$R" -label "$ep" -json >>"$RAW" &
    LPID=$!
    if [ "$ep" != oauth2 ]; then
      sleep 3 # the warm-up and a second of load: the profile covers 8 of the 10 measured seconds
      curl -sf -o "$dir/cpu.pprof" "http://127.0.0.1:$AP/debug/pprof/profile?seconds=8"
      # seconds verifySignature was on CPU, over the requests of those 8 s
      secs=$(go tool pprof -top -cum -nodecount=1000 bin/tokend "$dir/cpu.pprof" 2>/dev/null |
        awk '$NF ~ /dpop\.verifySignature$/ {v=$4; sub(/ms$/,"e-3",v); sub(/s$/,"",v); print v+0; exit}')
      python3 -c "import json,sys; print(json.dumps({'label': '$ep', 'run': $run, 'verify_us': float('${secs:-0}') / (8 * $RATE) * 1e6}))" >>"$RAW"
    fi
    wait "$LPID"
    kill "$TPID"; wait "$TPID" 2>/dev/null || true
    TPID=
  done
done
python3 - "$RAW" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in rows if 'server_cpu_us' in r]
prof = [r for r in rows if 'verify_us' in r]
n = len(runs) // 3
print("| round | proof | tokend + Redis CPU µs, plain | with DPoP | DPoP − plain | one verification in the run | ratio |")
print("| --- | --- | --- | --- | --- | --- | --- |")
ratios = {'dpop-ES256': [], 'dpop-EdDSA': []}
for i in range(n):
    plain = runs[3*i]; p = plain['server_cpu_us'] + plain['redis_cpu_us']
    for j, d in enumerate(runs[3*i+1:3*i+3]):
        v = prof[2*i+j]['verify_us']
        c = d['server_cpu_us'] + d['redis_cpu_us']
        ratios[d['label']].append((c - p) / v)
        print(f"| {i+1} | {d['label'][5:]} | {p:.1f} | {c:.1f} | {c-p:.1f} | {v:.1f} | {(c-p)/v:.2f}× |")
for k, v in ratios.items():
    print(f"{k}: median {statistics.median(v):.2f}× one verification (range {min(v):.2f}–{max(v):.2f})")
PY
