package enginetest

import (
	"runtime"
	"testing"
)

// Loop runs body b.N times (b.Loop) and reports, besides ns/op, the CPU
// time of the calling thread per op ("cpu-ns/op"): on a machine shared with
// other work it is a steadier figure than wall time, and it is what a
// synchronous call into a guest costs. The goroutine is locked to its
// thread for the measurement.
func Loop(b *testing.B, body func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	t0, ok := ThreadCPU()
	n := 0
	for b.Loop() {
		body()
		n++
	}
	if t1, ok1 := ThreadCPU(); ok && ok1 && n > 0 {
		b.ReportMetric(float64(t1-t0)/float64(n), "cpu-ns/op")
	}
}
