// Package suite is wasmcorn's bundled benchmark: it starts every target
// (wasmcorn, a native Go fasthttp server doing the same work, and the
// classic nginx + Django stacks when installed) on loopback, one fresh
// process tree per scenario, drives each with the same load generator
// (bench/loadgen), and reports throughput, latency percentiles, errors,
// server CPU per request, peak memory and new MySQL connections, with
// ratios against the native target measured in the same run.
//
// The load generator runs in the suite's process and shares the machine's
// cores with the servers; reports say so, and the ratios (not the absolute
// numbers) are what carries over to other machines.
//
// Entry points: Main (the `wasmcorn bench` and bench/cmd/wcbench command
// line) and Run (the library, used by the smoke test).
package suite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/bench/classic"
	"github.com/wasmcorn/wasmcorn/bench/internal/proc"
	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// Options configures a run. The zero value of each field is a documented
// default.
type Options struct {
	// Scenarios to run by name; empty runs every scenario.
	Scenarios []string
	// Targets to run by name ("wasmcorn", "native", "gunicorn-sync", ...);
	// empty runs every available target.
	Targets []string
	// Duration of each measurement; default 10s.
	Duration time.Duration
	// Warmup before each measurement; default 3s (5s for c10k).
	Warmup time.Duration
	// Connections per scenario (except c10k); default 64.
	Connections int
	// Repeat measures each scenario this many times per target, in rounds
	// that interleave the targets, and reports each target's median run by
	// throughput; default 1.
	Repeat int
	// MinReloads is how many plugin versions the reload scenario makes
	// current at least (its load runs until then); default 3.
	MinReloads int
	// C10kConnections overrides the c10k scenario's 10,000 connections
	// (the smoke test uses fewer: the race detector caps goroutines).
	C10kConnections int
	// Dir is the working directory for services, configs and logs; default
	// a new temporary directory, removed afterwards unless KeepDir.
	Dir     string
	KeepDir bool
	// NativeCommand starts a binary whose main calls Main (it runs the
	// native server when it finds the nativeEnvVar variable). Default: this
	// executable with the arguments that led to Main (see Main).
	NativeCommand []string
	// Wasmcorn configures the wasmcorn target.
	Wasmcorn WasmcornOptions
	// Classic enables the classic stacks: "auto" (default: when
	// installed), "yes" (fail when missing) or "no".
	Classic string
	// Progress receives one line per second while a load runs, and a line
	// per measurement; nil is silent.
	Progress io.Writer
	// Log receives the suite's diagnostics; default discard.
	Log *slog.Logger
	// Command is the command line recorded in the report.
	Command string
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Connections <= 0 {
		o.Connections = 64
	}
	if o.Repeat <= 0 {
		o.Repeat = 1
	}
	if o.MinReloads <= 0 {
		o.MinReloads = 3
	}
	if o.C10kConnections <= 0 {
		o.C10kConnections = C10kConnections
	}
	if o.Classic == "" {
		o.Classic = "auto"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// ErrUsage is wrapped by errors about bad options.
var ErrUsage = errors.New("bad benchmark options")

// Run measures every selected scenario on every selected target and
// returns the report. A target that fails to start or a scenario that
// cannot run is recorded in the report (Measurement.Error / Skipped), not
// returned; Run fails only when nothing can run or ctx ends.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	scenarios, err := selectScenarios(opts.Scenarios)
	if err != nil {
		return nil, err
	}
	raiseFileLimit(opts.Log)

	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "wcbench-"); err != nil {
			return nil, err
		}
		if !opts.KeepDir {
			defer os.RemoveAll(dir)
		}
	}
	rep := newReport(opts)
	env := &Env{Dir: dir, Log: opts.Log}
	if err := writeStatic(env); err != nil {
		return nil, err
	}

	targets, err := buildTargets(ctx, &opts, rep)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no target available (wanted %v)", ErrUsage, opts.Targets)
	}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, TargetInfo{Name: t.Name(), Kind: t.Kind(), Description: t.Description()})
	}
	for _, s := range scenarios {
		rep.Scenarios = append(rep.Scenarios, ScenarioInfo{Name: s.Name, Description: s.Description, SameAs: s.SameAs})
	}

	// Backing services, only when a selected scenario needs them.
	needDB := slices.ContainsFunc(scenarios, func(s Scenario) bool { return s.NeedsDB })
	needRedis := slices.ContainsFunc(scenarios, func(s Scenario) bool { return s.NeedsRedis || s.NeedsDB })
	if hasKind(targets, KindClassic) {
		needDB, needRedis = true, true // the Django settings name both
	}
	stop, err := startServices(ctx, env, rep, needDB, needRedis, opts.Progress)
	if err != nil {
		return nil, err
	}
	defer stop()
	if env.Redis != nil || env.MariaDB != nil {
		if err := seed(ctx, env, targets); err != nil {
			return nil, err
		}
	}

	for i := range scenarios {
		sc := &scenarios[i]
		// Rounds interleave the targets, so a change in the machine's other
		// load hits them alike; each target's median round is reported.
		runs := map[string][]Measurement{}
		for round := range opts.Repeat {
			for _, t := range targets {
				path, ok := t.Route(sc)
				if !ok {
					continue
				}
				if err := ctx.Err(); err != nil {
					return rep, err
				}
				m := measure(ctx, env, &opts, sc, t, path)
				if opts.Repeat > 1 {
					fmt.Fprintf(opts.Progress, "[round %d/%d] ", round+1, opts.Repeat)
				}
				fmt.Fprintln(opts.Progress, m.summary())
				runs[t.Name()] = append(runs[t.Name()], m)
			}
		}
		for _, t := range targets {
			if rs := runs[t.Name()]; len(rs) > 0 {
				rep.Results = append(rep.Results, median(rs))
				rep.Notes = append(rep.Notes, failedRounds(rs)...)
			}
		}
		if sc.Queue == "redis" && env.Redis != nil {
			// Drop the submitted jobs (and every target's stream), then
			// restore the keys the other scenarios read.
			if err := resetRedis(ctx, env, targets); err != nil {
				return rep, err
			}
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Machine.LoadAvgEnd = loadAvg()
	return rep, ctx.Err()
}

// failedRounds notes the failed runs among several rounds (the median
// is taken over the successful ones, so a server that crashed in one
// round would otherwise go unreported), by the first line of their error.
func failedRounds(rs []Measurement) []string {
	var notes []string
	for n, m := range rs {
		if m.Error != "" && len(rs) > 1 {
			first, _, _ := strings.Cut(m.Error, "\n")
			notes = append(notes, fmt.Sprintf("%s on %s: round %d of %d failed: %s", m.Scenario, m.Target, n+1, len(rs), first))
		}
	}
	return notes
}

// median returns the run with the median throughput among the successful
// ones (the last run when none succeeded), listing every run's throughput.
func median(rs []Measurement) Measurement {
	var all []float64
	var good []Measurement
	for _, m := range rs {
		all = append(all, m.Throughput)
		if m.ok() {
			good = append(good, m)
		}
	}
	m := rs[len(rs)-1]
	if len(good) > 0 {
		slices.SortStableFunc(good, func(a, b Measurement) int { return cmp.Compare(a.Throughput, b.Throughput) })
		m = good[(len(good)-1)/2]
	}
	if len(rs) > 1 {
		m.Runs = all
	}
	return m
}

func hasKind(ts []Target, kind string) bool {
	return slices.ContainsFunc(ts, func(t Target) bool { return t.Kind() == kind })
}

func selectScenarios(names []string) ([]Scenario, error) {
	all := Scenarios()
	if len(names) == 0 {
		return all, nil
	}
	var out []Scenario
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == n })
		if i < 0 {
			var known []string
			for _, s := range all {
				known = append(known, s.Name)
			}
			return nil, fmt.Errorf("%w: unknown scenario %q (known: %s)", ErrUsage, n, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	// Scenarios measured through another one need it on the other targets.
	for _, s := range out {
		if s.SameAs != "" && !slices.ContainsFunc(out, func(o Scenario) bool { return o.Name == s.SameAs }) {
			i := slices.IndexFunc(all, func(o Scenario) bool { return o.Name == s.SameAs })
			out = append(out, all[i])
		}
	}
	slices.SortStableFunc(out, func(a, b Scenario) int {
		return slices.IndexFunc(all, func(s Scenario) bool { return s.Name == a.Name }) -
			slices.IndexFunc(all, func(s Scenario) bool { return s.Name == b.Name })
	})
	return out, nil
}

// buildTargets returns the selected targets that can run here, recording
// why the others cannot.
func buildTargets(ctx context.Context, opts *Options, rep *Report) ([]Target, error) {
	want := func(name string) bool { return len(opts.Targets) == 0 || slices.Contains(opts.Targets, name) }
	known := []string{"wasmcorn", "native"}
	for _, s := range classic.Stacks {
		known = append(known, string(s))
	}
	for _, n := range opts.Targets {
		if !slices.Contains(known, n) && !strings.HasPrefix(n, "wasmcorn") {
			return nil, fmt.Errorf("%w: unknown target %q (known: %s)", ErrUsage, n, strings.Join(known, ", "))
		}
	}
	var ts []Target
	// "wasmcorn" selects every engine's target, "wasmcorn-wasmtime" one.
	anyWasmcorn := len(opts.Targets) == 0 || slices.ContainsFunc(opts.Targets, func(n string) bool { return strings.HasPrefix(n, "wasmcorn") })
	if anyWasmcorn {
		w, err := newWasmcornTarget(ctx, opts.Wasmcorn, rep)
		if err != nil {
			// A binary named on the command line that cannot run is a
			// mistake to report before anything runs, not a run without
			// wasmcorn to find out about at the end.
			if opts.Wasmcorn.Binary != "" || opts.Wasmcorn.WasmtimeBinary != "" {
				return nil, fmt.Errorf("%w: %v", ErrUsage, err)
			}
			rep.Notes = append(rep.Notes, "wasmcorn target unavailable: "+err.Error())
		}
		for _, t := range w {
			if want("wasmcorn") || want(t.Name()) {
				ts = append(ts, t)
			}
		}
	}
	if want("native") {
		cmd := opts.NativeCommand
		if len(cmd) == 0 {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("native target: %w", err)
			}
			cmd = []string{exe}
		}
		ts = append(ts, &nativeTarget{command: cmd})
	}
	wantClassic := slices.ContainsFunc(classic.Stacks, func(s classic.Stack) bool { return want(string(s)) })
	if opts.Classic != "no" && wantClassic {
		versions, err := classic.Available(ctx)
		switch {
		case err == nil:
			for k, v := range versions {
				rep.Versions[k] = v
			}
			for _, s := range classic.Stacks {
				if want(string(s)) {
					ts = append(ts, &classicTarget{stack: s})
				}
			}
		case opts.Classic == "yes":
			return nil, err
		default:
			rep.Notes = append(rep.Notes, "classic stacks not measured: "+err.Error())
		}
	}
	return ts, nil
}

// mariadbArgs size the throwaway MariaDB for a benchmark rather than for a
// fast test start: a buffer pool that holds the data, enough connections
// for the classic stacks.
var mariadbArgs = []string{
	"--innodb-buffer-pool-size=128M",
	"--innodb-log-file-size=48M",
	"--max-connections=4000",
}

func redisClient(r *testsvc.RedisServer) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr()})
}

func startServices(ctx context.Context, env *Env, rep *Report, needDB, needRedis bool, progress io.Writer) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if needDB {
		fmt.Fprintln(progress, "starting a throwaway MariaDB ...")
		m, err := testsvc.StartMariaDBServer(ctx, testsvc.MariaDBOptions{Args: mariadbArgs})
		if err == nil {
			if err = m.Exec(ctx, "CREATE DATABASE IF NOT EXISTS bench"); err != nil {
				m.Close()
			}
		}
		if err != nil {
			rep.Notes = append(rep.Notes, "MariaDB scenarios not measured: "+err.Error())
		} else {
			env.MariaDB = m
			stops = append(stops, func() { _ = m.Close() })
			if v, err := m.Version(ctx); err == nil {
				rep.Versions["mariadb"] = v
			}
		}
	}
	if needRedis {
		r, err := testsvc.StartRedisServer(ctx, testsvc.RedisOptions{Args: []string{"--maxclients", "10000"}})
		if err != nil {
			rep.Notes = append(rep.Notes, "Redis scenarios not measured: "+err.Error())
		} else {
			env.Redis = r
			stops = append(stops, func() { _ = r.Close() })
			c := redisClient(r)
			if info, err := c.Info(ctx, "server").Result(); err == nil {
				for _, line := range strings.Split(info, "\n") {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
						rep.Versions["redis"] = v
					}
				}
			}
			c.Close()
		}
	}
	return stop, nil
}

// seed fills table world and every target's copy of the /db cache keys.
func seed(ctx context.Context, env *Env, targets []Target) error {
	if env.MariaDB != nil {
		db, err := openDB(env.MariaDB.DSN("bench"))
		if err != nil {
			return err
		}
		defer db.Close()
		if err := workload.Seed(ctx, db); err != nil {
			return err
		}
	}
	if env.Redis != nil {
		return seedRedis(ctx, env, targets)
	}
	return nil
}

func seedRedis(ctx context.Context, env *Env, targets []Target) error {
	c := redisClient(env.Redis)
	defer c.Close()
	pipe := c.Pipeline()
	for _, t := range targets {
		for id := 1; id <= workload.Rows; id++ {
			k, v := t.WorldCacheEntry(id)
			pipe.Set(ctx, k, v, 0)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("seed redis: %w", err)
	}
	return nil
}

func resetRedis(ctx context.Context, env *Env, targets []Target) error {
	c := redisClient(env.Redis)
	err := c.FlushAll(ctx).Err()
	c.Close()
	if err != nil {
		return fmt.Errorf("flush redis: %w", err)
	}
	return seedRedis(ctx, env, targets)
}

func writeStatic(env *Env) error {
	env.StaticDir = filepath.Join(env.Dir, "static")
	if err := os.MkdirAll(env.StaticDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(env.StaticDir, workload.StaticName), workload.StaticContent(), 0o644)
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit (Go does
// this at start-up too; children get the raised limit explicitly).
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("raise open file limit", "err", err)
		}
	}
}

// fileLimit is the current soft RLIMIT_NOFILE.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return uint64(lim.Cur) // int64 on some BSDs
}

// measure runs one scenario on one target. m is a named result: the
// deferred Stop check must be able to set its Error after a return.
func measure(ctx context.Context, env *Env, opts *Options, sc *Scenario, t Target, path string) (m Measurement) {
	m = Measurement{Scenario: sc.Name, Target: t.Name(), Kind: t.Kind(), NewMySQLConns: -1}
	if sc.NeedsDB && env.MariaDB == nil || (sc.NeedsRedis && env.Redis == nil) {
		m.Skipped = "MariaDB or Redis not available"
		return m
	}
	conns := opts.Connections
	warm := opts.Warmup
	timeout := 10 * time.Second
	if sc.Connections > 0 {
		conns = opts.C10kConnections
		warm = max(warm, 5*time.Second)
	}
	if sc.Timeout > 0 {
		timeout = sc.Timeout
	}
	if need := uint64(conns) + 256; fileLimit() < need {
		m.Skipped = fmt.Sprintf("open file limit %d < %d needed for %d connections", fileLimit(), need, conns)
		return m
	}
	m.Connections = conns

	inst, err := t.Start(ctx, env, sc)
	var skip *skipError
	if errors.As(err, &skip) {
		m.Skipped = skip.reason
		return m
	}
	if err != nil {
		m.Error = "start: " + err.Error()
		return m
	}
	defer func() {
		if err := inst.Stop(); err != nil && m.Error == "" {
			m.Error = "stop: " + err.Error()
		}
	}()

	cfg := loadgen.Config{
		URL:         inst.URL() + path,
		Method:      sc.Method,
		Body:        sc.Body,
		Connections: conns,
		Duration:    opts.Duration,
		Warmup:      warm,
		Timeout:     timeout,
		Check:       workload.Check(sc.Path),
		Progress:    opts.Progress,
	}
	if sc.IDs {
		cfg.Paths = workload.IDPaths(path)
	}
	if len(sc.Body) > 0 {
		cfg.Headers = []loadgen.Header{{Name: "Content-Type", Value: "application/json"}}
	}
	if err := waitServing(ctx, cfg); err != nil {
		m.Error = "not serving: " + err.Error()
		if err := exited(inst); err != nil {
			m.Error += "; " + err.Error()
		}
		return m
	}

	var before proc.Usage
	var connsBefore, jobsBefore int64 = -1, -1
	var usageErr error
	jobs, countJobs := inst.(JobCounter)
	countJobs = countJobs && sc.Queue != ""
	cfg.OnMeasure = func() {
		before, usageErr = proc.TreeUsage(inst.Pids()...)
		if countJobs {
			if n, err := jobs.JobsExecuted(ctx); err == nil {
				jobsBefore = n
			}
		}
		if env.MariaDB != nil {
			if n, err := env.MariaDB.GlobalStatus(ctx, "Connections"); err == nil {
				connsBefore = n
			}
		}
	}

	var reloads reloadStats
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloadDone := make(chan struct{})
	if sc.Reload {
		r, ok := inst.(Reloader)
		if !ok {
			m.Error = "target cannot reload"
			return m
		}
		// Two versions alternate (see Reloader), both made current once
		// before the load starts so that their compiled code is in the
		// compilation cache: issue #5 measures throughput during
		// continuous reloads with a warm cache, not compile speed.
		for n := 1; n <= 2; n++ {
			if err := r.Reload(ctx, n); err != nil {
				m.Error = "reload: " + err.Error()
				return m
			}
		}
		// Reloads then run one per reloadEvery (back to back when one
		// takes longer); the load goes on for the duration and until
		// MinReloads versions have been made current, within ReloadCap.
		stop := make(chan struct{})
		cfg.Stop = stop
		cfg.Duration = max(opts.Duration, reloadCap)
		minEnd := time.Now().Add(cfg.Warmup + opts.Duration)
		var done atomic.Int64
		go func() {
			defer close(reloadDone)
			reloads = reloadLoop(runCtx, r, reloadEvery, &done)
		}()
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case now := <-t.C:
					if now.After(minEnd) && done.Load() >= int64(opts.MinReloads) {
						close(stop)
						return
					}
				}
			}
		}()
	} else {
		close(reloadDone)
	}
	res, err := loadgen.Run(ctx, cfg)
	after, afterErr := proc.TreeUsage(inst.Pids()...)
	m.JobsExecuted = -1
	if countJobs && jobsBefore >= 0 {
		if n, err := jobs.JobsExecuted(ctx); err == nil && res.Duration > 0 {
			m.JobsExecuted = n - jobsBefore
			m.JobsPerSecond = float64(m.JobsExecuted) / res.Duration.Seconds()
		}
	}
	if env.MariaDB != nil && connsBefore >= 0 {
		if n, err := env.MariaDB.GlobalStatus(ctx, "Connections"); err == nil {
			m.NewMySQLConns = n - connsBefore
		}
	}
	cancel()
	<-reloadDone
	if err != nil {
		m.Error = err.Error()
	} else if res.Requests == 0 {
		m.Error = fmt.Sprintf("no request completed in the measured %v", opts.Duration)
	}
	m.Load = res
	m.Throughput = res.Throughput
	if usageErr == nil && afterErr == nil {
		m.ServerCPU = after.CPU - before.CPU
		if res.Requests > 0 {
			m.CPUPerRequest = m.ServerCPU / time.Duration(res.Requests)
		}
		m.PeakRSS = after.PeakRSS
		m.PSS = after.PSS
		m.Procs = after.Procs
	} else if m.Error == "" {
		m.Error = fmt.Sprintf("process usage: before the run: %v; after it: %v", usageErr, afterErr)
	}
	// A server that died during the run explains every other error.
	if err := exited(inst); err != nil {
		m.Error = err.Error()
	}
	if sc.Reload {
		m.Reloads = reloads.done
		if reloads.done > 0 {
			m.ReloadMean = reloads.took / time.Duration(reloads.done)
		}
		switch {
		case reloads.err != "" && m.Error == "":
			m.Error = "reload: " + reloads.err
		case reloads.done < opts.MinReloads && m.Error == "":
			m.Error = fmt.Sprintf("only %d of %d reloads completed within %v", reloads.done, opts.MinReloads, reloadCap)
		}
	}
	return m
}

// waitServing sends single requests until one succeeds, for up to a
// minute: the server may still be starting (connection refused) or warming
// its pools (503). Three answers of another 5xx in a row mean it is broken.
func waitServing(ctx context.Context, cfg loadgen.Config) error {
	cfg.Connections, cfg.Requests, cfg.Duration, cfg.Warmup, cfg.Progress = 1, 1, 0, 0, nil
	cfg.Stop, cfg.OnMeasure = nil, nil
	cfg.Timeout = 10 * time.Second
	deadline := time.Now().Add(time.Minute)
	var last string
	broken := 0
	for time.Now().Before(deadline) {
		res, err := loadgen.Run(ctx, cfg)
		if err != nil {
			return err
		}
		if res.Successes == 1 {
			return nil
		}
		for k, v := range res.ErrorSamples {
			last = k + ": " + v
		}
		broken++
		for code := range res.StatusCodes {
			if code < 500 || code == 503 {
				broken = 0
			}
		}
		if res.Errors.Status == 0 {
			broken = 0
		}
		if broken >= 3 {
			return fmt.Errorf("the server fails: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no successful request within a minute; last error %s", last)
}

// Reload scenario pacing.
const (
	reloadEvery = time.Second
	reloadCap   = 3 * time.Minute
)

type reloadStats struct {
	done int
	took time.Duration // summed over the completed reloads
	err  string
}

// reloadLoop makes a new plugin version current, one after the other and
// at most one per every, until ctx ends; done counts completed reloads.
func reloadLoop(ctx context.Context, r Reloader, every time.Duration, done *atomic.Int64) reloadStats {
	var st reloadStats
	for n := 1; ; n++ {
		start := time.Now()
		if err := r.Reload(ctx, n); err != nil {
			if ctx.Err() == nil {
				st.err = err.Error()
			}
			return st
		}
		st.done++
		st.took += time.Since(start)
		done.Add(1)
		select {
		case <-ctx.Done():
			return st
		case <-time.After(every - time.Since(start)):
		}
	}
}

func openDB(dsn string) (*sql.DB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	return db, nil
}
