package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host/engine"
)

// TestCallContextContract: once a call ends, its context reports Done with
// a non-nil Err, as the context package requires (derived contexts panic
// otherwise).
func TestCallContextContract(t *testing.T) {
	var c callCtx
	c.arm(time.Now().Add(time.Hour))
	done := c.Done()
	if c.Err() != nil {
		t.Fatal("Err before the end of the call")
	}
	child, cancel := context.WithCancel(&c)
	defer cancel()
	c.disarm()
	<-done
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err after the call = %v, want Canceled", c.Err())
	}
	<-child.Done()
	if child.Err() == nil {
		t.Fatal("derived context not cancelled")
	}
	// The next call starts fresh.
	c.arm(time.Now().Add(time.Hour))
	if c.Err() != nil {
		t.Fatalf("Err at the start of the next call = %v", c.Err())
	}
}

// TestCallContextLateObserver: a goroutine that saw a call's Done closed
// may run only after the instance's next call has started (a loaded
// machine); it must still find that call's non-nil Err. The server died of
// this in the bench suite ("context: internal error: missing cancel
// error" from context.WithCancel's propagation goroutine) when the
// context was reset for the next call.
func TestCallContextLateObserver(t *testing.T) {
	in := &instance{}
	c1 := in.nextCallCtx()
	c1.setParent(context.Background())
	c1.arm(time.Now().Add(time.Hour))
	done := c1.Done()
	c1.disarm()
	c1.setParent(nil)

	c2 := in.nextCallCtx()
	c2.setParent(context.Background())
	c2.arm(time.Now().Add(time.Hour))
	if c2 == c1 {
		t.Fatal("a context whose Done was handed out is reused for the next call")
	}
	<-done
	if !errors.Is(c1.Err(), context.Canceled) {
		t.Fatalf("late observer of the ended call: Err = %v, want Canceled", c1.Err())
	}
	if c2.Err() != nil {
		t.Fatalf("next call: Err = %v", c2.Err())
	}
	c2.disarm()
	c2.setParent(nil)
	if c3 := in.nextCallCtx(); c3 != c2 {
		t.Error("a context nobody watched is not reused (an allocation per call)")
	}

	// The crash itself: derived contexts whose propagation goroutine
	// runs after the next call began. Before the fix this panicked within
	// a few thousand calls.
	for range 20000 {
		c := in.nextCallCtx()
		c.setParent(context.Background())
		c.arm(time.Now().Add(time.Hour))
		_, cancel := context.WithCancel(c)
		c.disarm()
		c.setParent(nil)
		defer cancel()
	}
}

// stopRecorder is an engine instance that records how it was stopped.
type stopRecorder struct {
	engine.Instance
	soft        bool // has an interrupt table
	softs, hard int
}

func (s *stopRecorder) SoftInterrupt() bool {
	if s.soft {
		s.softs++
	}
	return s.soft
}
func (s *stopRecorder) Interrupt() { s.hard++ }

// TestExpirePhases: a guest with an interrupt table is asked to stop by
// itself at the deadline and stopped hard softGrace later if still running;
// a guest without one is stopped hard at once; a late expiry never reaches
// the next call.
func TestExpirePhases(t *testing.T) {
	now := time.Now().UnixNano()
	var c callCtx
	in := &stopRecorder{soft: true}
	c.arm(time.Now())
	seq := c.seq.Load()
	done := c.Done()
	c.expire(seq, now, in)
	<-done // the deadline cancels host calls at the soft stop already
	c.expire(seq, now+int64(softGrace)/2, in)
	if in.softs != 1 || in.hard != 0 {
		t.Fatalf("within the grace: %d soft, %d hard stops", in.softs, in.hard)
	}
	c.expire(seq, now+int64(softGrace), in)
	c.expire(seq, now+2*int64(softGrace), in)
	if in.softs != 1 || in.hard != 1 {
		t.Fatalf("after the grace: %d soft, %d hard stops", in.softs, in.hard)
	}
	if expired, killed := c.disarm(); !expired || !killed {
		t.Fatalf("disarm = %v, %v; want expired and killed", expired, killed)
	}

	// The guest stops by itself: expired, not killed (the instance is kept).
	c.arm(time.Now())
	in2 := &stopRecorder{soft: true}
	c.expire(c.seq.Load(), now, in2)
	if expired, killed := c.disarm(); !expired || killed {
		t.Fatalf("soft stop: disarm = %v, %v; want expired, not killed", expired, killed)
	}
	// A late expiry of that call does nothing to the next one.
	c.arm(time.Now())
	c.expire(c.seq.Load()-1, now+2*int64(softGrace), in2)
	if in2.softs != 1 || in2.hard != 0 {
		t.Fatalf("late expiry reached the next call: %d soft, %d hard", in2.softs, in2.hard)
	}
	c.disarm()

	// No interrupt table: stopped hard at the deadline.
	c.arm(time.Now())
	in3 := &stopRecorder{}
	c.expire(c.seq.Load(), now, in3)
	if expired, killed := c.disarm(); !expired || !killed || in3.hard != 1 {
		t.Fatalf("no table: disarm = %v, %v, %d hard stops", expired, killed, in3.hard)
	}
}
