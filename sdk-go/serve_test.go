package wasmcorn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
)

func TestHandlePanic(t *testing.T) {
	var g guest
	host := installHost(t)
	for _, c := range []struct {
		name  string
		value any
		log   bool
	}{
		{"string", "boom", true},
		{"error", http.ErrHandlerTimeout, true},
		{"abort", http.ErrAbortHandler, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(host.entries())
			resp := roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Partial", "1")
				w.Write([]byte("partial"))
				panic(c.value)
			}), getReq("/p", ""))
			if resp.Status != 500 || string(resp.Body) != "internal server error\n" || len(respHeader(resp, "X-Partial")) != 0 {
				t.Fatalf("got %d %q %v", resp.Status, resp.Body, resp.Headers)
			}
			logs := host.entries()[before:]
			if !c.log {
				if len(logs) != 0 {
					t.Fatalf("ErrAbortHandler logged: %+v", logs)
				}
				return
			}
			if len(logs) != 1 || logs[0].level != abi.LevelError {
				t.Fatalf("logs %+v", logs)
			}
			stack, _ := logs[0].get("stack")
			rid, _ := logs[0].get("request_id")
			path, _ := logs[0].get("path")
			if !strings.Contains(stack.Str(), "TestHandlePanic") || rid.Str() != "rid" || path.Str() != "/p" {
				t.Fatalf("log attrs %+v", logs[0].attrs)
			}
		})
	}
	// The instance keeps serving after a panic.
	resp := roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }), getReq("/", ""))
	if resp.Status != 200 || string(resp.Body) != "ok" {
		t.Fatalf("after panic: %d %q", resp.Status, resp.Body)
	}
}

func TestHandleMalformedAndNoHandler(t *testing.T) {
	host := installHost(t)
	var g guest
	g.alloc(3)
	out := g.handle([]byte{1, 2, 3})
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil || resp.Status != 400 {
		t.Fatalf("malformed request: %v %d", err, resp.Status)
	}
	if logs := host.entries(); len(logs) != 1 || !strings.Contains(logs[0].msg, "malformed request") {
		t.Fatalf("logs %+v", logs)
	}

	prev := served.Swap(nil)
	t.Cleanup(func() { served.Store(prev) })
	out = g.handle(abi.AppendRequest(nil, getReq("/", "")))
	if err := abi.DecodeResponse(out, &resp); err != nil || resp.Status != 500 {
		t.Fatalf("no handler: %v %d", err, resp.Status)
	}
	if logs := host.entries(); len(logs) != 2 || !strings.Contains(logs[1].msg, "call wasmcorn.Serve or ServeFast from an init function") {
		t.Fatalf("logs %+v", logs)
	}
}

func TestServeRegisters(t *testing.T) {
	installHost(t)
	prev := served.Load()
	t.Cleanup(func() { served.Store(prev) })
	Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("registered")) }))
	var g guest
	resp := roundTrip(t, &g, nil, getReq("/", ""))
	if string(resp.Body) != "registered" {
		t.Fatalf("body %q", resp.Body)
	}
	Serve(nil)
	if p := served.Load(); p == nil || p.h != http.Handler(http.DefaultServeMux) {
		t.Fatal("Serve(nil) does not select http.DefaultServeMux")
	}
}

func TestAlloc(t *testing.T) {
	var g guest
	a := g.alloc(10)
	if len(a) != 10 || cap(a) < minInput {
		t.Fatalf("alloc(10): len %d cap %d", len(a), cap(a))
	}
	if b := g.alloc(minInput); &b[0] != &a[0] {
		t.Fatal("a buffer that fits is not reused")
	}
	big := g.alloc(2 * maxKeptBuffer)
	if len(big) != 2*maxKeptBuffer {
		t.Fatalf("big alloc len %d", len(big))
	}
	if c := g.alloc(maxKeptBuffer); &c[0] != &big[0] {
		t.Fatal("a large buffer is not reused for a request of half its size")
	}
	if small := g.alloc(100); cap(small) != minInput {
		t.Fatalf("an oversized buffer is kept for a small request: cap %d", cap(small))
	}
	if g.alloc(-1) != nil {
		t.Fatal("negative size allocated")
	}
	if b := g.alloc(0); b == nil || cap(b) == 0 {
		t.Fatal("alloc(0) must return a usable pointer")
	}
}

func TestInputRegion(t *testing.T) {
	var g guest
	g.alloc(100)
	c := uint64(cap(g.in))
	cases := []struct {
		off, n uint64
		ok     bool
	}{
		{0, 100, true}, {0, c, true}, {10, c - 10, true}, {c, 0, true},
		{0, c + 1, false}, {c + 1, 0, false}, {1, c, false}, {1 << 40, 1, false}, {1, 1<<64 - 1, false},
	}
	for _, tc := range cases {
		b, ok := g.input(tc.off, tc.n)
		if ok != tc.ok || (ok && uint64(len(b)) != tc.n) {
			t.Errorf("input(%d, %d) = len %d, %v; want ok=%v", tc.off, tc.n, len(b), ok, tc.ok)
		}
	}
}

func TestLargeBuffersDropped(t *testing.T) {
	installHost(t)
	var g guest
	big := strings.Repeat("x", 2*maxKeptBuffer)
	resp := roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) }), getReq("/", ""))
	if len(resp.Body) != len(big) {
		t.Fatalf("body %d bytes", len(resp.Body))
	}
	if cap(g.w.body) > maxKeptBuffer {
		t.Fatalf("body buffer of %d bytes kept", cap(g.w.body))
	}
	roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), getReq("/", ""))
	if cap(g.out) > maxKeptBuffer {
		t.Fatalf("response buffer of %d bytes kept", cap(g.out))
	}
}

func TestResponseBufferReused(t *testing.T) {
	installHost(t)
	var g guest
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	roundTrip(t, &g, h, getReq("/", ""))
	first := &g.out[:1][0]
	roundTrip(t, &g, h, getReq("/", ""))
	if &g.out[:1][0] != first {
		t.Fatal("response buffer not reused")
	}
	if n := binary.LittleEndian.Uint32(g.out); n != 200 {
		t.Fatalf("status %d", n)
	}
}

var helloBody = []byte(`{"message":"hello, world"}`)

func helloHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(helloBody)
}

func helloRequest() []byte {
	return abi.AppendRequest(nil, &abi.Request{
		Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("127.0.0.1:8080"),
		Path: []byte("/hello/"), RemoteAddr: []byte("127.0.0.1:40000"), RequestID: []byte("0123456789abcdef"),
		Headers: []abi.Header{
			{Name: []byte("Accept"), Value: []byte("*/*")},
			{Name: []byte("User-Agent"), Value: []byte("wrk")},
			{Name: []byte("X-Request-Id"), Value: []byte("0123456789abcdef")},
		},
	})
}

// maxThinAllocs bounds the allocations of one thin request through the SDK
// and the handler: the request string, the request parts, the header map
// (two), the Request, and the handler's own Header().Set. It guards against
// regressions; it is a count, not a timing.
const maxThinAllocs = 6

func TestThinPathAllocs(t *testing.T) {
	var g guest
	g.handler = http.HandlerFunc(helloHandler)
	msg := helloRequest()
	in := load(&g, msg)
	g.handle(in) // warm the buffers
	n := testing.AllocsPerRun(200, func() { g.handle(in) })
	t.Logf("%.0f allocations per request", n)
	if n > maxThinAllocs {
		t.Fatalf("%.0f allocations per thin request, want at most %d", n, maxThinAllocs)
	}
}

func BenchmarkHandleHello(b *testing.B) {
	var g guest
	g.handler = http.HandlerFunc(helloHandler)
	msg := helloRequest()
	in := load(&g, msg)
	b.ReportAllocs()
	for b.Loop() {
		g.handle(in)
	}
}

// TestRequestContextCancelled: as under net/http, a request's context ends
// when its handler returns: context.AfterFunc callbacks run, goroutines
// waiting on Done wake, Err says Canceled; the next request gets a live one.
func TestRequestContextCancelled(t *testing.T) {
	var g guest
	var kept []context.Context
	fired, woke := make(chan struct{}, 2), make(chan struct{}, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if err := ctx.Err(); err != nil {
			panic("the context is done while the handler runs: " + err.Error())
		}
		kept = append(kept, ctx)
		if len(kept) == 1 {
			context.AfterFunc(ctx, func() { fired <- struct{}{} })
			go func() { <-ctx.Done(); woke <- struct{}{} }()
		}
	})
	for range 2 {
		if resp := roundTrip(t, &g, h, getReq("/", "")); resp.Status != 200 {
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
	}
	if kept[0] == kept[1] {
		t.Fatal("two requests shared one context")
	}
	for i, ctx := range kept {
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("request %d: context error after the handler returned: %v, want Canceled", i, ctx.Err())
		}
	}
	for name, ch := range map[string]chan struct{}{"AfterFunc": fired, "a goroutine waiting on Done": woke} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: never ran", name)
		}
	}
}

// TestRequestContextAfterFunc: contexts derived from r.Context() register
// with it instead of starting a goroutine each (the context package uses
// its AfterFunc method), end with the request, and a stopped AfterFunc
// never runs; one registered after the request ended runs at once.
func TestRequestContextAfterFunc(t *testing.T) {
	var g guest
	var derived, timed context.Context
	var registered int
	stoppedRan := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := r.Context().(*requestContext)
		var cancel context.CancelFunc
		derived, cancel = context.WithCancel(r.Context())
		_ = cancel // cancelled by the request's end, not here
		timed, cancel = context.WithTimeout(r.Context(), time.Hour)
		_ = cancel
		stop := context.AfterFunc(r.Context(), func() { stoppedRan <- struct{}{} })
		registered = len(rc.after)
		if !stop() {
			panic("stop of a pending AfterFunc reported false")
		}
		if stop() {
			panic("a second stop reported true")
		}
		if n := len(rc.after); n != 2 {
			panic(fmt.Sprintf("%d registrations after a stop, want 2", n))
		}
		if derived.Err() != nil || timed.Err() != nil {
			panic("a derived context ended while the handler runs")
		}
	})
	if resp := roundTrip(t, &g, h, getReq("/", "")); resp.Status != 200 {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	if registered != 3 {
		t.Fatalf("%d AfterFunc registrations for WithCancel, WithTimeout and AfterFunc, want 3 (a goroutine each instead?)", registered)
	}
	for name, ctx := range map[string]context.Context{"WithCancel": derived, "WithTimeout": timed} {
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("%s of r.Context(): error %v after the request, want Canceled", name, ctx.Err())
		}
		select {
		case <-ctx.Done():
		default:
			t.Fatalf("%s of r.Context(): Done not closed after the request", name)
		}
	}
	select {
	case <-stoppedRan:
		t.Fatal("a stopped AfterFunc ran")
	default:
	}
	late := make(chan struct{})
	context.AfterFunc(derived, func() { close(late) })
	rcLate := &requestContext{}
	rcLate.cancel()
	if rcLate.AfterFunc(func() { close(stoppedRan) })() {
		t.Fatal("stop after the request ended reported true")
	}
	for _, ch := range []chan struct{}{late, stoppedRan} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("an AfterFunc registered after the end never ran")
		}
	}
}
