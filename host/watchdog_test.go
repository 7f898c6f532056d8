package host

import (
	"context"
	"errors"
	"testing"
	"time"
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
