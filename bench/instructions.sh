#!/usr/bin/env bash
# bench/instructions.sh — instructions per operation of benchmarks, counted
# by valgrind's callgrind: repeatable to a few instructions, where ns/op on a
# shared VM swings by ±15%. Each benchmark runs twice, N1 and N2 times; the
# difference of the totals over N2-N1 leaves out set-up and start-up.
#
#   bench/instructions.sh                      tokend's and the floor's refresh handlers
#   bench/instructions.sh ./bench 'Dialect/spring/decode$'
#
# GOGC=off: no collector (its share under callgrind's one thread is nothing
# like a server's); GOMAXPROCS=1 and no async preemption, whose signals
# callgrind does not survive. valgrind has no SHA-NI: hashing runs Go's AVX2
# code and counts more than it costs on a CPU with SHA extensions.
# Settings: N1 (2000), N2 (12000). Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-2000}
N2=${N2:-12000}
command -v valgrind >/dev/null || { echo "valgrind is missing (Debian: apt-get install valgrind)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

count() { # count PKG REGEX: prints instructions per op
  local pkg=$1 re=$2 bin n out
  bin=$TMP/$(echo "$pkg" | tr -c 'a-z0-9\n' _).test
  go test -c -o "$bin" "$pkg"
  for n in "$N1" "$N2"; do
    out=$(GOGC=off GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$n" \
      "$bin" -test.run '^$' -test.bench "$re" -test.benchtime "${n}x" -test.count 1 2>&1)
    grep -oP 'Collected : \K\d+' <<<"$out" >"$TMP/ir.$n"
  done
  echo "$pkg $re: $(( ($(cat "$TMP/ir.$N2") - $(cat "$TMP/ir.$N1")) / (N2 - N1) )) instructions/op"
}

if [ $# -ge 2 ]; then
  count "$1" "$2"
else
  count ./bench 'RefreshHandler/spring$'
  count ./bench 'RefreshHandler/aspnet$'
  count ./bench/floor 'RefreshHandler$'
fi
