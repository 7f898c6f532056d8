// Package pluginbuild builds the repository's plugins from source: the
// examples under plugins/<name> and the hostile ones under
// plugins/testdata/<name>. Compile builds a plugin with the Go toolchain on
// first use and caches the .wasm under os.UserCacheDir()/wasmcorn/plugins,
// keyed by a hash of everything the build reads (the plugin's files, the
// SDK, the abi package, the go.mod files, the Go version and the build
// flags), so `go test ./...` needs no prior `make plugins` and an edit to
// the SDK rebuilds what depends on it.
//
// It does not import package testing, so non-test programs (the benchmark
// suite) use it too; internal/testplugins wraps it for tests.
//
// It is safe for concurrent use by several packages and processes: a build
// holds a per-plugin file lock and publishes its result with an atomic
// rename.
package pluginbuild

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// ModulePath is the root module's path, used to find the repository.
const ModulePath = "github.com/wasmcorn/wasmcorn"

// CommandMarker, on a line of its own in one of a plugin's Go files, builds
// the plugin as a WASI command (no -buildmode=c-shared) instead of a
// reactor; plugins/testdata/noexports uses it.
const CommandMarker = "//wasmcorn:command"

// GoFlags are the GOFLAGS of every plugin build, here and in plugins.mk.
const GoFlags = "-trimpath -buildvcs=false"

// ErrUnknownPlugin is returned when no plugins/<name> or
// plugins/testdata/<name> directory exists.
var ErrUnknownPlugin = errors.New("pluginbuild: no such plugin")

var (
	inProcess sync.Map // name -> *sync.Mutex
	goVersion struct {
		once sync.Once
		v    string
		err  error
	}
	validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

// Compile returns the path of plugin name's cached .wasm, building it if
// needed. The file is shared by every caller: do not modify it.
func Compile(name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("%w: invalid name %q", ErrUnknownPlugin, name)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "plugins", name)
	if !isDir(dir) {
		dir = filepath.Join(root, "plugins", "testdata", name)
		if !isDir(dir) {
			return "", fmt.Errorf("%w: %s (looked in plugins/ and plugins/testdata/ of %s)", ErrUnknownPlugin, name, root)
		}
	}
	mu, _ := inProcess.LoadOrStore(name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	command, err := isCommand(dir)
	if err != nil {
		return "", err
	}
	sum, err := sourceHash(root, dir, command)
	if err != nil {
		return "", fmt.Errorf("pluginbuild: hash sources of %s: %w", name, err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, name+"-"+sum+".wasm")
	if isFile(out) {
		return out, nil
	}
	unlock, err := lockFile(filepath.Join(cache, name+".lock"))
	if err != nil {
		return "", fmt.Errorf("pluginbuild: lock build of %s: %w", name, err)
	}
	defer unlock()
	if isFile(out) { // another process built it while we waited
		return out, nil
	}
	tmp, err := os.CreateTemp(cache, name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := goBuild(goBin, dir, tmp.Name(), command); err != nil {
		return "", fmt.Errorf("pluginbuild: build %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	prune(cache, name, out)
	return out, nil
}

// RepoRoot returns the directory of the root module, found by walking up
// from the working directory (tests run in their package's directory, the
// benchmark suite anywhere in the checkout).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("pluginbuild: no go.mod of module %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// goTool finds the go command and its version (part of the cache key).
func goTool() (string, error) {
	bin, err := exec.LookPath("go")
	if err != nil {
		bin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if !isFile(bin) {
			return "", fmt.Errorf("pluginbuild: go command not found in PATH or GOROOT")
		}
	}
	goVersion.once.Do(func() {
		out, err := exec.Command(bin, "env", "GOVERSION").Output()
		goVersion.v, goVersion.err = strings.TrimSpace(string(out)), err
	})
	if goVersion.err != nil {
		return "", fmt.Errorf("pluginbuild: go env GOVERSION: %w", goVersion.err)
	}
	return bin, nil
}

func isCommand(dir string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return false, err
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if string(bytes.TrimSpace(line)) == CommandMarker {
				return true, nil
			}
		}
	}
	return false, nil
}

// sourceHash hashes what a plugin build reads from the repository.
func sourceHash(root, dir string, command bool) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "go=%s goflags=%s command=%v\n", goVersion.v, GoFlags, command)
	add := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
		return nil
	}
	var files []string
	walk := func(base string, keep func(path string, d fs.DirEntry) bool) error {
		return filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && keep(path, d) {
				files = append(files, path)
			}
			return nil
		})
	}
	goSource := func(path string, d fs.DirEntry) bool {
		n := d.Name()
		return (strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")) ||
			strings.HasSuffix(n, ".s") || n == "go.mod" || n == "go.sum"
	}
	if err := walk(dir, goSource); err != nil {
		return "", err
	}
	if err := walk(filepath.Join(root, "sdk-go"), goSource); err != nil {
		return "", err
	}
	abiFiles, err := filepath.Glob(filepath.Join(root, "abi", "*.go"))
	if err != nil {
		return "", err
	}
	for _, f := range abiFiles {
		if !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	files = append(files, filepath.Join(root, "go.mod"))
	slices.Sort(files)
	files = slices.Compact(files)
	for _, f := range files {
		if err := add(f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func goBuild(goBin, dir, out string, command bool) error {
	args := []string{"build"}
	if !command {
		args = append(args, "-buildmode=c-shared")
	}
	args = append(args, "-o", out, ".")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "GOFLAGS", "GOWORK", "CGO_ENABLED":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS="+GoFlags, "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s in %s: %w\n%s", goBin, strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return nil
}

// CacheDir returns (creating it) the directory holding the built plugins;
// callers may keep derived caches (compiled code) below it.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "wasmcorn", "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pluginbuild: cache directory: %w", err)
	}
	return dir, nil
}

// prune removes stale builds of name (other source versions) that have not
// been modified for a day, so the cache does not grow without bound while
// concurrent runs on other versions keep their files.
func prune(cache, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(cache, name+"-????????????????.wasm"))
	for _, f := range old {
		if f == keep {
			continue
		}
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > 24*time.Hour {
			os.Remove(f)
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
