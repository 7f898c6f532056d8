package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// Reload measurements, run by hand (numbers for bench/RESULTS.md, not
// assertions):
//
//	go test ./server -run '^$' -bench 'Reload' -benchtime 1x
//
// They serve the Go hello plugin with the watcher on, from a warm
// compilation cache (every variant is loaded once before measuring).

type benchEnv struct {
	dir  string
	url  string
	srv  *Server
	base []byte
}

func startBenchEnv(b *testing.B, debounce time.Duration) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	base := testplugins.Bytes(b, "hello")
	if err := os.WriteFile(filepath.Join(dir, "hello.wasm"), base, 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.Plugins.Dir = dir
	cfg.Server.DebugHeaders = true
	cfg.AccessLog.Enabled = false
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt := e2eRuntime(b, logger)
	set, err := LoadDir(context.Background(), cfg, rt, LoadOptions{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Config: cfg, Logger: logger, OnShutdown: []func(context.Context) error{rt.Close}})
	if err != nil {
		b.Fatal(err)
	}
	s.Install(set)
	if err := s.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	watched := make(chan error, 1)
	go func() {
		watched <- Watch(ctx, WatchOptions{Dir: dir, Debounce: debounce, Logger: logger,
			Reload: func(ctx context.Context) error { return s.ReloadDir(ctx, cfg, rt, LoadOptions{Logger: logger}) }})
	}()
	waitServing(b, s)
	b.Cleanup(func() {
		cancel()
		<-served
		<-watched
	})
	time.Sleep(100 * time.Millisecond)
	return &benchEnv{dir: dir, url: "http://" + s.Addr().String(), srv: s, base: base}
}

// servedVersion is the X-Wasmcorn-Plugin header of GET /hello.
func (e *benchEnv) servedVersion(b *testing.B) string {
	res := get(b, e.url+"/hello")
	if res.status != 200 {
		b.Fatalf("GET /hello: %d %s", res.status, res.body)
	}
	return res.header.Get("X-Wasmcorn-Plugin")
}

// reloadTo writes module and returns how long it took until a request
// was answered by it (bounded at 60s).
func (e *benchEnv) reloadTo(b *testing.B, module []byte) time.Duration {
	d, _ := e.reloadReport(b, module)
	return d
}

// reloadReport is reloadTo that also returns the server's report of the
// reload that made module current.
func (e *benchEnv) reloadReport(b *testing.B, module []byte) (time.Duration, *ReloadReport) {
	want := "hello@" + shortHash(hashOf(module))
	begin := time.Now()
	if err := os.WriteFile(filepath.Join(e.dir, "hello.wasm"), module, 0o644); err != nil {
		b.Fatal(err)
	}
	for e.servedVersion(b) != want {
		if time.Since(begin) > time.Minute {
			b.Fatalf("%s not served after a minute", want)
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(begin)
	for {
		if r := e.srv.LastReload(); r != nil && r.Started.After(begin) {
			return took, r
		}
		if time.Since(begin) > time.Minute {
			b.Fatal("no reload report after a minute")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkReloadLatency: time from the write of a new module to the
// first response from it, with the default debounce, over 20 reloads
// alternating two modules whose compilations are cached. It also reports
// the median of each phase from the server's reload report.
func BenchmarkReloadLatency(b *testing.B) {
	e := startBenchEnv(b, config.Default().Plugins.WatchDebounce.D())
	variants := [][]byte{variant(e.base, "a"), variant(e.base, "b")}
	for _, v := range variants { // warm the compilation cache
		e.reloadTo(b, v)
	}
	b.ResetTimer()
	for range b.N {
		var ds []time.Duration
		var phases [6][]float64 // detect, compile, instantiate, warm, swap, drain
		for i := range 20 {
			d, r := e.reloadReport(b, variants[i%2])
			ds = append(ds, d)
			for j, v := range []float64{r.Detect, r.Compile, r.Instantiate, r.Warm, r.Swap, r.Drain} {
				phases[j] = append(phases[j], v)
			}
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), "median-ms")
		b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), "max-ms")
		for j, name := range []string{"detect", "compile", "instantiate", "warm", "swap", "drain"} {
			slices.Sort(phases[j])
			b.ReportMetric(phases[j][len(phases[j])/2], name+"-median-ms")
		}
	}
}

// BenchmarkReloadThroughput: requests/s of GET /hello on 64 connections,
// in alternating 4s windows without reloads and with a reload every
// second (three of each, so a drift in the machine's load hits both
// alike); reports both rates and their ratio, and the ratio of the
// process's CPU time per request (steady / reloading), which a busy
// shared machine distorts less: it is the throughput ratio a saturated,
// dedicated machine would see (the load generator runs in this process).
func BenchmarkReloadThroughput(b *testing.B) {
	e := startBenchEnv(b, config.Default().Plugins.WatchDebounce.D())
	variants := [][]byte{variant(e.base, "a"), variant(e.base, "b")}
	for _, v := range variants {
		e.reloadTo(b, v)
	}
	type window struct {
		requests int64
		took     time.Duration
		cpu      time.Duration
	}
	next := 0
	run := func(reload bool) window {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if !reload {
				return
			}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					next++
					if err := os.WriteFile(filepath.Join(e.dir, "hello.wasm"), variants[next%2], 0o644); err != nil {
						b.Error(err)
					}
				}
			}
		}()
		var cpu0 time.Duration
		res, err := loadgen.Run(context.Background(), loadgen.Config{URL: e.url + "/hello", Connections: 64,
			Duration: 4 * time.Second, Warmup: 500 * time.Millisecond, OnMeasure: func() { cpu0 = processCPU(b) }})
		cpu := processCPU(b) - cpu0
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors.Total() != 0 {
			b.Errorf("reload=%v: %d errors %v", reload, res.Errors.Total(), res.ErrorSamples)
		}
		return window{res.Requests, res.Duration, cpu}
	}
	b.ResetTimer()
	for range b.N {
		var steady, reloading window
		for range 3 {
			for _, reload := range []bool{false, true} {
				w := run(reload)
				sum := &steady
				if reload {
					sum = &reloading
				}
				sum.requests += w.requests
				sum.took += w.took
				sum.cpu += w.cpu
			}
		}
		rate := func(w window) float64 { return float64(w.requests) / w.took.Seconds() }
		perReq := func(w window) float64 { return w.cpu.Seconds() / float64(w.requests) }
		b.ReportMetric(rate(steady), "steady-req/s")
		b.ReportMetric(rate(reloading), "reloading-req/s")
		b.ReportMetric(rate(reloading)/rate(steady), "ratio")
		b.ReportMetric(perReq(steady)/perReq(reloading), "cpu-ratio")
		b.ReportMetric(perReq(steady)*1e6, "steady-cpu-us/req")
		b.ReportMetric(perReq(reloading)*1e6, "reloading-cpu-us/req")
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Skip("getrusage:", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReloadRSS: resident memory after a warm-up of 10 reloads, then
// after 100 more (each waited for), after a GC that returns freed memory
// to the OS.
func BenchmarkReloadRSS(b *testing.B) {
	e := startBenchEnv(b, 20*time.Millisecond)
	variants := [][]byte{variant(e.base, "a"), variant(e.base, "b")}
	reload := func(n int) {
		for i := range n {
			e.reloadTo(b, variants[i%2])
		}
	}
	b.ResetTimer()
	for range b.N {
		reload(10)
		steady := rssMiB(b)
		reload(100)
		after := rssMiB(b)
		b.ReportMetric(steady, "steady-MiB")
		b.ReportMetric(after, "after100-MiB")
		b.ReportMetric(after/steady, "ratio")
	}
}

func rssMiB(b *testing.B) float64 {
	time.Sleep(500 * time.Millisecond) // let drains finish
	runtime.GC()
	debug.FreeOSMemory()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
