package wasmrewrite

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchdogResolution is the scan period of a Watchdog created with
// resolution 0: a call is interrupted at most this long (plus TickEvery loop
// iterations) after its deadline.
const DefaultWatchdogResolution = 10 * time.Millisecond

// Watchdog interrupts guest calls that overrun their deadline. One goroutine
// scans all registered guards every resolution; arming and disarming a guard
// costs a couple of atomic operations, with no timer, goroutine or
// allocation per call (compare RuntimeConfig.WithCloseOnContextDone, which
// spawns a goroutine per call, or a time.Timer per instance, whose
// Reset/Stop pair costs about 100 ns).
//
// A Watchdog is safe for concurrent use. Close stops it.
type Watchdog struct {
	base   time.Time // monotonic origin of guard deadlines
	mu     sync.Mutex
	guards map[*Guard]struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// Guard states, stored in Guard.state; a positive value is an armed
// deadline in nanoseconds since Watchdog.base.
const (
	guardIdle   = 0
	guardFiring = -1 // the watchdog is running interrupt
	guardFired  = -2 // interrupt has returned
)

// Guard watches the calls of one instance. It is armed before a call and
// disarmed after it, by the goroutine making the call; Arm and Disarm must
// not be called concurrently with each other.
type Guard struct {
	w         *Watchdog
	state     atomic.Int64
	interrupt func()
}

// NewWatchdog starts a watchdog that scans every resolution
// (DefaultWatchdogResolution if 0).
func NewWatchdog(resolution time.Duration) *Watchdog {
	if resolution <= 0 {
		resolution = DefaultWatchdogResolution
	}
	w := &Watchdog{
		base:   time.Now(),
		guards: make(map[*Guard]struct{}),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.run(resolution)
	return w
}

// NewGuard registers a guard whose interrupt function is called, on the
// watchdog's goroutine, when an armed deadline passes. For an instrumented
// module interrupt is typically
//
//	func() { mod.ExportedGlobal(InterruptExport).(api.MutableGlobal).Set(1) }
//
// interrupt must not block. Release unregisters the guard.
func (w *Watchdog) NewGuard(interrupt func()) *Guard {
	g := &Guard{w: w, interrupt: interrupt}
	w.mu.Lock()
	w.guards[g] = struct{}{}
	w.mu.Unlock()
	return g
}

// Close stops the watchdog and waits for its goroutine; guards no longer
// fire. Close is idempotent.
func (w *Watchdog) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *Watchdog) run(resolution time.Duration) {
	defer close(w.done)
	t := time.NewTicker(resolution)
	defer t.Stop()
	var batch []*Guard
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		now := int64(time.Since(w.base))
		batch = batch[:0]
		w.mu.Lock()
		for g := range w.guards {
			if v := g.state.Load(); v > 0 && v <= now {
				batch = append(batch, g)
			}
		}
		w.mu.Unlock()
		for _, g := range batch {
			g.fire(now)
		}
	}
}

// fire runs the guard's interrupt if it is still armed with an expired
// deadline.
func (g *Guard) fire(now int64) {
	v := g.state.Load()
	if v <= 0 || v > now || !g.state.CompareAndSwap(v, guardFiring) {
		return
	}
	g.interrupt()
	g.state.Store(guardFired)
}

// Arm sets the deadline of the coming call. The guard must be idle (new,
// or disarmed).
func (g *Guard) Arm(deadline time.Time) {
	ns := int64(deadline.Sub(g.w.base))
	if ns < 1 {
		ns = 1
	}
	g.state.Store(ns)
}

// Disarm cancels the deadline after the call returned. It reports whether
// the interrupt function ran; when it returns true, the interrupt has
// completed (Disarm waits for a running one), so the caller may reset the
// instance's interrupt global to 0 and reuse the instance, or discard it.
func (g *Guard) Disarm() (fired bool) {
	for {
		switch v := g.state.Load(); v {
		case guardFiring:
			runtime.Gosched()
		case guardFired:
			g.state.Store(guardIdle)
			return true
		default:
			if g.state.CompareAndSwap(v, guardIdle) {
				return false
			}
		}
	}
}

// Release disarms (waiting for a running interrupt) and unregisters the
// guard; it never fires afterwards. Call it when the instance is closed.
func (g *Guard) Release() {
	g.Disarm()
	g.w.mu.Lock()
	delete(g.w.guards, g)
	g.w.mu.Unlock()
}
