//go:build unix

package measure

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time the process has used, user and system, all
// its threads (the collector's included): what a benchmark costs, which
// its wall time on a machine shared with other work is not.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
