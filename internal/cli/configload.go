package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/wasmcorn/wasmcorn/internal/config"
)

// DefaultConfigFile is read when present and no -config flag or
// WASMCORN_CONFIG names another file.
const DefaultConfigFile = "wasmcorn.toml"

// configFlags are the flags serve and check share.
type configFlags struct {
	file, listen, plugins, adminListen string
	fs                                 *flag.FlagSet
}

func (f *configFlags) register(fs *flag.FlagSet, serve bool) {
	f.fs = fs
	fs.StringVar(&f.file, "config", "", "config `file` (default $WASMCORN_CONFIG, else ./"+DefaultConfigFile+" when present)")
	fs.StringVar(&f.plugins, "plugins", "", "plugins `dir`ectory (overrides plugins.dir)")
	if serve {
		fs.StringVar(&f.listen, "listen", "", "public `address` host:port (overrides server.listen)")
		fs.StringVar(&f.adminListen, "admin-listen", "", "admin `address` host:port, \"\" to disable (overrides admin.listen)")
	}
}

func (f *configFlags) isSet(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}

// loadConfig resolves the config file, applies the environment and the
// flags, and validates. It returns the unknown WASMCORN_* variables for
// the caller to log. Validation problems are returned joined, one per
// line, each naming file and key.
func (e *Env) loadConfig(f *configFlags) (*config.Config, []string, error) {
	path := f.file
	if path == "" {
		path = e.getenv(config.EnvConfigFile)
	}
	var cfg *config.Config
	switch {
	case path != "":
		c, err := config.Load(path)
		if err != nil {
			return nil, nil, err
		}
		cfg = c
	default:
		if _, err := os.Stat(DefaultConfigFile); err == nil {
			c, err := config.Load(DefaultConfigFile)
			if err != nil {
				return nil, nil, err
			}
			cfg = c
		} else {
			cfg = config.Default()
		}
	}
	unknown, err := config.ApplyEnv(cfg, e.Environ)
	if err != nil {
		return nil, nil, err
	}
	if f.listen != "" {
		cfg.Server.Listen = f.listen
	}
	if f.plugins != "" {
		cfg.Plugins.Dir = f.plugins
	}
	if f.isSet("admin-listen") {
		cfg.Admin.Listen = f.adminListen
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, unknown, nil
}

// printProblems prints each joined error of err on its own line.
func printProblems(w io.Writer, err error) int {
	problems := leafErrors(err)
	for _, e := range problems {
		fmt.Fprintf(w, "  %s\n", e)
	}
	return len(problems)
}

// leafErrors flattens a tree of joined errors (errors.Join, or any error
// with Unwrap() []error) into its leaves, in order.
func leafErrors(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var leaves []error
	for _, e := range j.Unwrap() {
		leaves = append(leaves, leafErrors(e)...)
	}
	return leaves
}

// newLogger builds the process logger from [log].
func newLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	name := strings.ToLower(c.Level)
	if name == "warning" {
		name = "warn"
	}
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, errors.New("log.format: want text or json")
}
