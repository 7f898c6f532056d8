package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// Loader loads one plugin. *host.Runtime implements it. LoadDir and
// reloads call Load from several goroutines at once.
type Loader interface {
	Load(ctx context.Context, spec host.PluginSpec) (*host.Plugin, error)
}

// LoadOptions tune LoadDir.
type LoadOptions struct {
	// Logger receives one line per plugin loaded or failed.
	Logger *slog.Logger
	// Progress, when set, is called before each plugin is loaded
	// (i is 1-based, the plugin's place in the directory) so a CLI can
	// show progress. Plugins load in parallel, so i does not always
	// grow; calls never overlap.
	Progress func(i, n int, name string)
	// Only restricts loading to the named plugins when non-empty.
	Only []string
	// Spec, when set, may adjust each plugin's spec before it is loaded
	// (the check command loads every plugin with a pool of one).
	Spec func(*host.PluginSpec)
}

// LoadDir discovers the plugins of cfg.Plugins.Dir, loads each with l and
// returns the Set of those that loaded, plus their failures (bad manifest,
// grant of an unconfigured database, compile or ABI error, warm-up error,
// route conflict). A failed plugin is logged and skipped; it never stops
// the others. Plugins that loaded but were rejected by NewSet (route
// conflict) are drained before LoadDir returns. The error is non-nil only
// when the plugins directory cannot be read or ctx ends; a directory that
// does not exist gives an empty Set and a warning, so zero configuration
// starts.
func LoadDir(ctx context.Context, cfg *config.Config, l Loader, opts LoadOptions) (*Set, error) {
	log := opts.logger()
	entries, failures, err := loadAll(ctx, cfg, l, opts, nil)
	if err != nil {
		return nil, err
	}
	set, rejected := NewSet(entries, failures)
	logRejected(log, set, rejected)
	drainEntries(ctx, rejected, log)
	logLoaded(log, set, nil)
	return set, nil
}

func (o *LoadOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// loadAll loads every plugin of the directory. reuse, when set, may
// return an already loaded Entry for a plugin file, given the module's
// bytes, instead of loading it; the bytes it was given are loaded
// otherwise, so a reload reads each module once.
func loadAll(ctx context.Context, cfg *config.Config, l Loader, opts LoadOptions,
	reuse func(pf config.PluginFile, wasm []byte) (Entry, bool)) ([]Entry, []LoadFailure, error) {
	log := opts.logger()
	dir := cfg.Plugins.Dir
	found, problems, err := config.Discover(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			log.Warn("plugins directory does not exist; serving no plugins", "dir", dir)
			return nil, nil, nil
		}
		return nil, nil, err
	}
	for _, p := range problems {
		log.Warn("plugin file skipped", "error", p)
	}
	if len(opts.Only) > 0 {
		var keep []config.PluginFile
		for _, pf := range found {
			if slices.Contains(opts.Only, pf.Name) {
				keep = append(keep, pf)
			}
		}
		found = keep
	}
	// Modules that can be reused are picked first, in order; the others
	// load in parallel, a few at a time (a load is mostly one CPU
	// compiling or reading compiled code), and land in discovery order.
	results := make([]loadResult, len(found))
	var todo []int
	for i, pf := range found {
		if err := ctx.Err(); err != nil {
			return nil, nil, err // nothing loaded yet
		}
		if reuse != nil {
			// A module that cannot be read is not reused; loadPlugin reads
			// it again and reports why.
			if b, err := os.ReadFile(pf.Wasm); err == nil {
				if e, ok := reuse(pf, b); ok {
					results[i] = loadResult{entry: e, done: true, reused: true}
					continue
				}
				results[i].wasm = b
			}
		}
		todo = append(todo, i)
	}
	var progress sync.Mutex
	forEachParallel(ctx, todo, func(i int) {
		pf := found[i]
		if opts.Progress != nil {
			progress.Lock()
			opts.Progress(i+1, len(found), pf.Name)
			progress.Unlock()
		}
		e, err := loadPlugin(ctx, cfg, l, pf, opts.Spec, results[i].wasm)
		results[i] = loadResult{entry: e, err: err, done: true, at: time.Now()}
		if err != nil {
			log.Error("plugin failed to load", "plugin", pf.Name, "error", err)
			metrics.PluginLoadFailures.WithLabelValues(pf.Name).Inc()
		}
	}, nil)
	var entries []Entry
	var failures []LoadFailure
	for i, r := range results {
		switch {
		case !r.done:
		case r.err != nil:
			failures = append(failures, LoadFailure{Plugin: found[i].Name, Err: r.err.Error(), At: r.at})
		default:
			entries = append(entries, r.entry)
		}
	}
	if err := ctx.Err(); err != nil {
		// Entries reused from the running set belong to it.
		var loaded []Entry
		for _, r := range results {
			if r.done && r.err == nil && !r.reused {
				loaded = append(loaded, r.entry)
			}
		}
		drainEntries(context.Background(), loaded, log)
		return nil, nil, err
	}
	return entries, failures, nil
}

// loadResult is what loading one plugin file gave.
type loadResult struct {
	wasm   []byte // the module's bytes when already read
	entry  Entry
	err    error
	at     time.Time // when the load ended
	done   bool
	reused bool // entry is the running set's, not a new load
}

// forEachParallel calls fn(i) for each i of idx, loadWorkers() at a time,
// and starts none once ctx has ended. inOrder, when not nil, is called in
// the calling goroutine with each i in idx's order, as soon as fn(i) and
// every earlier one have returned or been skipped.
func forEachParallel(ctx context.Context, idx []int, fn func(i int), inOrder func(i int)) {
	next := make(chan int, len(idx))
	done := make([]chan struct{}, len(idx))
	for k := range idx {
		next <- k
		done[k] = make(chan struct{})
	}
	close(next)
	var wg sync.WaitGroup
	for range min(len(idx), loadWorkers()) {
		wg.Go(func() {
			for k := range next {
				if ctx.Err() == nil {
					fn(idx[k])
				}
				close(done[k])
			}
		})
	}
	if inOrder != nil {
		for k, i := range idx {
			<-done[k]
			inOrder(i)
		}
	}
	wg.Wait()
}

// LoadPlugins loads each of pfs as LoadPlugin does, a few at a time as
// LoadDir does, and calls report with each outcome in pfs's order, in the
// calling goroutine, as soon as it and those before it are known (a CLI
// can print them as they come). A plugin left unloaded because ctx ended
// is reported with ctx's error.
func LoadPlugins(ctx context.Context, cfg *config.Config, l Loader, pfs []config.PluginFile, adjust func(*host.PluginSpec),
	report func(pf config.PluginFile, e Entry, err error, took time.Duration)) {
	type outcome struct {
		e    Entry
		err  error
		took time.Duration
		ran  bool
	}
	out := make([]outcome, len(pfs))
	idx := make([]int, len(pfs))
	for i := range idx {
		idx[i] = i
	}
	forEachParallel(ctx, idx, func(i int) {
		start := time.Now()
		e, err := loadPlugin(ctx, cfg, l, pfs[i], adjust, nil)
		out[i] = outcome{e, err, time.Since(start), true}
	}, func(i int) {
		o := out[i]
		if !o.ran {
			o.err = ctx.Err()
		}
		report(pfs[i], o.e, o.err, o.took)
	})
}

// loadWorkers is how many plugins load at once: one per CPU, at least two
// (a load also waits on files) and at most four (each holds a module's
// compilation in memory).
func loadWorkers() int { return min(max(runtime.GOMAXPROCS(0), 2), 4) }

func logRejected(log *slog.Logger, set *Set, rejected []Entry) {
	for _, e := range rejected {
		for _, f := range set.failures {
			if f.Plugin == e.Plugin.Name() {
				log.Error("plugin routes rejected; plugin skipped", "plugin", f.Plugin, "error", f.Err)
			}
		}
		metrics.PluginLoadFailures.WithLabelValues(e.Plugin.Name()).Inc()
	}
}

// logLoaded logs each plugin of set that is not in skip.
func logLoaded(log *slog.Logger, set *Set, skip map[Plugin]bool) {
	for _, m := range set.plugins {
		if skip[m.plugin] {
			continue
		}
		st := m.plugin.Stats()
		log.Info("plugin loaded", "plugin", m.name, "engine", m.plugin.Engine(), "hash", shortHash(m.plugin.Hash()),
			"routes", m.routes, "pool_min", st.Min, "pool_max", st.Max, "load_ms", m.loadDur.Milliseconds())
	}
}

// LoadPlugin loads the one plugin pf describes: manifest, grants check
// against cfg, module bytes, then l.Load.
func LoadPlugin(ctx context.Context, cfg *config.Config, l Loader, pf config.PluginFile, adjust func(*host.PluginSpec)) (Entry, error) {
	return loadPlugin(ctx, cfg, l, pf, adjust, nil)
}

// loadPlugin is LoadPlugin with the module's bytes when the caller has
// read them already (nil: read pf.Wasm).
func loadPlugin(ctx context.Context, cfg *config.Config, l Loader, pf config.PluginFile, adjust func(*host.PluginSpec), wasm []byte) (Entry, error) {
	m, err := config.LoadPluginManifest(pf)
	if err != nil {
		return Entry{}, err
	}
	if err := m.CheckGrants(cfg); err != nil {
		return Entry{}, err
	}
	if wasm == nil {
		if wasm, err = os.ReadFile(pf.Wasm); err != nil {
			return Entry{}, fmt.Errorf("plugin %s: %w", pf.Name, err)
		}
	}
	spec := m.Spec(pf.Name, wasm)
	if adjust != nil {
		adjust(&spec)
	}
	start := time.Now()
	p, err := l.Load(ctx, spec)
	if err != nil {
		return Entry{}, fmt.Errorf("plugin %s: %w", pf.Name, err)
	}
	d := p.LoadDuration()
	if d == 0 {
		d = time.Since(start)
	}
	return Entry{Plugin: p, Manifest: m, LoadDuration: d}, nil
}

func drainEntries(ctx context.Context, es []Entry, log *slog.Logger) {
	for _, e := range es {
		if err := e.Plugin.Drain(ctx); err != nil {
			log.Warn("drain failed", "plugin", e.Plugin.Name(), "error", err)
		}
	}
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
