package measure

import (
	"slices"
	"testing"
	"time"
)

// FastMean is the mean of the fastest 90% of d (sorted in place): a
// machine's other work lands in the slowest tail, whichever operation it
// delays, while a mean keeps what a median would drop of an operation
// whose own time varies (an Ed25519 verification's, with the signature).
func FastMean(d []time.Duration) float64 {
	slices.Sort(d)
	d = d[:max(1, len(d)*9/10)]
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return float64(sum) / float64(len(d))
}

// ReportCPU reports the process's CPU time per operation since start
// (ProcessCPU) as cpu-ns/op: the figure to compare on a machine shared
// with other work.
func ReportCPU(b *testing.B, start time.Duration) {
	if end := ProcessCPU(); start > 0 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}
