package wasmtime

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Wasmtime's WASI can only preopen host directories, so a module's bundled
// files (engine.ModuleConfig.Files) are written once per compiled module to
// a directory named filesPrefix + PID + "-" + random, preopened read-only in
// every instance and removed when the module closes. Directories left by a
// process that died are removed by the next engine created on the same
// base directory.
const filesPrefix = "wasmcorn-files-p"

// filesBase is where bundled files are written: the engine's cache
// directory when it has one, else the system's temporary directory.
func (e *Engine) filesBase() string {
	if e.cacheDir != "" {
		return filepath.Join(e.cacheDir, "files")
	}
	return os.TempDir()
}

// materialize writes files into a new directory under base.
func materialize(base string, files fs.FS) (string, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(base, filesPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	if err := os.CopyFS(dir, files); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("write bundled files to %s: %w", dir, err)
	}
	return dir, nil
}

// removeStaleFiles removes the bundled-file directories under base whose
// process is gone.
func removeStaleFiles(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, ent := range entries {
		rest, ok := strings.CutPrefix(ent.Name(), filesPrefix)
		if !ok || !ent.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			os.RemoveAll(filepath.Join(base, ent.Name()))
		}
	}
}
