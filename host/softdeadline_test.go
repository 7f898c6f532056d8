package host_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

// TestSoftDeadline: a guest with an interrupt table (testdata/softspin.wat)
// is asked to stop at its deadline, answers by itself and keeps its
// instance; one that ignores the request is stopped hard softGrace later and
// replaced; other calls keep being served meanwhile.
func TestSoftDeadline(t *testing.T) {
	wasm, err := os.ReadFile("testdata/softspin.wasm")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	pool := host.DefaultPoolConfig()
	pool.Min, pool.Max, pool.MaxWait = 1, 2, 5*time.Second
	limits := host.DefaultLimits()
	limits.Timeout = 50 * time.Millisecond
	p, err := rt.Load(context.Background(), host.PluginSpec{Name: "softspin", Wasm: wasm, Pool: pool, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method string) (int, error) {
		req := abi.AppendRequest(nil, &abi.Request{Method: []byte(method), Path: []byte("/")})
		out, err := p.Handle(context.Background(), req, nil)
		if err != nil {
			return 0, err
		}
		var r abi.Response
		if err := abi.DecodeResponse(out, &r); err != nil {
			t.Fatalf("response: %v", err)
		}
		return int(r.Status), nil
	}
	if s, err := call("GET"); err != nil || s != 201 {
		t.Fatalf("first call: %d %v", s, err)
	}
	start := time.Now()
	if s, err := call("SPIN"); err != nil || s != 504 {
		t.Fatalf("soft stop: %d %v, want the guest's own 504", s, err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("soft stop took %v (the hard stop's grace?)", d)
	}
	// Same instance (its third call), and the stale stop does not leak.
	if s, err := call("GET"); err != nil || s != 203 {
		t.Fatalf("after a soft stop: %d %v, want 203 (instance reused)", s, err)
	}
	if st := p.Stats(); st.Timeouts != 1 || st.Live != 1 {
		t.Fatalf("stats after a soft stop: %+v", st)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := call("IGNORE")
		errc <- err
	}()
	// While one call ignores its stop, another instance serves.
	time.Sleep(100 * time.Millisecond)
	if s, err := call("GET"); err != nil || s != 201 {
		t.Fatalf("during the grace: %d %v", s, err)
	}
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("ignored stop: %v, want ErrInterrupted", err)
	}
	if st := p.Stats(); st.Timeouts != 2 {
		t.Fatalf("stats after a hard stop: %+v", st)
	}
}
