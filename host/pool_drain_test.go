package host

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host/engine"
)

// gatedModule's instantiations signal entered, then wait for release; it
// counts closed instances.
type gatedModule struct {
	entered, release chan struct{}
	closed           atomic.Int32
}

func (m *gatedModule) Instantiate(context.Context, engine.HostCaller) (engine.Instance, error) {
	m.entered <- struct{}{}
	<-m.release
	return gatedInstance{m}, nil
}
func (m *gatedModule) HasExport(string) bool       { return true }
func (m *gatedModule) Close(context.Context) error { return nil }

type gatedInstance struct{ m *gatedModule }

func (gatedInstance) Call(context.Context, string, []byte, uint32) ([]byte, error) { return nil, nil }
func (gatedInstance) MemoryBytes() uint64                                          { return 0 }
func (gatedInstance) Interrupt()                                                   {}
func (i gatedInstance) Close(context.Context) error                                { i.m.closed.Add(1); return nil }

// TestDrainClosesLateInstances: an instance a replacement goroutine
// finishes after a drain gave up waiting for it is closed, not left in the
// drained pool.
func TestDrainClosesLateInstances(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := NewRuntime(RuntimeOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	m := &gatedModule{entered: make(chan struct{}, 1), release: make(chan struct{})}
	pl := newPool(&Plugin{name: "p", rt: rt, log: log}, m, PoolConfig{Min: 1, Max: 2, MaxWait: time.Second}, DefaultLimits(), rt.wd, log)
	pl.bg.Add(1)
	go func() { // a replacement being made, as discard starts one
		defer pl.bg.Done()
		pl.fill(context.Background())
	}()
	<-m.entered // the replacement is instantiating
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := pl.drain(ctx); err == nil {
		t.Fatal("drain returned nil while an instantiation was still running")
	}
	close(m.release)
	deadline := time.Now().Add(10 * time.Second)
	for m.closed.Load() != 1 || pl.live.Load() != 0 || len(pl.idle) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the late instantiation: %d closed, live %d, idle %d; want 1, 0, 0", m.closed.Load(), pl.live.Load(), len(pl.idle))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
