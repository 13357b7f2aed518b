//go:build race

package bench

// The race detector makes sync.Pool drop items at random, so allocation
// counts mean nothing under it; `make test` runs the allocation test without.
const raceEnabled = true
