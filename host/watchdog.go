package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmcorn/wasmcorn/host/engine"
)

// watchdogTick is how often the watchdog looks at running calls; a deadline
// fires at most one tick late.
const watchdogTick = 5 * time.Millisecond

// softGrace is how long a guest that was asked to stop by itself (a soft
// deadline, ABI.md "Soft deadlines") has before the hard stop. A variable
// so tests can shorten it.
var softGrace = time.Second

// softStopper is implemented by engine instances whose guest can stop a call
// by itself: SoftInterrupt performs the guest's interrupt stores and reports
// false when the guest has none (then the call is stopped hard at once).
type softStopper interface{ SoftInterrupt() bool }

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

// arm marks in as running until deadline; in.nextCallCtx was called for
// this call.
func (w *watchdog) arm(in *instance, deadline time.Time) {
	in.cctx.Load().arm(deadline)
	if w.running.Add(1) == 1 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// disarm ends the call's deadline and reports whether it had expired and
// whether the instance was stopped hard (it must then not be reused; after
// a soft stop alone it may be).
func (w *watchdog) disarm(in *instance) (expired, killed bool) {
	expired, killed = in.cctx.Load().disarm()
	w.running.Add(-1)
	return expired, killed
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
		c   *callCtx
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
			c := in.cctx.Load()
			if c == nil {
				continue // no call yet
			}
			if d := c.deadline.Load(); d != 0 && d <= now {
				expired = append(expired, hit{in, c, c.seq.Load()})
			}
		}
		w.mu.Unlock()
		for _, h := range expired {
			h.c.expire(h.seq, now, h.in.inst)
		}
	}
}

// nextCallCtx returns the context of in's next call: the last call's,
// reused (no allocation), unless that one's Done was handed out. Then a
// goroutine may still hold it and wake up late (context.WithCancel's
// propagation goroutine, database/sql's Rows watcher): it must find that
// call's Err (Canceled or DeadlineExceeded) and not the next call's nil,
// or the context package panics "missing cancel error" and the server
// dies. So such a call's context is left to them and the call gets a new
// one. Only the goroutine that makes calls on in calls this.
func (in *instance) nextCallCtx() *callCtx {
	c := in.cctx.Load()
	if c == nil || c.handedOut() {
		c = new(callCtx)
		in.cctx.Store(c)
	}
	return c
}

// callCtx is the context of one call into an instance, reused for the
// next call on it unless Done was asked for (see nextCallCtx). Its
// deadline is the plugin's timeout (or an earlier one from the caller);
// Done is created only when something asks for it (a backend call), and
// the watchdog closes it when the deadline passes.
type callCtx struct {
	parent   context.Context
	deadline atomic.Int64  // unix nanos; 0 when idle
	seq      atomic.Uint64 // call number, so a late expiry never hits the next call

	mu      sync.Mutex
	done    chan struct{}
	expired bool
	hardAt  int64 // unix nanos of the hard stop after a soft one; 0 if none
	killed  bool  // the guest was stopped hard (Interrupt)
	ended   bool  // the call returned: Done is closed, Err is Canceled
	watched bool  // Done was called: this context is never reused
}

// handedOut reports whether Done was called on c.
func (c *callCtx) handedOut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watched
}

func (c *callCtx) arm(d time.Time) {
	c.mu.Lock()
	c.done = nil
	c.expired = false
	c.hardAt = 0
	c.killed = false
	c.ended = false
	c.seq.Add(1)
	c.deadline.Store(d.UnixNano())
	c.mu.Unlock()
}

// disarm ends the call. Its Done channel, if anyone asked for one, is
// closed (like a request context cancelled when the handler returns), so a
// goroutine a backend left waiting on it is released rather than stranded
// on a context that is about to be reused.
func (c *callCtx) disarm() (expired, killed bool) {
	c.mu.Lock()
	c.deadline.Store(0)
	expired, killed = c.expired, c.killed
	if c.done != nil && !expired {
		close(c.done)
	}
	c.done = closedChan
	c.ended = true
	c.mu.Unlock()
	return expired, killed
}

// expire ends call number seq if it is still running. At the deadline Done
// closes and the guest is asked to stop by itself when it can (a soft stop:
// its interrupt stores); otherwise, or softGrace later if it is still
// running, it is stopped hard (Interrupt). Holding mu orders this against
// disarm, so an interrupt can never reach the instance's next call.
func (c *callCtx) expire(seq uint64, now int64, inst engine.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed || c.seq.Load() != seq || c.deadline.Load() == 0 {
		return
	}
	if !c.expired {
		c.expired = true
		if c.done != nil {
			close(c.done)
		}
		if s, ok := inst.(softStopper); ok && s.SoftInterrupt() {
			c.hardAt = now + int64(softGrace)
			return
		}
	} else if now < c.hardAt {
		return
	}
	c.killed = true
	inst.Interrupt()
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
	c.watched = true
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
