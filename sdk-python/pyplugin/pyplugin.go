// Package pyplugin teaches the wasmcorn CLI Python plugins: `wasmcorn
// build` of a Python project and `wasmcorn new python NAME`. Importing it
// (for its side effects, from cmd/wasmcorn) registers both with
// internal/cli.
//
// Both run sdk-python/tools/wasmcorn_py.py under Debian's CPython 3.11
// (the bytecode version of the runtime), from the wasmcorn checkout the
// project lives in or the one given with -repo; the runtime itself comes
// from `make python-runtime` (sdk-python/build/runtime).
package pyplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wasmcorn/wasmcorn/internal/cli"
)

// Python is the interpreter that runs the tool; override with
// WASMCORN_PYTHON.
const Python = "/usr/bin/python3.11"

// Lang is the language name the CLI knows Python projects by.
const Lang = "python"

// ErrNoCheckout is returned when no wasmcorn checkout with the Python SDK
// can be found for a project.
var ErrNoCheckout = errors.New("no wasmcorn checkout with sdk-python found")

func init() {
	cli.RegisterBuilder(Lang, cli.Builder{Detect: Detect, Build: Build})
	cli.RegisterScaffolder(Lang, cli.Scaffolder{
		Summary: "a Python app with wasmcorn.App routes (app.py, pyproject.toml, manifest.toml, test_app.py)",
		Create:  Create,
	})
}

// Detect reports whether dir is a Python plugin project: it has an app.py,
// or a pyproject.toml with a [tool.wasmcorn] table.
func Detect(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "app.py")); err == nil {
		return true
	}
	b, err := os.ReadFile(filepath.Join(dir, "pyproject.toml"))
	return err == nil && strings.Contains(string(b), "[tool.wasmcorn]")
}

// Build builds the project in dir into the plugin module out (runtime,
// files section, wizer pre-initialization when wizer is installed).
func Build(ctx context.Context, dir, out string, w io.Writer) error {
	repo, err := FindRepo(dir)
	if err != nil {
		return err
	}
	return run(ctx, repo, w, "build", dir, "-o", out)
}

// Create scaffolds a Python plugin project named name in dir.
func Create(dir, name string, opts cli.NewOptions) ([]string, error) {
	repo := opts.Repo
	if repo == "" {
		var err error
		if repo, err = FindRepo(dir); err != nil {
			return nil, err
		}
	}
	var out strings.Builder
	if err := run(context.Background(), repo, &out, "new", name, dir); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out.String())
	}
	var files []string
	for _, f := range []string{"app.py", "pyproject.toml", "manifest.toml", "test_app.py"} {
		files = append(files, filepath.Join(dir, f))
	}
	return files, nil
}

// FindRepo returns the wasmcorn checkout holding sdk-python: the first of
// $WASMCORN_REPO, dir and its parents, and the working directory and its
// parents that has sdk-python/tools/wasmcorn_py.py.
func FindRepo(dir string) (string, error) {
	var starts []string
	if r := os.Getenv("WASMCORN_REPO"); r != "" {
		starts = append(starts, r)
	}
	starts = append(starts, dir)
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, s := range starts {
		d, err := filepath.Abs(s)
		if err != nil {
			continue
		}
		for {
			if _, err := os.Stat(toolPath(d)); err == nil {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("%w (from %s or the working directory; set WASMCORN_REPO)", ErrNoCheckout, dir)
}

func toolPath(repo string) string {
	return filepath.Join(repo, "sdk-python", "tools", "wasmcorn_py.py")
}

func run(ctx context.Context, repo string, w io.Writer, args ...string) error {
	py := os.Getenv("WASMCORN_PYTHON")
	if py == "" {
		py = Python
	}
	if _, err := exec.LookPath(py); err != nil {
		return fmt.Errorf("python plugin %s: %s not found (on Debian: scripts/deps.sh python): %w", args[0], py, err)
	}
	cmd := exec.CommandContext(ctx, py, append([]string{toolPath(repo)}, args...)...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = append(os.Environ(), "WASMCORN_REPO="+repo)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("python plugin %s %s: %w", args[0], args[1], err)
	}
	return nil
}
