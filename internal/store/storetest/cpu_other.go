//go:build !unix

package storetest

import "time"

// processCPU is not measured here: cpu-µs/msg is left out.
func processCPU() time.Duration { return 0 }
