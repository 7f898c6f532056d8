package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/internal/config"
)

// Builder compiles plugin projects of one language. Languages register
// one from an init function with RegisterBuilder ("go" is built in).
type Builder struct {
	// Detect reports whether dir is a project of this language.
	Detect func(dir string) bool
	// Build compiles the project in dir into the module file out,
	// writing the toolchain's output to w.
	Build func(ctx context.Context, dir, out string, w io.Writer) error
}

var (
	buildMu  sync.Mutex
	builders = map[string]Builder{}
)

// RegisterBuilder makes `wasmcorn build` handle lang projects with b.
// Registering a language twice panics.
func RegisterBuilder(lang string, b Builder) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, dup := builders[lang]; dup {
		panic("cli: builder registered twice: " + lang)
	}
	builders[lang] = b
}

func init() {
	RegisterBuilder("go", Builder{
		Detect: func(dir string) bool { _, err := os.Stat(filepath.Join(dir, "go.mod")); return err == nil },
		Build:  buildGo,
	})
}

// ManifestFile is the name of a project's manifest; build installs it next
// to the module as NAME.toml.
const ManifestFile = "manifest.toml"

// build implements `wasmcorn build [-o out.wasm] [-plugins dir] [-lang L] DIR`.
func (e *Env) build(ctx context.Context, args []string) error {
	fs := e.flagSet("build", "[-o file.wasm] [-plugins dir] [-lang go] DIR")
	out := fs.String("o", "", "output `file` (default PLUGINS/NAME.wasm, NAME being DIR's base name)")
	plugins := fs.String("plugins", "plugins", "plugins `dir`ectory the module is written to")
	lang := fs.String("lang", "", "project `language` (default: detected)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one project directory", ErrUsage)
	}
	dir := filepath.Clean(pos[0])
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	name := filepath.Base(abs)
	if *out == "" {
		if !config.ValidName(name) {
			return fmt.Errorf("%w: directory name %q is not a valid plugin name; pass -o NAME.wasm", ErrUsage, name)
		}
		*out = filepath.Join(*plugins, name+".wasm")
	} else {
		name = strings.TrimSuffix(filepath.Base(*out), ".wasm")
	}
	b, l, err := pickBuilder(dir, *lang)
	if err != nil {
		return err
	}
	// Validate the manifest before spending time on the build, as it will
	// be installed: relative paths in it (directory grants) are relative to
	// the installed file in the plugins directory, not to the project.
	manifest := filepath.Join(dir, ManifestFile)
	dst := strings.TrimSuffix(*out, ".wasm") + ".toml"
	hasManifest := false
	if data, err := os.ReadFile(manifest); err == nil {
		m, err := config.ParseManifest(dst, data)
		if err == nil {
			err = m.Validate()
		}
		if err != nil {
			fmt.Fprintf(e.Stderr, "wasmcorn: invalid manifest %s (checked as installed at %s):\n", manifest, dst)
			printProblems(e.Stderr, err)
			return errReported
		}
		hasManifest = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read manifest: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "building %s (%s) -> %s ...\n", dir, l, *out)
	start := time.Now()
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*.tmp")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := b.Build(ctx, dir, tmp.Name(), e.Stderr); err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "built %s (%s) in %s\n", *out, config.ByteSize(fi.Size()).Human(), time.Since(start).Round(100*time.Millisecond))
	if hasManifest {
		f, err := os.Open(manifest)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := writeAtomic(dst, f); err != nil {
			return fmt.Errorf("install manifest: %w", err)
		}
		fmt.Fprintf(e.Stdout, "installed %s as %s\n", manifest, dst)
	}
	return nil
}

func pickBuilder(dir, lang string) (Builder, string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if lang != "" {
		b, ok := builders[lang]
		if !ok {
			return Builder{}, "", fmt.Errorf("%w: unknown language %q (known: %s)", ErrUsage, lang, strings.Join(sortedNames(builders), ", "))
		}
		return b, lang, nil
	}
	for _, l := range sortedNames(builders) {
		if builders[l].Detect(dir) {
			return builders[l], l, nil
		}
	}
	return Builder{}, "", fmt.Errorf("%s: not a plugin project of a known language (%s); pass -lang", dir, strings.Join(sortedNames(builders), ", "))
}

// buildGo runs `go build -buildmode=c-shared` for wasip1/wasm in dir.
func buildGo(ctx context.Context, dir, out string, w io.Writer) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goBin); serr != nil {
			return fmt.Errorf("the go command is not in PATH (needed to build Go plugins): %w", err)
		}
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-o", absOut, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}
