package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/upgrade"
	"github.com/wasmcorn/wasmcorn/server"
)

// serve runs the server until ctx ends (SIGINT/SIGTERM in main).
//
// Signals: SIGHUP reloads the config file and the plugins directory (see
// reloadConfig for what a reload can change); SIGUSR2 upgrades the binary:
// the current executable is started again with the same arguments,
// inherits the listeners (internal/upgrade), and once it reports ready this
// process stops accepting, drains and returns nil. A new process that fails
// leaves this one serving.
func (e *Env) serve(ctx context.Context, args []string) (err error) {
	fs := e.flagSet("serve", "[-config file] [-listen addr] [-plugins dir] [-admin-listen addr]")
	var cf configFlags
	cf.register(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: serve takes no arguments (got %q)", ErrUsage, fs.Args())
	}
	cfg, unknown, err := e.loadConfig(&cf)
	if err != nil {
		fmt.Fprintln(e.Stderr, "wasmcorn: invalid configuration:")
		printProblems(e.Stderr, err)
		return errReported
	}
	level := new(slog.LevelVar)
	log, err := newLevelLogger(cfg.Log, e.Stderr, level)
	if err != nil {
		return err
	}
	up, err := upgrade.New(cfg.Server.ReusePort)
	if err != nil {
		return err
	}
	ready := false
	defer func() {
		if !ready && err != nil {
			up.Fail(err.Error())
		}
	}()
	begin := time.Now()
	configFile := cfg.File
	if configFile == "" {
		configFile = "(none: defaults)"
	}
	log.Info("wasmcorn starting", "version", versionString(), "go", runtime.Version(), "config", configFile,
		"plugins", cfg.Plugins.Dir, "engine", cfg.Plugins.Engine, "compile_cache", cfg.Plugins.CompileCacheDir(),
		"pid", os.Getpid(), "upgrade", up.Inherited())
	for _, name := range unknown {
		if strings.HasPrefix(name, "WASMCORN_UPGRADE_") { // internal/upgrade's handover variables
			continue
		}
		log.Warn("environment variable matches no config key; ignored", "name", name)
	}

	svc, err := openServices(ctx, cfg, log)
	if err != nil {
		return err
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{
		Engine:   cfg.Plugins.Engine,
		CacheDir: cfg.Plugins.CompileCacheDir(),
		Services: &svc.host,
		Logger:   log,
	})
	if err != nil {
		svc.close()
		return fmt.Errorf("plugins.engine: %w", err)
	}
	st := &serveState{cfg: cfg, log: log, level: level, rt: rt, env: e, flags: &cf}
	var srv *server.Server
	srv, err = server.New(server.Options{
		Config:      cfg,
		Logger:      log,
		Version:     versionString(),
		Reload:      func(ctx context.Context) error { return st.reloadPlugins(ctx) },
		Listen:      up.Listen,
		OnInstall:   svc.syncJobs,
		BeforeDrain: []func(context.Context) error{svc.stopJobs},
		OnShutdown: []func(context.Context) error{
			rt.Close,
			func(context.Context) error { return svc.close() },
		},
		ExtraStatus: svc.status,
		AdminRoutes: svc.adminRoutes(),
	})
	if err != nil {
		rt.Close(context.Background())
		svc.close()
		return err
	}
	st.srv = srv
	// Bind before loading plugins so an address in use fails at once;
	// connections wait in the backlog until Serve starts.
	if err := srv.Listen(); err != nil {
		rt.Close(context.Background())
		svc.close()
		return err
	}
	set, err := server.LoadDir(ctx, cfg, rt, server.LoadOptions{Logger: log})
	if err != nil {
		rt.Close(context.Background())
		svc.close()
		return err
	}
	srv.Install(set)
	if err := svc.startJobs(); err != nil {
		log.Error("job runner did not start", "error", err)
	}
	log.Info("plugins ready", "serving", len(set.Plugins()), "failed", len(set.Failures()),
		"routes", len(set.Routes()), "startup", time.Since(begin).Round(time.Millisecond))

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx) }()
	for !srv.Serving() {
		select {
		case err := <-served:
			return err
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err := up.Ready(); err != nil {
		log.Warn("upgrade: could not tell the previous process we are ready", "error", err)
	}
	ready = true
	if cfg.Server.PidFile != "" {
		if err := writePidFile(cfg.Server.PidFile); err != nil {
			log.Warn("server.pid_file not written", "error", err)
		} else {
			defer removePidFile(cfg.Server.PidFile)
		}
	}
	st.restartWatch(ctx)
	defer st.stopWatch()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-served:
			return err
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				log.Info("SIGHUP: reloading the config and the plugins")
				st.reloadConfig(ctx)
			case syscall.SIGUSR2:
				if st.upgradeBinary(ctx, up) {
					srv.Handoff()
					st.stopWatch()
					stopServing()
					return <-served
				}
			}
		}
	}
}

// serveState is what the signal handlers and the watcher share.
type serveState struct {
	env   *Env
	flags *configFlags
	log   *slog.Logger
	level *slog.LevelVar
	rt    *host.Runtime
	srv   *server.Server

	mu          sync.Mutex // guards cfg and the watcher
	cfg         *config.Config
	watchCancel context.CancelFunc
	watchDone   chan struct{}
}

func (st *serveState) config() *config.Config {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cfg
}

func (st *serveState) reloadPlugins(ctx context.Context) error {
	return st.srv.ReloadDir(ctx, st.config(), st.rt, server.LoadOptions{Logger: st.log})
}

// restartWatch (re)starts the plugins directory watcher for the current
// config, stopping a running one first.
func (st *serveState) restartWatch(ctx context.Context) {
	st.stopWatch()
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.cfg.Plugins
	if !p.Watch {
		st.log.Info("plugins.watch = false: reload with SIGHUP or POST /admin/reload")
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	st.watchCancel, st.watchDone = cancel, done
	go func() {
		defer close(done)
		err := server.Watch(wctx, server.WatchOptions{
			Dir: p.Dir, Debounce: p.WatchDebounce.D(), Logger: st.log, Reload: st.reloadPlugins})
		if err != nil {
			st.log.Error("plugins directory watcher stopped; reload with SIGHUP or POST /admin/reload", "error", err)
		}
	}()
}

func (st *serveState) stopWatch() {
	st.mu.Lock()
	cancel, done := st.watchCancel, st.watchDone
	st.watchCancel, st.watchDone = nil, nil
	st.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// reloadConfig reads the config file again (with the environment and the
// flags) and applies what can change while serving: log.level,
// [access_log], plugins.dir, plugins.watch and plugins.watch_debounce;
// then it reloads the plugins (their files and manifests). Any other
// change (listeners, backends, engine, server limits) needs a restart or
// a binary upgrade (SIGUSR2): it is logged and not applied. An invalid
// config is logged and the running one is kept.
func (st *serveState) reloadConfig(ctx context.Context) {
	next, _, err := st.env.loadConfig(st.flags)
	if err != nil {
		var b strings.Builder
		printProblems(&b, err)
		st.log.Error("config reload: invalid configuration; keeping the running one", "problems", strings.TrimSpace(b.String()))
	} else {
		cur := st.config()
		merged := *cur
		merged.Log.Level = next.Log.Level
		merged.AccessLog = next.AccessLog
		merged.Plugins.Dir = next.Plugins.Dir
		merged.Plugins.Watch = next.Plugins.Watch
		merged.Plugins.WatchDebounce = next.Plugins.WatchDebounce
		if changed := restartOnly(&merged, next); len(changed) > 0 {
			st.log.Warn("config reload: these changes need a restart (or a binary upgrade with SIGUSR2) and were not applied",
				"keys", strings.Join(changed, ", "))
		}
		if lvl, err := parseLevel(merged.Log.Level); err == nil {
			st.level.Set(lvl)
		}
		st.srv.SetAccessLog(merged.AccessLog)
		watchChanged := merged.Plugins.Dir != cur.Plugins.Dir || merged.Plugins.Watch != cur.Plugins.Watch ||
			merged.Plugins.WatchDebounce != cur.Plugins.WatchDebounce
		st.mu.Lock()
		st.cfg = &merged
		st.mu.Unlock()
		if watchChanged {
			st.restartWatch(ctx)
		}
		st.log.Info("config reload: applied", "log_level", merged.Log.Level, "access_log", merged.AccessLog.Enabled,
			"plugins", merged.Plugins.Dir, "watch", merged.Plugins.Watch)
	}
	if err := st.reloadPlugins(ctx); err != nil {
		st.log.Warn("SIGHUP reload finished with errors; the previous versions keep serving", "error", err)
	}
}

// restartOnly names the top-level config keys (section.key) where a and b
// differ.
func restartOnly(a, b *config.Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if fa.Kind() == reflect.Struct {
			for j := 0; j < fa.NumField(); j++ {
				sub := strings.Split(fa.Type().Field(j).Tag.Get("toml"), ",")[0]
				if !reflect.DeepEqual(fa.Field(j).Interface(), fb.Field(j).Interface()) {
					out = append(out, tag+"."+sub)
				}
			}
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			out = append(out, tag)
		}
	}
	return out
}

// upgradeBinary runs a SIGUSR2 upgrade and reports whether the new
// process took over (this one must then drain and exit).
func (st *serveState) upgradeBinary(ctx context.Context, up *upgrade.Upgrader) bool {
	exe, err := os.Executable()
	if err != nil {
		st.log.Error("SIGUSR2: upgrade impossible: cannot find the executable; still serving", "error", err)
		return false
	}
	timeout := st.config().Server.UpgradeTimeout.D()
	st.log.Info("SIGUSR2: starting the new binary", "executable", exe, "timeout", timeout)
	begin := time.Now()
	proc, err := up.Upgrade(ctx, exe, os.Args[1:], timeout)
	if err != nil {
		st.log.Error("SIGUSR2: upgrade failed; this process keeps serving", "error", err)
		return false
	}
	st.log.Info("SIGUSR2: the new process serves; stopping accepting and draining", "new_pid", proc.Pid,
		"took", time.Since(begin).Round(time.Millisecond))
	proc.Release()
	return true
}

// writePidFile writes this process's id to path atomically.
func writePidFile(path string) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return nil
}

// removePidFile removes path if it still holds this process's id (after
// an upgrade it holds the new process's).
func removePidFile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}

// parseLevel parses log.level ("warning" is "warn").
func parseLevel(name string) (slog.Level, error) {
	var level slog.Level
	name = strings.ToLower(name)
	if name == "warning" {
		name = "warn"
	}
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return 0, fmt.Errorf("log.level: %w", err)
	}
	return level, nil
}

// newLevelLogger is newLogger with a level that can change at runtime.
func newLevelLogger(c config.Log, w io.Writer, level *slog.LevelVar) (*slog.Logger, error) {
	lvl, err := parseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	level.Set(lvl)
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, errors.New("log.format: want text or json")
}
