package wasmtime

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeadersMatchLibrary: include/ holds copies of the C headers that
// wasmtime-go ships next to the static library it links; they must be the
// same version, or struct layouts could silently disagree. After bumping
// wasmtime-go, copy build/include/**/*.h of the new module here again.
func TestHeadersMatchLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/bytecodealliance/wasmtime-go/v39").Output()
	if err != nil {
		t.Fatalf("locate wasmtime-go: %v", err)
	}
	lib := filepath.Join(strings.TrimSpace(string(out)), "build", "include")
	n := 0
	err = filepath.WalkDir("include", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".h") {
			return err
		}
		n++
		ours, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		theirs, err := os.ReadFile(filepath.Join(lib, strings.TrimPrefix(path, "include"+string(filepath.Separator))))
		if err != nil {
			t.Errorf("%s: not in wasmtime-go: %v", path, err)
			return nil
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%s differs from wasmtime-go's copy in %s", path, lib)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no headers in include/")
	}
	if Version == "" {
		t.Fatal("empty WASMTIME_VERSION")
	}
}
