//go:build !linux

package enginetest

import "time"

// ThreadCPU returns the CPU time consumed by the calling OS thread, or
// false where that clock is unavailable (here).
func ThreadCPU() (time.Duration, bool) { return 0, false }
