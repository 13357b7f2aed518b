//go:build !unix

package measure

import "time"

// ProcessCPU is unknown here: benchmarks report no cpu-ns/op.
func ProcessCPU() time.Duration { return 0 }
