// Package bench holds tokend's benchmarks across the stack (`make bench`):
// the whole refresh request through fasthttp, its parts, and the raw crypto
// floor they are read against. Figures live in RESULTS.md.
package bench
