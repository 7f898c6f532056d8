// Package cli is the wasmcorn command line: serve, check, new, build and
// version. cmd/wasmcorn only calls Run and maps its error to an exit code
// with ExitCode; everything else lives here so it can be tested in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/wasmcorn/wasmcorn/bench/suite"
)

// Version is the version printed by `wasmcorn version` and shown on the
// status page. Release builds set it with
// -ldflags "-X github.com/wasmcorn/wasmcorn/internal/cli.Version=v1.2.3";
// otherwise it is the module version from the build info, or "dev".
var Version = ""

// ErrUsage wraps command-line mistakes (unknown command or flag, missing
// argument); ExitCode maps it to 2.
var ErrUsage = errors.New("usage")

// errReported marks an error whose details were already printed (check's
// list of problems): Run prints nothing more for it.
var errReported = errors.New("problems reported above")

// ExitCode maps Run's error to a process exit code: 0 for nil, 2 for a
// usage error, 1 for anything else.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	default:
		return 1
	}
}

// Env is what a command run sees of the process. The zero value is not
// usable; Run uses the real process.
type Env struct {
	Stdout, Stderr io.Writer
	// Environ is the environment, os.Environ() form.
	Environ []string
}

// Run runs the command line args (without the program name) with the
// process's stdio and environment. Errors are printed to stderr before
// being returned.
func Run(ctx context.Context, args []string) error {
	e := &Env{Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ()}
	return e.Run(ctx, args)
}

type command struct {
	name, args, summary string
	run                 func(e *Env, ctx context.Context, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"serve", "[-config file] [-listen addr] [-plugins dir] [-admin-listen addr]", "run the server", (*Env).serve},
		{"check", "[-config file] [-plugins dir]", "validate the config, every manifest, and load every plugin once", (*Env).check},
		{"new", "[LANG] NAME [-dir dir]", "scaffold a plugin project", (*Env).newPlugin},
		{"build", "[-o file.wasm] [-plugins dir] DIR", "compile a plugin project to a .wasm in the plugins directory", (*Env).build},
		{"jobs", "[-config file] [-admin addr] [stats | dead Q [-n N] | requeue Q (-all | ID...) | purge Q (-all | ID...)]",
			"show the running server's job queues; list, requeue or purge dead letters", (*Env).jobsCmd},
		{"bench", "[flags] | native [flags]", "run the benchmark suite (same as bin/wcbench; -h lists flags)", func(_ *Env, ctx context.Context, args []string) error {
			return suite.Main(ctx, args)
		}},
		{"version", "", "print the version", (*Env).version},
	}
}

// Run runs the command line args with e's stdio and environment.
func (e *Env) Run(ctx context.Context, args []string) error {
	err := e.dispatch(ctx, args)
	if err != nil && !errors.Is(err, errReported) && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(e.Stderr, "wasmcorn:", err)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func (e *Env) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		e.usage(e.Stderr)
		return fmt.Errorf("%w: no command given", ErrUsage)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		e.usage(e.Stdout)
		return nil
	case "-version", "--version":
		return e.version(ctx, nil)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(e, ctx, args[1:])
		}
	}
	e.usage(e.Stderr)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

func (e *Env) usage(w io.Writer) {
	fmt.Fprintf(w, "wasmcorn runs WebAssembly HTTP handlers.\n\nUsage:\n")
	for _, c := range commands {
		summary := c.summary
		if c.name == "new" {
			summary += " (LANG: " + strings.Join(scaffolderNames(), ", ") + "; default go)"
		}
		fmt.Fprintf(w, "  wasmcorn %-8s %s\n  %10s %s\n", c.name, c.args, "", summary)
	}
	fmt.Fprintf(w, "\nConfiguration: -config, else $%s, else ./wasmcorn.toml when present, else defaults;\n"+
		"then WASMCORN_* environment variables (e.g. WASMCORN_SERVER_LISTEN), then flags.\n", "WASMCORN_CONFIG")
}

// flagSet returns a FlagSet for command name that reports to stderr.
func (e *Env) flagSet(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("wasmcorn "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage: wasmcorn %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args with fs, wrapping errors in ErrUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}

// parseInterleaved parses flags that may come before or after the
// positional arguments, returning the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func versionString() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func (e *Env) version(ctx context.Context, args []string) error {
	fs := e.flagSet("version", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "wasmcorn %s (%s %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (e *Env) getenv(name string) string {
	for i := len(e.Environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e.Environ[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}
