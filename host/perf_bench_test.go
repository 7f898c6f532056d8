//go:build linux

package host_test

// Benchmarks of the Go guest path (issue 3 numbers): a request through the
// real SDK on the hello and jsonapi plugins, instantiating one instance,
// and loading a plugin with a warm compilation cache. Run them with, e.g.,
//
//	go test -run '^$' -bench 'Guest|Instantiate|Load' -benchtime 2s -count 3 ./host/
//
// cpu-ns/op (thread CPU per op) is steadier than ns/op on a shared machine.

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/internal/wazero"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

var (
	benchHelloReq   = enginetest.HTTPRequest("GET", "/hello/", "", nil, "Accept", "*/*", "User-Agent", "wcbench")
	benchJSONAPIReq = enginetest.HTTPRequest("GET", "/jsonapi/", "", nil, "Accept", "*/*", "User-Agent", "wcbench")
)

// benchGuestPlugin measures requests to a repository plugin through
// Plugin.Handle, checking the first response is a 200.
func benchGuestPlugin(b *testing.B, name string, req []byte) {
	if testing.Short() {
		b.Skip("builds Wasm plugins")
	}
	for _, enforced := range []bool{true, false} {
		b.Run(map[bool]string{true: "enforced", false: "trusted"}[enforced], func(b *testing.B) {
			rt := enginetest.NewRuntime(b, host.DefaultEngine, enginetest.PluginCacheDir(b), nil)
			p, err := enginetest.LoadPlugin(b, rt, name, func(s *host.PluginSpec) {
				s.Limits.DeadlineEnforced = enforced
				if v := os.Getenv("WC_GUEST_GOGC"); v != "" {
					s.Env = map[string]string{"GOGC": v}
				}
			})
			if err != nil {
				b.Fatal(err)
			}
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
		})
	}
}

// BenchmarkGuestHello: plugins/hello, the thin JSON handler (bench "json").
func BenchmarkGuestHello(b *testing.B) { benchGuestPlugin(b, "hello", benchHelloReq) }

// BenchmarkGuestHelloFast: plugins/hellofast, the same handler on the SDK's
// ServeFast (bench "json-fast").
func BenchmarkGuestHelloFast(b *testing.B) { benchGuestPlugin(b, "hellofast", benchHelloReq) }

// BenchmarkGuestJSONAPI: plugins/jsonapi /jsonapi/, 10 structs encoded
// with encoding/json (bench "jsonstruct").
func BenchmarkGuestJSONAPI(b *testing.B) { benchGuestPlugin(b, "jsonapi", benchJSONAPIReq) }

// nopCaller answers every host call with an empty reply.
type nopCaller struct{}

func (nopCaller) HostCall(_ context.Context, _ uint32, _ []byte, reply []byte) []byte { return reply }

// compileHello compiles the hello plugin on a new engine of the default
// kind, with the shared warm compilation cache; both are closed when b ends.
func compileHello(b testing.TB) engine.Module {
	ctx := context.Background()
	e, err := engine.New(host.DefaultEngine, engine.Config{CacheDir: enginetest.PluginCacheDir(b) + "/" + host.DefaultEngine})
	if err != nil {
		b.Fatal(err)
	}
	m, err := e.Compile(ctx, "hello", testplugins.Bytes(b, "hello"), engine.ModuleConfig{MaxMemoryPages: 4096, Interruptible: true})
	if err != nil {
		e.Close(ctx)
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(ctx); e.Close(ctx) })
	return m
}

// BenchmarkInstantiate: one ready instance of the hello plugin (instantiate,
// _initialize, ABI check) and its Close, at the engine level, warm cache.
// "fresh" gives every instance a new memory mapping (the pool of reusable
// memory is emptied after each Close, as for the first instances of a
// load); "reused" lets the engine reset and reuse the closed instance's
// memory, as when a pool replaces a recycled instance or a reload follows
// a drained version. Both populate the pages the module's start touches up
// front; the "-faulting" variants do not, every page faulting in as the
// guest touches it.
func BenchmarkInstantiate(b *testing.B) {
	if testing.Short() {
		b.Skip("builds Wasm plugins")
	}
	ctx := context.Background()
	m := compileHello(b)
	for _, c := range []struct {
		name            string
		reuse, prefault bool
	}{{"fresh", false, true}, {"fresh-faulting", false, false}, {"reused", true, true}, {"reused-faulting", true, false}} {
		b.Run(c.name, func(b *testing.B) {
			defer wazero.SetPrefault(wazero.SetPrefault(c.prefault))
			wazero.ReleasePooledMemory()
			enginetest.Loop(b, func() {
				in, err := m.Instantiate(ctx, nopCaller{})
				if err != nil {
					b.Fatal(err)
				}
				in.Close(ctx)
				if !c.reuse {
					wazero.ReleasePooledMemory()
				}
			})
		})
	}
}

// BenchmarkPoolStart: the first 12 instances of a plugin's pool, made in
// parallel by Load on a new Runtime (the instantiate phase of
// Plugin.LoadPhases, reported as start-ms/op), with and without populating
// the pages a module's start touches. The plugin is hello, or the .wasm
// file named by WC_POOL_PLUGIN (a Python plugin, say). The first instance
// of each load learns the start profile, so the other 11 can use it.
func BenchmarkPoolStart(b *testing.B) {
	if testing.Short() {
		b.Skip("builds Wasm plugins")
	}
	var wasm []byte
	if f := os.Getenv("WC_POOL_PLUGIN"); f != "" {
		var err error
		if wasm, err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	} else {
		wasm = testplugins.Bytes(b, "hello")
	}
	cache := b.TempDir()
	pool := host.DefaultPoolConfig()
	pool.Min = 12
	for _, prefault := range []bool{true, false} {
		name := "populated"
		if !prefault {
			name = "faulting"
		}
		b.Run(name, func(b *testing.B) {
			defer wazero.SetPrefault(wazero.SetPrefault(prefault))
			var total time.Duration
			n := 0
			for b.Loop() {
				_, phases := loadRestarted(b, cache, wasm, pool)
				total += phases.Instantiate
				n++
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "start-ms/op")
		})
	}
}

// processCPU returns the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoad: Runtime.Load of the hello plugin with a warm on-disk
// compilation cache and the default pool (Min 2 instances), each time on a
// new Runtime (as after a restart: nothing compiled in memory). load-ms/op
// is Plugin.LoadDuration, compile-ms/op and instantiate-ms/op its phases
// (Plugin.LoadPhases); ns/op also counts the Runtime's creation, and so
// does cpu-ms/op, the process's CPU time (all threads, GC included).
func BenchmarkLoad(b *testing.B) {
	if testing.Short() {
		b.Skip("builds Wasm plugins")
	}
	wasm := testplugins.Bytes(b, "hello")
	cache := enginetest.PluginCacheDir(b)
	loadRestarted(b, cache, wasm, host.DefaultPoolConfig()) // warm the on-disk caches
	var total, compile, instantiate time.Duration
	n := 0
	cpu0 := processCPU(b)
	for b.Loop() {
		load, phases := loadRestarted(b, cache, wasm, host.DefaultPoolConfig())
		total += load
		compile += phases.Compile
		instantiate += phases.Instantiate
		n++
	}
	b.ReportMetric(total.Seconds()*1000/float64(n), "load-ms/op")
	b.ReportMetric(compile.Seconds()*1000/float64(n), "compile-ms/op")
	b.ReportMetric(instantiate.Seconds()*1000/float64(n), "instantiate-ms/op")
	b.ReportMetric((processCPU(b)-cpu0).Seconds()*1000/float64(n), "cpu-ms/op")
}

// loadRestarted loads wasm with pool on a new Runtime over the compilation
// cache in cacheDir, as after a restart (no pooled memory to reuse), and
// returns the load's duration and phases; plugin and Runtime are closed.
func loadRestarted(b *testing.B, cacheDir string, wasm []byte, pool host.PoolConfig) (time.Duration, host.LoadPhases) {
	ctx := context.Background()
	wazero.ReleasePooledMemory()
	rt, err := host.NewRuntime(host.RuntimeOptions{Engine: host.DefaultEngine, CacheDir: cacheDir})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, host.PluginSpec{Name: "p", Wasm: wasm, Pool: pool, Limits: host.DefaultLimits()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Drain(ctx)
	return p.LoadDuration(), p.LoadPhases()
}

// BenchmarkInstanceMemory reports what one more ready instance of the hello
// plugin costs after serving one request: growth of the process's RSS and
// PSS (smaps_rollup; pages shared between instances, such as the data
// image, count once in PSS) over 8 instances, divided by 8. Each round
// starts with the engine's pool of reusable memory empty, so the instances
// get fresh mappings (reused ones would hide their pages from the growth).
func BenchmarkInstanceMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("builds Wasm plugins")
	}
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		b.Skip("needs /proc/self/smaps_rollup")
	}
	ctx := context.Background()
	m := compileHello(b)
	const n = 8
	var rss, pss float64
	runs := 0
	for b.Loop() {
		wazero.ReleasePooledMemory()
		runtime.GC()
		rss0, pss0 := smapsRollup(b)
		ins := make([]engine.Instance, n)
		for i := range ins {
			in, err := m.Instantiate(ctx, nopCaller{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := in.Call(ctx, abi.ExportHandle, benchHelloReq, 1<<20); err != nil {
				b.Fatal(err)
			}
			ins[i] = in
		}
		runtime.GC()
		rss1, pss1 := smapsRollup(b)
		rss += float64(rss1-rss0) / n
		pss += float64(pss1-pss0) / n
		runs++
		for _, in := range ins {
			in.Close(ctx)
		}
	}
	b.ReportMetric(rss/float64(runs)/(1<<20), "RSS-MiB/instance")
	b.ReportMetric(pss/float64(runs)/(1<<20), "PSS-MiB/instance")
}

// smapsRollup returns the process's Rss and Pss in bytes.
func smapsRollup(b *testing.B) (rss, pss int64) {
	st, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = v << 10
		case "Pss:":
			pss = v << 10
		}
	}
	return rss, pss
}
