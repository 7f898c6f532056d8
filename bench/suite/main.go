package suite

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/native"
)

// Main is the benchmark's command line, for `wasmcorn bench` and
// bench/cmd/wcbench; args are the arguments after the command name:
//
//	[flags]            run the suite (see -h)
//	native [flags]     run only the native target server (bench/native)
//
// When the environment carries a native server's flags (the suite
// re-executes its own binary to start the native target), Main runs that
// server instead and ignores args.
func Main(ctx context.Context, args []string) error {
	if handled, err := MaybeRunNative(ctx); handled {
		return err
	}
	if len(args) > 0 && args[0] == "native" {
		return native.Main(ctx, args[1:])
	}
	return runCLI(ctx, args, os.Stdout, os.Stderr)
}

// MaybeRunNative runs the native target server when this process was
// started for it by the suite (see Options.NativeCommand), and reports
// whether it did. A test binary calls it from TestMain.
func MaybeRunNative(ctx context.Context) (handled bool, err error) {
	v, ok := os.LookupEnv(nativeEnvVar)
	if !ok {
		return false, nil
	}
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		return true, fmt.Errorf("%s: %w", nativeEnvVar, err)
	}
	return true, native.Main(ctx, args)
}

// selfCommand returns the command that re-enters Main in this binary:
// the executable plus the arguments that preceded args (e.g. "bench").
func selfCommand(args []string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := []string{exe}
	if n := len(os.Args) - len(args); n > 1 && slices.Equal(os.Args[n:], args) {
		cmd = append(cmd, os.Args[1:n]...)
	}
	return cmd, nil
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts      Options
		scenarios listFlag
		targets   listFlag
		engines   listFlag
		outDir    string
		summary   string
		quiet     bool
		verbose   bool
		render    string
	)
	fs.Var(&scenarios, "scenarios", "comma-separated scenarios to run (default all)")
	fs.Var(&targets, "targets", "comma-separated targets: wasmcorn (every engine), wasmcorn-wasmtime, native, gunicorn-sync, gunicorn-gevent, uwsgi (default all available)")
	fs.DurationVar(&opts.Duration, "d", 10*time.Second, "measured duration of each run")
	fs.DurationVar(&opts.Warmup, "w", 3*time.Second, "warm-up before each run")
	fs.IntVar(&opts.Connections, "c", 64, "keep-alive connections (except c10k)")
	fs.IntVar(&opts.Repeat, "repeat", 1, "rounds per scenario (interleaved targets, median reported)")
	fs.IntVar(&opts.C10kConnections, "c10k", C10kConnections, "connections of the c10k scenario")
	fs.StringVar(&opts.Classic, "classic", "auto", "classic stacks: auto (when installed), yes, no")
	fs.StringVar(&opts.Wasmcorn.Binary, "wasmcorn", "", "wasmcorn binary (default: this one, bin/wasmcorn, or built)")
	fs.StringVar(&opts.Wasmcorn.PluginsDir, "plugins", "plugins", "prebuilt plugins directory (used when sources are absent)")
	fs.Var(&engines, "engines", "wasmcorn engines to measure: wazero, wasmtime (default wazero, plus wasmtime with -wasmtime)")
	fs.StringVar(&opts.Wasmcorn.WasmtimeBinary, "wasmtime", "", "wasmcorn binary built with the wasmtime engine (make build-wasmtime); adds target wasmcorn-wasmtime")
	fs.StringVar(&opts.Dir, "dir", "", "working directory (default: a temporary one)")
	fs.BoolVar(&opts.KeepDir, "keep", false, "keep the working directory (logs, configs)")
	fs.StringVar(&outDir, "out", "bench/results", "directory for DATE-HOST.md/.json/.svg")
	fs.StringVar(&summary, "summary", "", "also write the summary here (make bench: bench/RESULTS.md)")
	fs.StringVar(&render, "render", "", "re-render a saved DATE-HOST.json (markdown, SVG, -summary) without running anything")
	fs.BoolVar(&quiet, "q", false, "no progress lines")
	fs.BoolVar(&verbose, "v", false, "log diagnostics to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bench [flags]        run the benchmark suite")
		fmt.Fprintln(stderr, "       bench native [flags]  run the native target server alone")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if render != "" {
		rep, err := LoadReport(render)
		if err != nil {
			return err
		}
		return writeReport(rep, outDir, summary, stdout, stderr)
	}
	opts.Scenarios, opts.Targets, opts.Wasmcorn.Engines = scenarios, targets, engines
	if !quiet {
		opts.Progress = stderr
	}
	if verbose {
		opts.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	cmd, err := selfCommand(args)
	if err != nil {
		return err
	}
	opts.NativeCommand = cmd
	opts.Command = strings.Join(append([]string{"wasmcorn bench"}, args...), " ")
	if c := os.Getenv("WCBENCH_COMMAND"); c != "" {
		opts.Command = c // make bench records itself
	}

	rep, err := Run(ctx, opts)
	if rep == nil {
		return err
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "bench:", err)
	}
	if err != nil && summary != "" {
		// An interrupted or failed run is saved for inspection but does
		// not replace the last complete run's summary.
		fmt.Fprintf(stderr, "bench: run incomplete; %s left as it was\n", summary)
		summary = ""
	}
	if werr := writeReport(rep, outDir, summary, stdout, stderr); werr != nil {
		return werr
	}
	return err
}

// writeReport saves rep under outDir, refreshes the summary when asked,
// and prints the markdown.
func writeReport(rep *Report, outDir, summary string, stdout, stderr io.Writer) error {
	path, err := rep.Save(outDir)
	if err != nil {
		return err
	}
	if summary != "" {
		if err := rep.WriteSummary(summary); err != nil {
			return err
		}
	}
	if err := rep.Markdown(stdout, ""); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "\nsaved %s (and .json, .svg)\n", path)
	if summary != "" {
		fmt.Fprintf(stderr, "updated %s\n", summary)
	}
	return nil
}

// LoadReport reads a report saved by Report.Save (its .json file).
func LoadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	return &r, nil
}
