// Package host runs wasmcorn plugins: it compiles modules with an engine
// (wazero by default), keeps a pool of pre-instantiated instances per plugin,
// enforces limits and deadlines, and serves the guests' host calls (log,
// config, SQL, cache, locks, queue) from configured backends.
//
// The server hands a Plugin an encoded request (see package abi) and gets an
// encoded response back; nothing here knows about HTTP.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
	_ "github.com/wasmcorn/wasmcorn/host/internal/wazero" // the default engine
	"github.com/wasmcorn/wasmcorn/sdk-python/bundlefs"
)

// DefaultEngine is the engine used when neither the runtime nor a plugin
// names one.
const DefaultEngine = "wazero"

// RuntimeOptions configure a Runtime. The zero value uses wazero without a
// compilation cache, no backends, and slog.Default().
type RuntimeOptions struct {
	// Engine is the default engine name ("wazero", or "wasmtime" in
	// binaries built with the wasmtime tag).
	Engine string
	// CacheDir holds compiled code across restarts; empty disables it.
	CacheDir string
	// Services are the backends host calls use.
	Services *Services
	// Logger receives plugin logs and pool events.
	Logger *slog.Logger
}

// Runtime owns the engines, the deadline watchdog and the services shared
// by every plugin. It is safe for concurrent use. Close it after every
// Plugin it loaded has been drained.
type Runtime struct {
	opts     RuntimeOptions
	services *Services
	log      *slog.Logger
	wd       *watchdog

	mu      sync.Mutex
	engines map[string]engine.Engine
	closed  atomic.Bool
	// loads counts Loads in progress; Close waits for them before closing
	// the engines (wazero's compiler writes to its engine's maps, which
	// Close sets to nil: a compile racing a Close panicked with
	// "assignment to entry in nil map"). Added under mu while not closed.
	loads sync.WaitGroup
}

// ErrRuntimeClosed is returned by Load after Close.
var ErrRuntimeClosed = errors.New("host runtime closed")

// beginLoad registers a Load; the caller calls rt.loads.Done when it ends.
func (rt *Runtime) beginLoad() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed.Load() {
		return ErrRuntimeClosed
	}
	rt.loads.Add(1)
	return nil
}

// NewRuntime creates a runtime; the default engine is created now so that
// configuration errors surface at startup.
func NewRuntime(opts RuntimeOptions) (*Runtime, error) {
	if opts.Engine == "" {
		opts.Engine = DefaultEngine
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Services == nil {
		opts.Services = &Services{}
	}
	rt := &Runtime{opts: opts, services: opts.Services, log: opts.Logger, engines: map[string]engine.Engine{}}
	if _, err := rt.engine(opts.Engine); err != nil {
		return nil, err
	}
	rt.wd = newWatchdog()
	return rt, nil
}

func (rt *Runtime) engine(name string) (engine.Engine, error) {
	if name == "" {
		name = rt.opts.Engine
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if e, ok := rt.engines[name]; ok {
		return e, nil
	}
	cacheDir := rt.opts.CacheDir
	if cacheDir != "" {
		cacheDir = cacheDir + "/" + name
	}
	e, err := engine.New(name, engine.Config{CacheDir: cacheDir})
	if err != nil {
		return nil, err
	}
	rt.engines[name] = e
	return e, nil
}

// Close stops the watchdog and closes the engines. Loads still running are
// waited for (until ctx ends: the engines are then left open, as closing
// them under a compiler is unsafe); Loads started after Close fail with
// ErrRuntimeClosed. Calling it again does nothing.
func (rt *Runtime) Close(ctx context.Context) error {
	rt.mu.Lock()
	if rt.closed.Swap(true) {
		rt.mu.Unlock()
		return nil
	}
	rt.mu.Unlock()
	loaded := make(chan struct{})
	go func() { rt.loads.Wait(); close(loaded) }()
	select {
	case <-loaded:
	case <-ctx.Done():
		rt.wd.close()
		return fmt.Errorf("close host runtime: plugin loads still running: %w", ctx.Err())
	}
	rt.wd.close()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var errs []error
	for _, e := range rt.engines {
		errs = append(errs, e.Close(ctx))
	}
	return errors.Join(errs...)
}

// PluginSpec is everything needed to load one plugin.
type PluginSpec struct {
	// Name identifies the plugin in routes, logs, metrics and cache keys.
	Name string
	// Wasm is the module binary.
	Wasm []byte
	// Engine overrides the runtime's default engine; "" keeps it.
	Engine string
	Pool   PoolConfig
	Limits Limits
	Grants Grants
	// Env and Dirs are what the manifest grants the guest through WASI.
	Env  map[string]string
	Dirs []engine.DirGrant
}

// Plugin is a loaded plugin: a compiled module and its pool. It is safe for
// concurrent use. A Plugin is immutable; a reload loads a new one.
type Plugin struct {
	name     string
	hash     string
	engine   string
	loadedAt time.Time
	loadTime time.Duration
	phases   LoadPhases
	grants   Grants
	rt       *Runtime
	pool     *pool
	mod      engine.Module
	hasJobs  bool
	log      *slog.Logger
}

// Load compiles spec.Wasm (through the compilation cache), checks the ABI,
// and pre-instantiates Pool.Min instances. On error nothing is left running.
// Errors wrap engine.ErrMissingExport, engine.ErrABIVersion or
// engine.ErrInit where those apply.
func (rt *Runtime) Load(ctx context.Context, spec PluginSpec) (*Plugin, error) {
	start := time.Now()
	if spec.Name == "" {
		return nil, errors.New("load plugin: empty name")
	}
	if err := rt.beginLoad(); err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	defer rt.loads.Done()
	if spec.Pool.Max <= 0 {
		spec.Pool = DefaultPoolConfig()
	}
	if spec.Pool.Min > spec.Pool.Max {
		return nil, fmt.Errorf("plugin %q: pool min %d exceeds max %d", spec.Name, spec.Pool.Min, spec.Pool.Max)
	}
	if spec.Limits.Timeout <= 0 {
		spec.Limits.Timeout = DefaultLimits().Timeout
	}
	if spec.Limits.MaxResponseBytes == 0 {
		spec.Limits.MaxResponseBytes = DefaultLimits().MaxResponseBytes
	}
	if spec.Limits.MaxMemoryPages == 0 {
		spec.Limits.MaxMemoryPages = DefaultLimits().MaxMemoryPages
	}
	if spec.Grants.CacheNamespace == "" {
		spec.Grants.CacheNamespace = spec.Name
	}
	eng, err := rt.engine(spec.Engine)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	sum := sha256.Sum256(spec.Wasm)
	log := rt.log.With("plugin", spec.Name)
	p := &Plugin{
		name: spec.Name, hash: hex.EncodeToString(sum[:]), engine: eng.Name(),
		grants: spec.Grants, rt: rt, log: log,
	}
	// A plugin may carry its files (a Python app and its standard library)
	// in a custom section: compile the module without it and mount the
	// files read-only, shared by every instance.
	// A binary Split cannot frame goes to the compiler whole, which
	// reports what is wrong with it.
	code, section, err := bundlefs.Split(spec.Wasm)
	if err != nil {
		code, section = spec.Wasm, nil
	}
	var files fs.FS
	if section != nil {
		bfs, err := bundlefs.New(section)
		if err != nil {
			return nil, fmt.Errorf("plugin %q: files section: %w", spec.Name, err)
		}
		files = bfs
	}
	var codeSum *[32]byte
	if section == nil { // no files section: code is spec.Wasm itself
		codeSum = &sum
	}
	mod, err := eng.Compile(ctx, spec.Name, code, engine.ModuleConfig{
		Files:          files,
		MaxMemoryPages: spec.Limits.MaxMemoryPages,
		Env:            spec.Env,
		Dirs:           spec.Dirs,
		Stdout:         &logLines{log: log, stream: "stdout", level: slog.LevelInfo},
		Stderr:         &logLines{log: log, stream: "stderr", level: slog.LevelWarn},
		Interruptible:  spec.Limits.DeadlineEnforced,
		SHA256:         codeSum,
	})
	if err != nil {
		return nil, err
	}
	compiled := time.Now()
	p.phases.Compile = compiled.Sub(start)
	p.mod = mod
	p.hasJobs = mod.HasExport(abi.ExportJob)
	p.pool = newPool(p, mod, spec.Pool, spec.Limits, rt.wd, log)
	min := spec.Pool.Min
	if min < 1 {
		// Instantiate once even with Min 0: the ABI version is read from an
		// instance, and a plugin that cannot start must fail its load.
		p.pool.cfg.Min = 1
	}
	// The first instances are made in parallel: on a reload, this is most
	// of the time between the write and the new version serving.
	if _, err := p.pool.grow(ctx, p.pool.cfg.Min, runtime.GOMAXPROCS(0)); err != nil {
		_ = p.pool.drain(context.Background())
		_ = mod.Close(context.Background())
		return nil, err
	}
	p.pool.cfg.Min = min
	p.loadedAt = time.Now()
	p.loadTime = p.loadedAt.Sub(start)
	p.phases.Instantiate = p.loadedAt.Sub(compiled)
	return p, nil
}

// Name is the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Hash is the hex SHA-256 of the module bytes: the plugin's version.
func (p *Plugin) Hash() string { return p.hash }

// LoadedAt is when the plugin finished loading.
func (p *Plugin) LoadedAt() time.Time { return p.loadedAt }

// LoadDuration is how long Load took (compile, or cache hit, plus warm-up).
func (p *Plugin) LoadDuration() time.Duration { return p.loadTime }

// Engine is the name of the engine running the plugin.
func (p *Plugin) Engine() string { return p.engine }

// DeadlineMode says how the plugin's deadline is enforced in guest code:
// "instrumented" (loop instrumentation), "guarded" (the engine's own
// interruption, slower), "epoch" (wasmtime) or "off" (deadline_enforced =
// false: host calls still honour it, guest loops do not).
func (p *Plugin) DeadlineMode() string {
	if m, ok := p.mod.(interface{ Mode() string }); ok {
		return m.Mode()
	}
	return "unknown"
}

// HasJobs reports whether the plugin exports a job handler.
func (p *Plugin) HasJobs() bool { return p.hasJobs }

// Stats returns a snapshot of the plugin's pool.
func (p *Plugin) Stats() PoolStats { return p.pool.stats() }

// Handle runs one request. req is an encoded abi.Request; the encoded
// response is appended to resp[:0] and returned. Errors (errors.Is): engine.ErrPoolExhausted,
// engine.ErrPoolClosed, engine.ErrInterrupted (deadline), engine.ErrTrap,
// engine.ErrResponseTooLarge.
func (p *Plugin) Handle(ctx context.Context, req []byte, resp []byte) ([]byte, error) {
	return p.pool.call(ctx, abi.ExportHandle, abi.RequestIDOf(req), req, resp)
}

// RunJob runs one job on the plugin's job export. A trap or deadline is
// reported as an error; the runner retries it.
func (p *Plugin) RunJob(ctx context.Context, job *abi.Job) (abi.JobResult, error) {
	if !p.hasJobs {
		return abi.JobResult{}, fmt.Errorf("plugin %q: %w: %s is not exported", p.name, engine.ErrMissingExport, abi.ExportJob)
	}
	msg := abi.AppendJob(nil, job)
	out, err := p.pool.call(ctx, jobExport, job.ID, msg, nil)
	if err != nil {
		return abi.JobResult{}, err
	}
	var res abi.JobResult
	if err := abi.DecodeJobResult(out, &res); err != nil {
		return abi.JobResult{}, fmt.Errorf("plugin %q: job %s: %w", p.name, job.ID, err)
	}
	return res, nil
}

// Drain stops new calls, lets in-flight calls finish (until ctx ends), then
// closes every instance and the compiled module.
func (p *Plugin) Drain(ctx context.Context) error {
	err := p.pool.drain(ctx)
	if cerr := p.mod.Close(context.Background()); err == nil {
		err = cerr
	}
	return err
}

// logLines routes guest stdout/stderr into the structured log.
type logLines struct {
	log    *slog.Logger
	stream string
	level  slog.Level
}

func (l *logLines) WriteLine(line []byte) {
	l.log.Log(context.Background(), l.level, string(line), "stream", l.stream)
}
