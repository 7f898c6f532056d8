package wasmrewrite

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func TestWatchdogFiresAfterDeadline(t *testing.T) {
	w := NewWatchdog(time.Millisecond)
	defer w.Close()
	fired := make(chan struct{}, 1)
	g := w.NewGuard(func() { fired <- struct{}{} })
	defer g.Release()

	g.Arm(time.Now().Add(-time.Second)) // already expired
	<-fired
	if !g.Disarm() {
		t.Fatal("Disarm after the interrupt ran returned false")
	}
	if g.Disarm() {
		t.Fatal("second Disarm returned true")
	}
}

func TestWatchdogDisarmedDoesNotFire(t *testing.T) {
	w := NewWatchdog(time.Millisecond)
	var fired atomic.Int32
	g := w.NewGuard(func() { fired.Add(1) })
	g.Arm(time.Now().Add(time.Hour))
	if g.Disarm() {
		t.Fatal("Disarm before the deadline returned true")
	}
	g.Arm(time.Now().Add(-time.Second))
	g.Release() // released while armed: must not fire afterwards
	before := fired.Load()
	w.Close() // the scan loop has stopped: no interrupt can run after this
	if after := fired.Load(); after != before || after > 1 {
		t.Fatalf("interrupt ran after Release: %d -> %d", before, after)
	}
	w.Close() // idempotent
}

// TestWatchdogHammer arms and disarms many guards with deadlines around
// now, from many goroutines: every interrupt that ran must be reported by
// exactly one Disarm, and none may run while a guard is idle.
func TestWatchdogHammer(t *testing.T) {
	w := NewWatchdog(100 * time.Microsecond)
	const guards, rounds = 16, 300
	var wg sync.WaitGroup
	var reported, ran atomic.Int64
	for i := 0; i < guards; i++ {
		var armed atomic.Bool
		g := w.NewGuard(func() {
			if !armed.Load() {
				t.Error("interrupt ran while the guard was not armed")
			}
			ran.Add(1)
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.Release()
			for r := 0; r < rounds; r++ {
				armed.Store(true)
				g.Arm(time.Now().Add(time.Duration(rand.IntN(400)-100) * time.Microsecond))
				if rand.IntN(2) == 0 {
					time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				}
				fired := g.Disarm()
				armed.Store(false)
				if fired {
					reported.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	w.Close()
	if ran.Load() != reported.Load() {
		t.Fatalf("interrupts ran %d, reported by Disarm %d", ran.Load(), reported.Load())
	}
	if ran.Load() == 0 {
		t.Fatal("no deadline ever fired: the hammer did not exercise the race")
	}
}

// TestWatchdogStopsSpinningGuest: the deadline path a host uses, end to end.
func TestWatchdogStopsSpinningGuest(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t)
	if _, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(context.Context) {}).Export("started").
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := r.InstantiateWithConfig(ctx, instrument(t, readWasm(t, "spin"), Options{}),
		wazero.NewModuleConfig().WithName("guest"))
	if err != nil {
		t.Fatal(err)
	}
	interrupt := mod.ExportedGlobal(InterruptExport).(api.MutableGlobal)
	w := NewWatchdog(0)
	defer w.Close()
	g := w.NewGuard(func() { interrupt.Set(1) })
	defer g.Release()

	for i := 0; i < 2; i++ { // the instance is reusable after a reset
		g.Arm(time.Now().Add(20 * time.Millisecond))
		_, err = mod.ExportedFunction("spin").Call(ctx)
		if !g.Disarm() {
			t.Fatal("Disarm did not report the interrupt")
		}
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("err = %v, want the unreachable trap", err)
		}
		interrupt.Set(0)
	}
}
