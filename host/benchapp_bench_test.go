//go:build linux

package host_test

// BenchmarkBenchappDB measures the bench suite's data scenario in process:
// bench/plugins/benchapp's /db (one MariaDB row by primary key through the
// guest database/sql driver + one cache GET on Redis) through
// Plugin.Handle, against the same work done natively on the same pools
// (the "native" sub-benchmark, as bench/native does it; "native-deadline"
// under a per-request deadline, as the host runs it), on throwaway
// MariaDB and Redis servers. It reports process CPU per request and the
// MariaDB statements per request (Com_* counters), so a change that adds
// round trips (re-prepares, transactions, session resets) shows up.
//
// The plugin is not built here (internal/pluginbuild only knows plugins/):
// build it and pass its path, e.g.
//
//	cd bench/plugins/benchapp && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o /tmp/benchapp.wasm .
//	WC_BENCHAPP=/tmp/benchapp.wasm go test -run '^$' -bench BenchappDB -benchtime 2s ./host/
//
// WC_BENCHAPP_PATHS=db,cached,... runs other paths of the plugin instead of
// "db" (each as GET /PATH?id=N, answered with row N; "json" with any 200);
// WC_TRUSTED=1 turns deadline enforcement off; WC_PAR sets the goroutines
// per CPU (default 8); WC_MAX the pool size (default
// host.DefaultPoolConfig's); WC_GUEST_ENV=K=V,... sets the guest's
// environment (e.g. GOGC=400); WC_CACHE=memory uses the in-memory cache
// instead of Redis (the suite's cached and cached-fast scenarios). The
// Python variant, bench/plugins/pybench (built with
// sdk-python/tools/wasmcorn_py.py), serves /db and /json the same way.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/memcache"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/rediskv"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

func BenchmarkBenchappDB(b *testing.B) {
	path := os.Getenv("WC_BENCHAPP")
	if path == "" || testing.Short() {
		b.Skip("set WC_BENCHAPP to a built bench/plugins/benchapp .wasm")
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	m := testsvc.StartMariaDB(b)
	r := testsvc.StartRedis(b)
	m.Exec("CREATE DATABASE bench")
	db := m.DB("bench")
	if _, err := db.Exec("CREATE TABLE world (id INT PRIMARY KEY, randomnumber INT NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= 1000; i++ {
		if _, err := db.Exec("INSERT INTO world VALUES (?, ?)", i, i*7); err != nil {
			b.Fatal(err)
		}
	}
	set, err := sqldb.Open("", map[string]sqldb.Config{"bench": {Driver: sqldb.DriverMySQL, DSN: m.DSN("bench")}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { set.Close() })
	var kv host.Cache
	if os.Getenv("WC_CACHE") == "memory" {
		kv, err = memcache.New(memcache.Config{MaxBytes: 64 << 20})
	} else {
		kv, err = rediskv.New(rediskv.Config{Conn: redisconn.Conn{Addrs: []string{r.Addr()}}})
	}
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt, err := host.NewRuntime(host.RuntimeOptions{Engine: host.DefaultEngine, CacheDir: enginetest.PluginCacheDir(b),
		Services: &host.Services{Cache: kv, SQL: set}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	spec := host.PluginSpec{Name: "benchapp", Wasm: wasm, Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
	if v, _ := strconv.Atoi(os.Getenv("WC_MAX")); v > 0 {
		spec.Pool.Max, spec.Pool.MaxWait = v, time.Minute
	}
	spec.Pool.Min = spec.Pool.Max // all instances made before the timer starts
	spec.Limits.DeadlineEnforced = os.Getenv("WC_TRUSTED") == ""
	if v := os.Getenv("WC_GUEST_ENV"); v != "" {
		spec.Env = map[string]string{}
		for _, kv := range strings.Split(v, ",") {
			k, v, _ := strings.Cut(kv, "=")
			spec.Env[k] = v
		}
	}
	spec.Grants.CacheNamespace = "bench"
	spec.Grants.Databases = []string{"bench"}
	p, err := rt.Load(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Drain(ctx) })
	par, _ := strconv.Atoi(os.Getenv("WC_PAR"))
	if par <= 0 {
		par = 8
	}
	paths := []string{"db"}
	if v := os.Getenv("WC_BENCHAPP_PATHS"); v != "" {
		paths = strings.Split(v, ",")
	}
	counters := []string{"Com_stmt_prepare", "Com_stmt_execute", "Com_stmt_close", "Com_stmt_reset",
		"Com_select", "Com_begin", "Com_rollback", "Com_set_option", "Connections"}
	status := func() []int64 {
		v := make([]int64, len(counters))
		for i, c := range counters {
			v[i] = m.GlobalStatus(c)
		}
		return v
	}
	_, read, _ := set.Pools("bench")
	st, err := read.Prepare("SELECT id, randomnumber FROM world WHERE id = ?")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	run := func(b *testing.B, one func(id int, out []byte) ([]byte, error)) {
		var n atomic.Int64
		b.SetParallelism(par)
		before := status()
		cpu0, flt0 := processCPU(b), minorFaults()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			out := make([]byte, 0, 64<<10)
			var err error
			for pb.Next() {
				if out, err = one(int(n.Add(1)%1000+1), out); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		cpu, flt := processCPU(b)-cpu0, minorFaults()-flt0
		after := status()
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "proc-cpu-ns/op")
		b.ReportMetric(float64(flt)/float64(b.N), "minflt/op")
		for i, c := range counters {
			b.ReportMetric(float64(after[i]-before[i])/float64(b.N), c+"/op")
		}
	}
	for _, path := range paths {
		b.Run(path, func(b *testing.B) {
			run(b, func(id int, out []byte) ([]byte, error) {
				req := enginetest.HTTPRequest("GET", "/"+path, "id="+strconv.Itoa(id), nil, "Accept", "*/*")
				out, err := p.Handle(ctx, req, out)
				if err != nil {
					return out, err
				}
				var resp abi.Response
				if err := abi.DecodeResponse(out, &resp); err != nil {
					return out, err
				}
				if resp.Status != 200 || (path != "json" && !strings.Contains(string(resp.Body), `"id":`+strconv.Itoa(id))) {
					b.Fatalf("GET /%s?id=%d: status %d, body %q", path, id, resp.Status, resp.Body)
				}
				return out, nil
			})
		})
	}
	// native does the plugin's work directly; native-deadline does it under
	// a per-request cancellable context, as the host's calls run (so that
	// a deadline can cancel a query): database/sql and the MySQL driver
	// then watch the context, which costs the native path too.
	native := func(ctx context.Context, id int) error {
		var got, rn int
		if err := st.QueryRowContext(ctx, id).Scan(&got, &rn); err != nil {
			return err
		}
		if got != id {
			return fmt.Errorf("row %d: got id %d", id, got)
		}
		_, _, err := kv.Get(ctx, "bench:world:"+strconv.Itoa(id))
		return err
	}
	b.Run("native", func(b *testing.B) {
		run(b, func(id int, out []byte) ([]byte, error) { return out, native(ctx, id) })
	})
	b.Run("native-deadline", func(b *testing.B) {
		run(b, func(id int, out []byte) ([]byte, error) {
			ctx, cancel := context.WithTimeout(ctx, spec.Limits.Timeout)
			defer cancel()
			return out, native(ctx, id)
		})
	})
}

// minorFaults is the number of minor page faults the process has taken.
func minorFaults() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Minflt
}
