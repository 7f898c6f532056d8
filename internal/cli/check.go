package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/server"
)

// check validates the configuration and every plugin: manifest syntax and
// values, grants against the configured databases, and a real load of each
// module (compile, ABI validation, one instance initialized), then route
// conflicts between plugins. It prints one line per problem (file:key or
// plugin: reason) and fails when there is any.
func (e *Env) check(ctx context.Context, args []string) error {
	fs := e.flagSet("check", "[-config file] [-plugins dir]")
	var cf configFlags
	cf.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: check takes no arguments (got %q)", ErrUsage, fs.Args())
	}
	out := e.Stdout
	cfg, unknown, err := e.loadConfig(&cf)
	if err != nil {
		fmt.Fprintln(out, "config: FAIL")
		n := printProblems(out, err)
		fmt.Fprintf(out, "%d problem(s)\n", n)
		return errReported
	}
	name := cfg.File
	if name == "" {
		name = "(none: defaults)"
	}
	fmt.Fprintf(out, "config: ok %s\n", name)
	problems := 0
	for _, u := range unknown {
		fmt.Fprintf(out, "  warning: environment variable %s matches no config key\n", u)
	}

	found, discoverProblems, err := config.Discover(cfg.Plugins.Dir)
	if err != nil {
		fmt.Fprintf(out, "plugins: FAIL %v\n", err)
		return errReported
	}
	fmt.Fprintf(out, "plugins: %d in %s\n", len(found), cfg.Plugins.Dir)
	for _, p := range discoverProblems {
		fmt.Fprintf(out, "  FAIL %v\n", p)
		problems++
	}

	// Guest output and pool events would clutter the report; keep errors.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := host.NewRuntime(host.RuntimeOptions{
		Engine: cfg.Plugins.Engine, CacheDir: cfg.Plugins.CompileCacheDir(), Logger: log,
	})
	if err != nil {
		fmt.Fprintf(out, "  FAIL plugins.engine: %v\n", err)
		return errReported
	}
	defer rt.Close(context.Background())
	once := func(s *host.PluginSpec) {
		s.Pool.Min, s.Pool.Max = 1, 1
	}
	var loaded []server.Entry
	defer func() {
		for _, en := range loaded {
			en.Plugin.Drain(context.Background())
		}
	}()
	if len(found) > 0 {
		fmt.Fprintf(out, "loading each plugin once (compiling may take seconds per plugin; %s)...\n", cacheNote(cfg.Plugins.CompileCacheDir()))
	}
	// Plugins load a few at a time; each is reported in directory order
	// as soon as it and those before it are done.
	server.LoadPlugins(ctx, cfg, rt, found, once, func(pf config.PluginFile, en server.Entry, err error, took time.Duration) {
		if ctx.Err() != nil {
			if err == nil {
				loaded = append(loaded, en) // drained on the way out
			}
			return
		}
		if err != nil {
			fmt.Fprintf(out, "  FAIL %s: %s\n", pf.Name, indentProblems(pf.Name, err))
			problems++
			return
		}
		loaded = append(loaded, en)
		var notes []string
		if len(en.Manifest.Jobs) > 0 {
			if hj, ok := en.Plugin.(interface{ HasJobs() bool }); ok && !hj.HasJobs() {
				fmt.Fprintf(out, "  FAIL %s: manifest declares [[jobs]] but the module does not export wasmcorn_job\n", pf.Name)
				problems++
				return
			}
			notes = append(notes, fmt.Sprintf("%d job queue(s)", len(en.Manifest.Jobs)))
		}
		if len(en.Manifest.Periodic) > 0 {
			notes = append(notes, fmt.Sprintf("%d periodic job(s)", len(en.Manifest.Periodic)))
		}
		if pf.Manifest == "" {
			notes = append(notes, "no manifest")
		}
		fmt.Fprintf(out, "  ok   %s (%s, %s, %d ms%s)\n", pf.Name, shortHash(en.Plugin.Hash()), en.Plugin.Engine(),
			took.Milliseconds(), joinNotes(notes))
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	set, rejected := server.NewSet(loaded, nil)
	for _, f := range set.Failures() {
		fmt.Fprintf(out, "  FAIL %s: %s\n", f.Plugin, f.Err)
		problems++
	}
	_ = rejected // drained with the rest by the deferred loop
	// A queue has one consumer; serve ignores a second plugin's [[jobs]]
	// for it (plugins in name order, as serve takes them).
	consumer := map[string]string{}
	for _, p := range set.Plugins() {
		name := p.Name()
		m, _ := set.Manifest(name)
		for _, j := range m.Jobs {
			if first, ok := consumer[j.Queue]; ok {
				fmt.Fprintf(out, "  FAIL %s: queue %q is already consumed by plugin %s ([[jobs]] in both manifests)\n", name, j.Queue, first)
				problems++
				continue
			}
			consumer[j.Queue] = name
		}
	}
	for _, r := range set.Routes() {
		fmt.Fprintf(out, "  route %s\n", r)
	}
	if problems > 0 {
		fmt.Fprintf(out, "%d problem(s)\n", problems)
		return errReported
	}
	fmt.Fprintln(out, "all ok")
	return nil
}

func cacheNote(dir string) string {
	if dir == "" {
		return "compile cache off"
	}
	return "compiled code cached in " + dir
}

func joinNotes(n []string) string {
	if len(n) == 0 {
		return ""
	}
	return ", " + strings.Join(n, ", ")
}

// indentProblems formats a (possibly joined) error for one report line,
// continuation lines indented, without repeating the plugin name prefix.
func indentProblems(plugin string, err error) string {
	var lines []string
	for _, e := range leafErrors(err) {
		lines = append(lines, strings.TrimPrefix(e.Error(), "plugin "+plugin+": "))
	}
	return strings.Join(lines, "\n         ")
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
