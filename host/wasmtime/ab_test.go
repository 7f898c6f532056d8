package wasmtime_test

import (
	"context"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/memcache"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
)

// BenchmarkAB compares two builds of one plugin in one process, immune to
// the machine's fast and slow phases (bench/RESULTS.md, session 9): one
// instance of each, requests alternated in batches of abBatch on one
// locked thread (which build goes first alternates too), thread CPU per
// request measured per batch. It reports the median CPU per request of
// each build and the median and quartiles of the per-batch ratio B/A. Set
// WC_AB_A and WC_AB_B to the two .wasm files (absolute paths: the
// benchmark runs in host/wasmtime) and WC_AB_PATH to the request path
// (default /):
//
//	WC_AB_A=/tmp/old.wasm WC_AB_B=/tmp/new.wasm WC_AB_PATH=/py-hello/ \
//	  make bench-wasmtime WASMTIME_BENCH=BenchmarkAB WASMTIME_BENCHTIME=40x WASMTIME_BENCHCOUNT=1
//
// WC_AB_QUERY sets the request's query string. WC_AB_DATA=1 gives both
// plugins the suite's data on embedded backends: database "bench" (SQLite,
// table world) and an in-memory cache holding every row's entry, namespace
// "bench" (for bench/plugins/pybench's /db, say, with WC_AB_PATH=/db
// WC_AB_QUERY=id=7).
//
// Each b.Loop iteration is one batch of each build. Two copies of the same
// file give medians within 0.98–1.02 on the project's 2-core machines,
// where unpaired runs differ by up to 1.7x.
func BenchmarkAB(b *testing.B) {
	fa, fb := os.Getenv("WC_AB_A"), os.Getenv("WC_AB_B")
	if fa == "" || fb == "" {
		b.Skip("set WC_AB_A and WC_AB_B to two builds of a plugin")
	}
	path := os.Getenv("WC_AB_PATH")
	if path == "" {
		path = "/"
	}
	req := enginetest.HTTPRequest("GET", path, os.Getenv("WC_AB_QUERY"), nil, "Accept", "*/*", "User-Agent", "wcbench")
	data := os.Getenv("WC_AB_DATA") != ""
	var wasm [2][]byte
	for i, f := range []string{fa, fb} {
		var err error
		if wasm[i], err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	}
	eachEngine(b, func(b *testing.B, eng string, enforced bool) {
		var rt *host.Runtime
		if data {
			rt = abDataRuntime(b, eng)
		} else {
			rt = enginetest.NewRuntime(b, eng, enginetest.PluginCacheDir(b), nil)
		}
		var ps [2]*host.Plugin
		for i := range ps {
			spec := host.PluginSpec{Name: [2]string{"a", "b"}[i], Wasm: wasm[i], Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
			spec.Pool.Min, spec.Pool.Max = 1, 1
			spec.Limits.DeadlineEnforced = enforced
			if data {
				spec.Grants.Databases, spec.Grants.CacheNamespace = []string{"bench"}, "bench"
			}
			p, err := rt.Load(context.Background(), spec)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Drain(context.Background()) })
			ps[i] = p
		}
		ctx := context.Background()
		out := make([]byte, 0, 64<<10)
		batch := func(p *host.Plugin) float64 {
			t0, _ := enginetest.ThreadCPU()
			for range abBatch {
				var err error
				if out, err = p.Handle(ctx, req, out); err != nil {
					b.Fatal(err)
				}
			}
			t1, _ := enginetest.ThreadCPU()
			return float64(t1-t0) / abBatch
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var resp abi.Response
		for _, p := range ps { // warm both, and check they answer
			batch(p)
			if abi.DecodeResponse(out, &resp) != nil || resp.Status != 200 {
				b.Fatalf("%s: status %d", p.Name(), resp.Status)
			}
		}
		var a, bb, ratio []float64
		for b.Loop() {
			var x, y float64
			if len(a)%2 == 0 { // alternate which build goes first
				x, y = batch(ps[0]), batch(ps[1])
			} else {
				y, x = batch(ps[1]), batch(ps[0])
			}
			a, bb, ratio = append(a, x), append(bb, y), append(ratio, y/x)
		}
		b.ReportMetric(median(a), "A-cpu-ns/req")
		b.ReportMetric(median(bb), "B-cpu-ns/req")
		slices.Sort(ratio)
		b.ReportMetric(median(ratio), "B/A")
		b.ReportMetric(ratio[len(ratio)/4], "B/A-q1")
		b.ReportMetric(ratio[(3*len(ratio))/4], "B/A-q3")
	})
}

// abDataRuntime returns a runtime whose services are database "bench" (a
// SQLite file with bench/workload's table world) and an in-memory
// cache holding the suite's entry for every row (so /db's reads hit).
func abDataRuntime(b *testing.B, eng string) *host.Runtime {
	ctx := context.Background()
	set, err := sqldb.Open(b.TempDir(), map[string]sqldb.Config{"bench": {Driver: sqldb.DriverSQLite, DSN: "bench.db"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { set.Close() })
	w, _, _ := set.Pools("bench")
	if _, err := w.Exec("CREATE TABLE world (id INTEGER PRIMARY KEY, randomnumber INTEGER NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for id := 1; id <= workload.Rows; id++ {
		if _, err := w.Exec("INSERT INTO world VALUES (?, ?)", id, workload.RandomNumber(id)); err != nil {
			b.Fatal(err)
		}
	}
	kv, err := memcache.New(memcache.Config{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	for id := 1; id <= workload.Rows; id++ {
		// The host's key for namespace "bench" (host/ops_cache.go).
		if err := kv.Set(ctx, "bench:"+workload.WorldKey(id), []byte(workload.WorldValue(id)), 0); err != nil {
			b.Fatal(err)
		}
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{Engine: eng, CacheDir: enginetest.PluginCacheDir(b),
		Services: &host.Services{SQL: set, Cache: kv}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	return rt
}

// abBatch is the number of requests per build between switches.
const abBatch = 500

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
