// Command loadgen drives an HTTP server with bench/loadgen and prints the
// result, as text or JSON.
//
//	loadgen -c 64 -d 10s -w 2s http://127.0.0.1:8080/hello
//	loadgen -c 16 -rate 5000 -d 30s -json http://127.0.0.1:8080/db?id=1
//
// A progress line goes to stderr once a second.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
)

type headerFlags []loadgen.Header

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Errorf("header %q: want 'Name: value'", s)
	}
	*h = append(*h, loadgen.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       loadgen.Config
		headers   headerFlags
		body      string
		expect    string
		asJSON    bool
		quiet     bool
		noKeep    bool
		pathsFile string
		cpuProf   string
	)
	fs.IntVar(&cfg.Connections, "c", 16, "concurrent connections")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "measured duration (0 with -n: until -n requests)")
	fs.Int64Var(&cfg.Requests, "n", 0, "stop after this many measured requests")
	fs.DurationVar(&cfg.Warmup, "w", time.Second, "warm-up before measuring")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target total requests/s (latency corrected for coordinated omission); 0 = as fast as possible")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "connect and per-request timeout")
	fs.BoolVar(&noKeep, "no-keepalive", false, "one connection per request")
	fs.StringVar(&cfg.Method, "m", "GET", "method")
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	fs.StringVar(&body, "body", "", "request body")
	fs.StringVar(&expect, "expect", "", "count a 2xx response whose body lacks this string as a check error")
	fs.StringVar(&pathsFile, "paths", "", "file of request targets, one per line (/db?id=1), cycled through")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&quiet, "q", false, "no progress line")
	fs.StringVar(&cpuProf, "cpuprofile", "", "write the generator's own CPU profile to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loadgen [flags] http://host:port/path")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	cfg.URL = fs.Arg(0)
	cfg.Headers = headers
	cfg.DisableKeepAlive = noKeep
	if body != "" {
		cfg.Body = []byte(body)
	}
	if expect != "" {
		want := []byte(expect)
		cfg.Check = func(_ int, b []byte) error {
			if !bytes.Contains(b, want) {
				return fmt.Errorf("body lacks %q", expect)
			}
			return nil
		}
	}
	if pathsFile != "" {
		b, err := os.ReadFile(pathsFile)
		if err != nil {
			return fmt.Errorf("read paths: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				cfg.Paths = append(cfg.Paths, line)
			}
		}
	}
	if !quiet {
		cfg.Progress = stderr
	}
	if cpuProf != "" {
		f, err := os.Create(cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil && res.Requests == 0 {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printText(stdout, &res)
	}
	return err
}

func printText(w io.Writer, r *loadgen.Result) {
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("target %.0f req/s, latency from intended send time", r.Rate)
	}
	fmt.Fprintf(w, "%s: %d connections (keep-alive %v), %s, %v measured\n",
		r.URL, r.Connections, r.KeepAlive, mode, r.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  requests   %d (%d ok), %.0f ok/s, %.1f MB read\n",
		r.Requests, r.Successes, r.Throughput, float64(r.BytesRead)/1e6)
	l := r.Latency
	fmt.Fprintf(w, "  latency    p50 %v  p90 %v  p99 %v  p99.9 %v  max %v  (mean %v ± %v)\n",
		us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max), us(l.Mean), us(l.StdDev))
	e := r.Errors
	fmt.Fprintf(w, "  errors     %d: connect %d, timeout %d, status %d, check %d, other %d\n",
		e.Total(), e.Connect, e.Timeout, e.Status, e.Check, e.Other)
	for kind, msg := range r.ErrorSamples {
		fmt.Fprintf(w, "    first %s error: %s\n", kind, msg)
	}
	fmt.Fprintf(w, "  connects   %d\n", r.Connects)
	fmt.Fprintf(w, "  client CPU %v (%v per request)\n", r.ClientCPU.Round(time.Millisecond), r.ClientCPUPerRequest)
}

func us(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
