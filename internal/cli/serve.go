package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/server"
)

// serve runs the server until ctx ends (SIGINT/SIGTERM in main). SIGHUP
// reloads the plugins directory, as POST /admin/reload does.
func (e *Env) serve(ctx context.Context, args []string) error {
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
	log, err := newLogger(cfg.Log, e.Stderr)
	if err != nil {
		return err
	}
	begin := time.Now()
	configFile := cfg.File
	if configFile == "" {
		configFile = "(none: defaults)"
	}
	log.Info("wasmcorn starting", "version", versionString(), "go", runtime.Version(), "config", configFile,
		"plugins", cfg.Plugins.Dir, "engine", cfg.Plugins.Engine, "compile_cache", cfg.Plugins.CompileCacheDir())
	for _, name := range unknown {
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
	var srv *server.Server
	srv, err = server.New(server.Options{
		Config:  cfg,
		Logger:  log,
		Version: versionString(),
		Reload: func(ctx context.Context) error {
			return srv.ReloadDir(ctx, cfg, rt, server.LoadOptions{Logger: log})
		},
		OnInstall:   svc.syncJobs,
		BeforeDrain: []func(context.Context) error{svc.stopJobs},
		OnShutdown: []func(context.Context) error{
			rt.Close,
			func(context.Context) error { return svc.close() },
		},
		ExtraStatus: svc.status,
	})
	if err != nil {
		rt.Close(context.Background())
		svc.close()
		return err
	}
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

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading plugins")
				if err := srv.ReloadDir(ctx, cfg, rt, server.LoadOptions{Logger: log}); err != nil {
					log.Warn("SIGHUP reload finished with errors; the previous versions keep serving", "error", err)
				}
			}
		}
	}()
	return srv.Serve(ctx)
}
