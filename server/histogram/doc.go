// Package histogram is a latency histogram for Prometheus whose Observe
// does two atomic adds on a cache line the calling goroutine shares with
// few others. client_golang's histogram keeps one set of counts that every
// core writes (four atomic read-modify-writes per observation, one of them
// a compare-and-swap loop on the sum): two observations per refresh,
// request and store latency, were a visible share of a refresh once both
// cores served requests. Here each histogram keeps its counts in stripes,
// a goroutine adds to the stripe its stack address picks, and a scrape adds
// the stripes up. The exposition is the same: a Prometheus histogram with
// cumulative buckets, count and sum in seconds.
//
// Part of tokend's HTTP layer, not a library: no compatibility promise.
// The public Go API is package github.com/tokend/tokend/tokens.
package histogram
