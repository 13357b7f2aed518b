//go:build !unix

package dpop_test

import "time"

// processCPU is unknown here: benchmarks report no cpu-ns/op.
func processCPU() time.Duration { return 0 }
