package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// watchdogTick is how often the watchdog looks at running calls; a deadline
// fires at most one tick late.
const watchdogTick = 5 * time.Millisecond

// watchdog enforces call deadlines for every instance of a Runtime with one
// goroutine. Arming a deadline is two atomic stores on the instance, so the
// request path pays no timer, no goroutine and no allocation. The goroutine
// sleeps while no call is running.
type watchdog struct {
	mu      sync.Mutex
	members map[*instance]struct{}
	running atomic.Int64 // calls in progress
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newWatchdog() *watchdog {
	w := &watchdog{
		members: make(map[*instance]struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *watchdog) add(in *instance) {
	w.mu.Lock()
	w.members[in] = struct{}{}
	w.mu.Unlock()
}

func (w *watchdog) remove(in *instance) {
	w.mu.Lock()
	delete(w.members, in)
	w.mu.Unlock()
}

// arm marks in as running until deadline.
func (w *watchdog) arm(in *instance, deadline time.Time) {
	in.cctx.arm(deadline)
	if w.running.Add(1) == 1 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// disarm ends the call's deadline and reports whether it had expired (the
// instance was interrupted and must not be reused).
func (w *watchdog) disarm(in *instance) (expired bool) {
	expired = in.cctx.disarm()
	w.running.Add(-1)
	return expired
}

func (w *watchdog) close() {
	close(w.stop)
	<-w.done
}

func (w *watchdog) run() {
	defer close(w.done)
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	type hit struct {
		in  *instance
		seq uint64
	}
	var expired []hit
	for {
		if w.running.Load() == 0 {
			select {
			case <-w.wake:
			case <-w.stop:
				return
			}
		}
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
		now := time.Now().UnixNano()
		expired = expired[:0]
		w.mu.Lock()
		for in := range w.members {
			if d := in.cctx.deadline.Load(); d != 0 && d <= now {
				expired = append(expired, hit{in, in.cctx.seq.Load()})
			}
		}
		w.mu.Unlock()
		for _, h := range expired {
			h.in.cctx.expire(h.seq, h.in.inst.Interrupt)
		}
	}
}

// callCtx is the context of one call into an instance, reused for every
// call on it. Its deadline is the plugin's timeout (or an earlier one from
// the caller); Done is created only when something asks for it (a backend
// call), and the watchdog closes it when the deadline passes.
type callCtx struct {
	parent   context.Context
	deadline atomic.Int64  // unix nanos; 0 when idle
	seq      atomic.Uint64 // call number, so a late expiry never hits the next call

	mu      sync.Mutex
	done    chan struct{}
	expired bool
	ended   bool // the call returned: Done is closed, Err is Canceled
}

func (c *callCtx) arm(d time.Time) {
	c.mu.Lock()
	c.done = nil
	c.expired = false
	c.ended = false
	c.seq.Add(1)
	c.deadline.Store(d.UnixNano())
	c.mu.Unlock()
}

// disarm ends the call. Its Done channel, if anyone asked for one, is
// closed (like a request context cancelled when the handler returns), so a
// goroutine a backend left waiting on it is released rather than stranded
// on a context that is about to be reused.
func (c *callCtx) disarm() (expired bool) {
	c.mu.Lock()
	c.deadline.Store(0)
	expired = c.expired
	if c.done != nil && !expired {
		close(c.done)
	}
	c.done = closedChan
	c.ended = true
	c.mu.Unlock()
	return expired
}

// expire ends call number seq if it is still running: Done closes and
// interrupt stops the guest. Holding mu orders it against disarm, so an
// interrupt can never reach the instance's next call.
func (c *callCtx) expire(seq uint64, interrupt func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expired || c.seq.Load() != seq || c.deadline.Load() == 0 {
		return
	}
	c.expired = true
	if c.done != nil {
		close(c.done)
	}
	interrupt()
}

func (c *callCtx) Deadline() (time.Time, bool) {
	d := c.deadline.Load()
	if d == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, d), true
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.expired {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expired {
		return context.DeadlineExceeded
	}
	if c.ended {
		return context.Canceled
	}
	if c.parent != nil {
		return c.parent.Err()
	}
	return nil
}

func (c *callCtx) Value(key any) any {
	c.mu.Lock()
	parent := c.parent
	c.mu.Unlock()
	if parent == nil {
		return nil
	}
	return parent.Value(key)
}

// setParent sets the caller's context of the next call (nil when idle).
// It takes mu: goroutines a backend started during an earlier call (such as
// database/sql's Rows watcher) may still call Err or Value.
func (c *callCtx) setParent(p context.Context) {
	c.mu.Lock()
	c.parent = p
	c.mu.Unlock()
}
