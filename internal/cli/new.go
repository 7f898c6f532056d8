package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"text/template"

	"github.com/wasmcorn/wasmcorn/internal/config"
)

// Scaffolder creates a plugin project for one language. Languages register
// one from an init function with RegisterScaffolder ("go" is built in; the
// Python SDK adds "python").
type Scaffolder struct {
	// Summary describes the project, for `wasmcorn new -h`.
	Summary string
	// Create writes the project of plugin name into dir, which exists and
	// is empty, and returns the paths it wrote.
	Create func(dir, name string, opts NewOptions) ([]string, error)
}

// NewOptions are the `wasmcorn new` options a Scaffolder receives.
type NewOptions struct {
	// Repo is the wasmcorn repository root when the SDK must be used from
	// a local checkout; "" when none was found or given.
	Repo string
}

var (
	scaffoldMu  sync.Mutex
	scaffolders = map[string]Scaffolder{}
)

// RegisterScaffolder makes `wasmcorn new LANG NAME` use s. Registering a
// language twice panics.
func RegisterScaffolder(lang string, s Scaffolder) {
	scaffoldMu.Lock()
	defer scaffoldMu.Unlock()
	if _, dup := scaffolders[lang]; dup {
		panic("cli: scaffolder registered twice: " + lang)
	}
	scaffolders[lang] = s
}

func scaffolderNames() []string {
	scaffoldMu.Lock()
	defer scaffoldMu.Unlock()
	return sortedNames(scaffolders)
}

func init() {
	RegisterScaffolder("go", Scaffolder{
		Summary: "a Go net/http handler built with the wasmcorn Go SDK (main.go, go.mod, manifest.toml)",
		Create:  scaffoldGo,
	})
}

// newPlugin implements `wasmcorn new [LANG] NAME [-dir DIR] [-repo DIR]`.
func (e *Env) newPlugin(ctx context.Context, args []string) error {
	fs := e.flagSet("new", "[LANG] NAME [-dir dir] [-repo dir]")
	dir := fs.String("dir", "", "project `directory` (default plugins/NAME)")
	repo := fs.String("repo", "", "wasmcorn repository `root` whose SDK the project uses (default: found above the project or the working directory)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	lang := "go"
	switch len(pos) {
	case 1:
	case 2:
		lang = pos[0]
		pos = pos[1:]
	default:
		fs.Usage()
		return fmt.Errorf("%w: want [LANG] NAME", ErrUsage)
	}
	name := pos[0]
	scaffoldMu.Lock()
	sc, ok := scaffolders[lang]
	scaffoldMu.Unlock()
	if !ok {
		return fmt.Errorf("%w: unknown language %q (known: %s)", ErrUsage, lang, strings.Join(scaffolderNames(), ", "))
	}
	if !config.ValidName(name) {
		return fmt.Errorf("%w: plugin name %q must be 1-64 lower-case letters, digits, - and _", ErrUsage, name)
	}
	if *dir == "" {
		*dir = filepath.Join("plugins", name)
	}
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s already exists and is not empty", *dir)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	opts := NewOptions{Repo: *repo}
	if opts.Repo == "" {
		opts.Repo = findRepo(*dir)
	}
	files, err := sc.Create(*dir, name, opts)
	if err != nil {
		return fmt.Errorf("new %s plugin %s: %w", lang, name, err)
	}
	fmt.Fprintf(e.Stdout, "created %s plugin %s in %s:\n", lang, name, *dir)
	for _, f := range files {
		fmt.Fprintf(e.Stdout, "  %s\n", f)
	}
	fmt.Fprintf(e.Stdout, "next: wasmcorn build %s && wasmcorn serve   (then GET /%s)\n", *dir, name)
	return nil
}

// findRepo looks for the wasmcorn repository root above dir, then above
// the working directory; "" when there is none.
func findRepo(dir string) string {
	starts := []string{dir, "."}
	for _, s := range starts {
		abs, err := filepath.Abs(s)
		if err != nil {
			continue
		}
		for d := abs; ; d = filepath.Dir(d) {
			if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && moduleLine.FindSubmatch(b) != nil &&
				string(moduleLine.FindSubmatch(b)[1]) == rootModule {
				return d
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return ""
}

const rootModule = "github.com/wasmcorn/wasmcorn"

var moduleLine = regexp.MustCompile(`(?m)^module\s+"?([^"\s]+)"?\s*$`)

// ErrNoSDK is returned by the Go scaffolder when no local SDK is known.
var ErrNoSDK = errors.New("cannot find the wasmcorn repository for the Go SDK (it is not published as a module yet); pass -repo /path/to/wasmcorn")

func scaffoldGo(dir, name string, opts NewOptions) ([]string, error) {
	if opts.Repo == "" {
		return nil, ErrNoSDK
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(absDir, opts.Repo)
	if err != nil {
		return nil, err
	}
	data := map[string]string{
		"Name":      name,
		"Repo":      filepath.ToSlash(rel),
		"GoVersion": goVersion(),
	}
	var written []string
	for _, f := range []struct{ name, tmpl string }{
		{"go.mod", goModTemplate}, {"main.go", mainGoTemplate}, {"manifest.toml", manifestTemplate},
	} {
		var buf bytes.Buffer
		if err := template.Must(template.New(f.name).Parse(f.tmpl)).Execute(&buf, data); err != nil {
			return written, err
		}
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// goVersion is the go directive for new projects: this binary's Go
// version without a pre-release suffix.
func goVersion() string {
	v := strings.TrimPrefix(runtime.Version(), "go")
	if i := strings.IndexAny(v, " -+"); i >= 0 {
		v = v[:i]
	}
	if !regexp.MustCompile(`^1\.\d+(\.\d+)?$`).MatchString(v) {
		return "1.26"
	}
	return v
}

const goModTemplate = `module wasmcorn-plugin/{{.Name}}

go {{.GoVersion}}

require (
	github.com/wasmcorn/wasmcorn v0.0.0
	github.com/wasmcorn/wasmcorn/sdk-go v0.0.0
)

// The SDK comes from a local wasmcorn checkout until it is published.
replace (
	github.com/wasmcorn/wasmcorn => {{.Repo}}
	github.com/wasmcorn/wasmcorn/sdk-go => {{.Repo}}/sdk-go
)
`

const mainGoTemplate = `// Command {{.Name}} is a wasmcorn plugin: an ordinary net/http handler
// compiled to WebAssembly. Build it with
//
//	wasmcorn build .
//
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) and run it with
// wasmcorn serve. The handler is registered from init: main never runs.
package main

import (
	"encoding/json"
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{{.Name}}", index)
	mux.HandleFunc("GET /{{.Name}}/hello/{who}", hello)
	wasmcorn.Serve(mux)
}

func index(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"plugin":     "{{.Name}}",
		"request_id": wasmcorn.RequestID(r),
	})
}

func hello(w http.ResponseWriter, r *http.Request) {
	wasmcorn.Logger().Info("greeting", "who", r.PathValue("who"))
	writeJSON(w, http.StatusOK, map[string]string{"message": "hello, " + r.PathValue("who")})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {}
`

const manifestTemplate = `# Manifest of the {{.Name}} plugin. "wasmcorn build" installs it next to
# {{.Name}}.wasm as {{.Name}}.toml. Every key is optional; unknown keys are
# errors ("wasmcorn check" reports them).

# Without any [[routes]] the plugin serves /{{.Name}} and everything below
# /{{.Name}}/ for every method. Patterns: /items/{id} (one segment), /files/*
# (everything below). Route parameters reach the handler as request headers
# X-Wasmcorn-Param-<name>.
[[routes]]
path = "/{{.Name}}"
methods = ["GET"]

[[routes]]
path = "/{{.Name}}/*"

[pool]
min = 1              # instances created at load and kept warm
max = 8              # at most this many run at once; others wait max_wait, then 503
max_wait = "1s"

[limits]
timeout = "10s"              # per request; a guest past it is stopped (504)
max_memory_bytes = "128MiB"  # linear memory per instance

# [grants]
# databases = ["main"]              # [databases.main] of wasmcorn.toml
# queues = ["emails"]               # queues this plugin may submit to
# config = { greeting = "hello" }   # values for wasmcorn.Config(key)
`

// writeAtomic writes data to path through a temporary file and a rename,
// so a watcher never sees a partial file.
func writeAtomic(path string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
