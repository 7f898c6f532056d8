package wasmtime_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/wasmtime"
)

func burnWasm(t testing.TB) []byte {
	w, err := os.ReadFile("testdata/burn.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func burnRequest(iterations uint32) []byte {
	return binary.LittleEndian.AppendUint32(nil, iterations)
}

func loadBurn(t testing.TB, rt *host.Runtime, enforced bool) *host.Plugin {
	t.Helper()
	spec := host.PluginSpec{Name: "burn", Wasm: burnWasm(t), Pool: host.PoolConfig{Min: 1, Max: 1, MaxWait: time.Minute},
		Limits: host.DefaultLimits()}
	spec.Limits.DeadlineEnforced = enforced
	p, err := rt.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Drain(context.Background()) })
	return p
}

// TestGCWhileTrustedGuestRuns: even without deadlines (no epoch checks in
// the compiled code), a wasmtime guest runs inside a cgo call, so a
// stop-the-world GC proceeds while it computes. (A wazero guest with
// deadline_enforced = false blocks GC until it returns.) The assertion is
// on order: GC returns while the guest still runs.
func TestGCWhileTrustedGuestRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a guest for seconds")
	}
	rt := enginetest.NewRuntime(t, wasmtime.Name, "", nil)
	p := loadBurn(t, rt, false)
	if m := p.DeadlineMode(); m != "off" {
		t.Fatalf("deadline mode %q, want off", m)
	}
	errc := make(chan error, 1)
	// About 3e9 iterations: seconds of guest time on any machine this runs on.
	go func() { _, err := p.Handle(context.Background(), burnRequest(3_000_000_000), nil); errc <- err }()
	enginetest.WaitFor(t, "guest running", func() bool { return p.Stats().Busy == 1 })
	time.Sleep(10 * time.Millisecond)
	runtime.GC()
	select {
	case err := <-errc:
		t.Fatalf("the guest finished before GC returned (%v): GC waited for it, or it ran too fast", err)
	default:
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGCWhileGuestRuns measures what a running guest does to Go's
// garbage collector: each iteration starts a guest computing for about
// 100 ms, calls runtime.GC() while it runs, and records how long
// runtime.GC() took and the longest stop-the-world pause
// (/gc/pauses:seconds, bucket upper bound). "idle" is the same without a
// guest.
func BenchmarkGCWhileGuestRuns(b *testing.B) {
	b.Run("idle", func(b *testing.B) { benchGC(b, nil) })
	for _, enforced := range []bool{true, false} {
		for _, eng := range engines {
			b.Run(fmt.Sprintf("%s/deadline_enforced=%v", eng, enforced), func(b *testing.B) {
				rt := enginetest.NewRuntime(b, eng, "", nil)
				benchGC(b, loadBurn(b, rt, enforced))
			})
		}
	}
}

func benchGC(b *testing.B, p *host.Plugin) {
	var req []byte
	if p != nil {
		// Calibrate: iterations for about 100 ms of guest time.
		start := time.Now()
		if _, err := p.Handle(context.Background(), burnRequest(10_000_000), nil); err != nil {
			b.Fatal(err)
		}
		per := time.Since(start) / 10_000_000
		if per <= 0 {
			per = time.Nanosecond
		}
		req = burnRequest(uint32(min(int64(100*time.Millisecond/per), 4_000_000_000)))
	}
	sample := []metrics.Sample{{Name: "/gc/pauses:seconds"}}
	var maxPause, wall time.Duration
	for b.Loop() {
		errc := make(chan error, 1)
		if p != nil {
			go func() { _, err := p.Handle(context.Background(), req, nil); errc <- err }()
			for p.Stats().Busy != 1 {
				time.Sleep(100 * time.Microsecond)
			}
			time.Sleep(5 * time.Millisecond)
		}
		metrics.Read(sample)
		before := copyHist(sample[0].Value.Float64Histogram())
		t0 := time.Now()
		runtime.GC()
		wall = max(wall, time.Since(t0))
		metrics.Read(sample)
		maxPause = max(maxPause, maxNewPause(before, sample[0].Value.Float64Histogram()))
		if p != nil {
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(maxPause.Microseconds()), "max-pause-µs")
	b.ReportMetric(float64(wall.Microseconds()), "max-GC-call-µs")
}

func copyHist(h *metrics.Float64Histogram) []uint64 {
	return append([]uint64(nil), h.Counts...)
}

// maxNewPause is the upper bound of the highest bucket that gained a pause.
func maxNewPause(before []uint64, after *metrics.Float64Histogram) time.Duration {
	for i := len(after.Counts) - 1; i >= 0; i-- {
		if i < len(before) && after.Counts[i] > before[i] {
			upper := after.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = after.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}
