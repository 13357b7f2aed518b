//go:build unix

package dpop_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used, user and system, all
// its threads (the collector's included): what a benchmark costs, which
// its wall time on a machine shared with other work is not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
