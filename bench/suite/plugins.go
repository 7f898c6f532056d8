package suite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/wasmcorn/wasmcorn/internal/pluginbuild"
)

// The bench's own plugins live in bench/plugins/NAME: Go plugins (a go.mod)
// and Python plugins (an app.py). They are built on demand from the
// repository and cached under the user cache directory, keyed by a hash of
// every input, like internal/pluginbuild does for plugins/.

// pythonBuildTool and pythonRuntime are sdk-python's plugin builder and the
// CPython runtime it links (make python-runtime builds it).
const (
	pythonBuildTool = "sdk-python/tools/wasmcorn_py.py"
	pythonRuntime   = "sdk-python/build/runtime/wasmcorn-python.wasm"
	buildPython     = "/usr/bin/python3.11"
)

var benchBuildMu sync.Mutex

// benchPlugin returns the .wasm of bench/plugins/NAME, building it when its
// inputs changed. A missing toolchain (no repository, no Python runtime)
// is a skip, not an error.
func benchPlugin(ctx context.Context, name string) (string, error) {
	benchBuildMu.Lock()
	defer benchBuildMu.Unlock()
	root, err := pluginbuild.RepoRoot()
	if err != nil {
		return "", skipf("plugin %s: not in the repository (%v)", name, err)
	}
	dir := filepath.Join(root, "bench", "plugins", name)
	python := fileExists(filepath.Join(dir, "app.py"))
	if !python && !fileExists(filepath.Join(dir, "go.mod")) {
		return "", fmt.Errorf("bench plugin %s: %s has neither go.mod nor app.py", name, dir)
	}
	inputs := []string{dir}
	if python {
		if !fileExists(filepath.Join(root, pythonRuntime)) {
			return "", skipf("plugin %s: no Python runtime (%s); run make python-runtime", name, pythonRuntime)
		}
		if !fileExists(buildPython) {
			return "", skipf("plugin %s: %s not installed", name, buildPython)
		}
		inputs = append(inputs, filepath.Join(root, "sdk-python", "wasmcorn"), filepath.Join(root, pythonBuildTool),
			filepath.Join(root, "sdk-python", "build", "runtime", "BUILDINFO"))
	} else {
		inputs = append(inputs, filepath.Join(root, "sdk-go"), filepath.Join(root, "abi"), filepath.Join(root, "go.mod"))
	}
	sum, err := hashInputs(inputs)
	if err != nil {
		return "", fmt.Errorf("bench plugin %s: hash sources: %w", name, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "wasmcorn", "bench-plugins")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(cache, name+"-"+sum+".wasm")
	if fileExists(out) {
		return out, nil
	}
	tmp := out + ".tmp"
	var cmd *exec.Cmd
	if python {
		cmd = exec.CommandContext(ctx, buildPython, filepath.Join(root, pythonBuildTool), "build", dir, "-o", tmp, "--wizer", "auto")
		cmd.Dir = root
	} else {
		cmd = exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", tmp, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS="+pluginbuild.GoFlags)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build bench plugin %s: %w\n%s", name, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	// Older builds of this plugin are garbage now.
	if old, _ := filepath.Glob(filepath.Join(cache, name+"-*.wasm")); len(old) > 0 {
		for _, o := range old {
			if o != out {
				os.Remove(o)
			}
		}
	}
	return out, nil
}

// hashInputs hashes the paths and contents of the regular files under
// paths (files or directories), skipping caches and build output, plus the
// Go version that builds them.
func hashInputs(paths []string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, p := range paths {
		err := filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "__pycache__" || n == "testdata" || strings.HasPrefix(n, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || strings.HasSuffix(f, ".wasm") || strings.HasSuffix(f, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %d\n", f, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
