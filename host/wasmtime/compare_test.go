package wasmtime_test

// Side-by-side benchmarks: every scenario on wazero and wasmtime in the
// same run (and natively, where the same work can be done in Go directly).
// Run them with `make bench-wasmtime` (see wasmtime.mk), which interleaves
// repetitions so that a noisy machine affects both engines alike.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/wasmtime"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
	"github.com/wasmcorn/wasmcorn/sdk-python/bundlefs"
)

var engines = []string{"wazero", wasmtime.Name}

// eachEngine runs bench for every engine, with deadlines enforced and off.
func eachEngine(b *testing.B, bench func(b *testing.B, eng string, enforced bool)) {
	for _, enforced := range []bool{true, false} {
		for _, eng := range engines {
			b.Run(fmt.Sprintf("%s/deadline_enforced=%v", eng, enforced), func(b *testing.B) { bench(b, eng, enforced) })
		}
	}
}

// BenchmarkHandleEcho: the thinnest handler (the echo WAT guest, no host
// call) through Plugin.Handle: pool, engine call, copies.
func BenchmarkHandleEcho(b *testing.B) {
	eachEngine(b, enginetest.BenchHandleEcho)
}

// BenchmarkHostCall: one request making one host call (config.get).
func BenchmarkHostCall(b *testing.B) {
	eachEngine(b, enginetest.BenchHostCall)
}

// benchPlugin measures requests to a repository plugin through
// Plugin.Handle; every response must have status 200.
func benchPlugin(b *testing.B, eng string, enforced bool, name string, wasm []byte, req []byte) {
	if testing.Short() {
		b.Skip("builds Wasm plugins")
	}
	rt := enginetest.NewRuntime(b, eng, enginetest.PluginCacheDir(b), nil)
	spec := host.PluginSpec{Name: name, Wasm: wasm, Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
	spec.Pool.Min = 1
	spec.Limits.DeadlineEnforced = enforced
	p, err := rt.Load(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Drain(context.Background())
	ctx := context.Background()
	out := make([]byte, 0, 64<<10)
	var resp abi.Response
	if out, err = p.Handle(ctx, req, out); err != nil || abi.DecodeResponse(out, &resp) != nil || resp.Status != 200 {
		b.Fatalf("%s: %v, status %d", name, err, resp.Status)
	}
	enginetest.Loop(b, func() {
		if out, err = p.Handle(ctx, req, out); err != nil {
			b.Fatal(err)
		}
	})
}

var (
	helloReq   = enginetest.HTTPRequest("GET", "/hello/", "", nil, "Accept", "*/*", "User-Agent", "wrk")
	jsonapiReq = enginetest.HTTPRequest("GET", "/jsonapi/items", "n=100", nil, "Accept", "*/*")
	pyHelloReq = enginetest.HTTPRequest("GET", "/py-hello/", "", nil, "Accept", "*/*", "User-Agent", "wrk")
)

// BenchmarkHello: the Go hello plugin (a fixed JSON document): the thin
// handler with the real SDK's request/response conversion.
func BenchmarkHello(b *testing.B) {
	b.Run("native", func(b *testing.B) { benchNative(b, http.HandlerFunc(nativeHello), helloReq) })
	eachEngine(b, func(b *testing.B, eng string, enforced bool) {
		benchPlugin(b, eng, enforced, "hello", testplugins.Bytes(b, "hello"), helloReq)
	})
}

// BenchmarkJSONAPI: plugins/jsonapi /jsonapi/items?n=100, encoding/json of
// 100 structs per request: guest compute dominates.
func BenchmarkJSONAPI(b *testing.B) {
	b.Run("native", func(b *testing.B) { benchNative(b, http.HandlerFunc(nativeItems), jsonapiReq) })
	eachEngine(b, func(b *testing.B, eng string, enforced bool) {
		benchPlugin(b, eng, enforced, "jsonapi", testplugins.Bytes(b, "jsonapi"), jsonapiReq)
	})
}

// BenchmarkPyHello: the Python py-hello plugin (CPython in the guest), when
// built (make plugins).
func BenchmarkPyHello(b *testing.B) {
	wasm := enginetest.PythonPlugin(b, "py-hello")
	eachEngine(b, func(b *testing.B, eng string, enforced bool) {
		benchPlugin(b, eng, enforced, "py-hello", wasm, pyHelloReq)
	})
}

// BenchmarkInstantiate: creating one ready instance (instantiate,
// _initialize, ABI check) and closing it, at the engine level.
func BenchmarkInstantiate(b *testing.B) {
	type mod struct {
		name string
		wasm func(b *testing.B) []byte
	}
	mods := []mod{
		{"echo-wat", func(b *testing.B) []byte { return enginetest.Guest(b, "echo") }},
		{"hello-go", func(b *testing.B) []byte { return testplugins.Bytes(b, "hello") }},
		{"py-hello", func(b *testing.B) []byte { return enginetest.PythonPlugin(b, "py-hello") }},
	}
	for _, m := range mods {
		for _, eng := range engines {
			b.Run(m.name+"/"+eng, func(b *testing.B) {
				mod := compile(b, eng, m.name, m.wasm(b))
				ctx := context.Background()
				enginetest.Loop(b, func() {
					in, err := mod.Instantiate(ctx, nopCaller{})
					if err != nil {
						b.Fatal(err)
					}
					in.Close(ctx)
				})
			})
		}
	}
}

// compile compiles wasm on a fresh engine using the shared plugin cache,
// mounting its files section as the host does; the engine and module are
// closed when b ends.
func compile(b *testing.B, eng, name string, wasm []byte) engine.Module {
	ctx := context.Background()
	code, section, err := bundlefs.Split(wasm)
	if err != nil {
		b.Fatal(err)
	}
	cfg := engine.ModuleConfig{MaxMemoryPages: 4096, Interruptible: true}
	if section != nil {
		files, err := bundlefs.New(section)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Files = files
	}
	e, err := engine.New(eng, engine.Config{CacheDir: enginetest.PluginCacheDir(b) + "/" + eng})
	if err != nil {
		b.Fatal(err)
	}
	m, err := e.Compile(ctx, name, code, cfg)
	if err != nil {
		e.Close(ctx)
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(ctx); e.Close(ctx) })
	return m
}

// BenchmarkMemoryPerInstance reports the resident memory one more ready
// instance costs (RSS growth over 8 instances that each served one
// request, divided by 8), and the Go heap part of it.
func BenchmarkMemoryPerInstance(b *testing.B) {
	type mod struct {
		name string
		wasm func(b *testing.B) []byte
		req  []byte
	}
	mods := []mod{
		{"hello-go", func(b *testing.B) []byte { return testplugins.Bytes(b, "hello") }, helloReq},
		{"py-hello", func(b *testing.B) []byte { return enginetest.PythonPlugin(b, "py-hello") }, pyHelloReq},
	}
	const n = 8
	for _, m := range mods {
		for _, eng := range engines {
			b.Run(m.name+"/"+eng, func(b *testing.B) {
				mod := compile(b, eng, m.name, m.wasm(b))
				ctx := context.Background()
				var rss, heap float64
				runs := 0
				for b.Loop() {
					runtime.GC()
					rss0, heap0 := memNow(b)
					ins := make([]engine.Instance, n)
					for i := range ins {
						in, err := mod.Instantiate(ctx, nopCaller{})
						if err != nil {
							b.Fatal(err)
						}
						if _, err := in.Call(ctx, abi.ExportHandle, m.req, 1<<20); err != nil {
							b.Fatal(err)
						}
						ins[i] = in
					}
					runtime.GC()
					rss1, heap1 := memNow(b)
					rss += float64(rss1-rss0) / n
					heap += float64(heap1-heap0) / n
					runs++
					for _, in := range ins {
						in.Close(ctx)
					}
				}
				b.ReportMetric(rss/float64(runs)/(1<<20), "RSS-MiB/instance")
				b.ReportMetric(heap/float64(runs)/(1<<20), "GoHeap-MiB/instance")
			})
		}
	}
}

// memNow returns the process's resident set and the Go heap in use.
func memNow(b *testing.B) (rss, heap int64) {
	st, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skip("needs /proc/self/statm")
	}
	f := strings.Fields(string(st))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return pages * int64(os.Getpagesize()), int64(ms.HeapInuse)
}

// benchNative runs h in-process on the decoded request and encodes its
// response: the work a plugin does, without Wasm.
func benchNative(b *testing.B, h http.Handler, req []byte) {
	var r abi.Request
	out := make([]byte, 0, 64<<10)
	enginetest.Loop(b, func() {
		if err := abi.DecodeRequest(req, &r); err != nil {
			b.Fatal(err)
		}
		u := string(r.Path)
		if len(r.RawQuery) > 0 {
			u += "?" + string(r.RawQuery)
		}
		hr := httptest.NewRequest(string(r.Method), u, bytes.NewReader(r.Body))
		for _, hd := range r.Headers {
			hr.Header.Add(string(hd.Name), string(hd.Value))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, hr)
		resp := abi.Response{Status: uint32(w.Code), Body: w.Body.Bytes()}
		for k, vs := range w.Header() {
			for _, v := range vs {
				resp.Headers = append(resp.Headers, abi.Header{Name: []byte(k), Value: []byte(v)})
			}
		}
		out = abi.AppendResponse(out[:0], &resp)
	})
}

func nativeHello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"message":"hello, world"}`))
}

// nativeItems is plugins/jsonapi's /jsonapi/items handler, natively: the
// same document the bench suite's native target serves (bench/workload,
// which the suite's smoke test checks against the plugin's).
func nativeItems(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil {
		n = 10
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(workload.ItemsN(n))
}

// BenchmarkCompile: compiling a plugin without the cache (what the first
// load after a deploy costs). Slow: run with -benchtime 1x.
func BenchmarkCompile(b *testing.B) {
	mods := []struct {
		name string
		wasm func(b *testing.B) []byte
	}{
		{"hello-go", func(b *testing.B) []byte { return testplugins.Bytes(b, "hello") }},
		{"py-hello", func(b *testing.B) []byte { return enginetest.PythonPlugin(b, "py-hello") }},
	}
	for _, m := range mods {
		for _, eng := range engines {
			b.Run(m.name+"/"+eng, func(b *testing.B) {
				wasm := m.wasm(b)
				ctx := context.Background()
				for b.Loop() {
					e, err := engine.New(eng, engine.Config{})
					if err != nil {
						b.Fatal(err)
					}
					code, _, err := bundlefs.Split(wasm)
					if err != nil {
						b.Fatal(err)
					}
					mod, err := e.Compile(ctx, m.name, code, engine.ModuleConfig{Interruptible: true})
					if err != nil {
						b.Fatal(err)
					}
					mod.Close(ctx)
					e.Close(ctx)
				}
			})
		}
	}
}
