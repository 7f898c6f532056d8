package pyplugin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/internal/cli"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"app.py", map[string]string{"app.py": ""}, true},
		{"pyproject with tool.wasmcorn", map[string]string{"pyproject.toml": "[tool.wasmcorn]\napp = \"main:app\"\n"}, true},
		{"plain pyproject", map[string]string{"pyproject.toml": "[project]\nname = \"x\"\n"}, false},
		{"go project", map[string]string{"go.mod": "module x\n", "main.go": "package main\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := Detect(dir); got != tt.want {
				t.Fatalf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFindRepo(t *testing.T) {
	root, err := FindRepo(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(toolPath(root)); err != nil {
		t.Fatalf("FindRepo = %s without the tool", root)
	}
	t.Setenv("WASMCORN_REPO", "")
	t.Chdir(t.TempDir())
	if _, err := FindRepo(t.TempDir()); err == nil {
		t.Fatal("FindRepo found a checkout outside any")
	}
}

// TestNewPython scaffolds a project with `wasmcorn new python` and runs
// its own native test.
func TestNewPython(t *testing.T) {
	root, err := FindRepo(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(Python); err != nil {
		t.Skip(Python + " not installed")
	}
	dir := filepath.Join(t.TempDir(), "greeter")
	var out, errOut syncBuf
	env := &cli.Env{Stdout: &out, Stderr: &errOut}
	if err := env.Run(context.Background(), []string{"new", "python", "greeter", "-dir", dir, "-repo", root}); err != nil {
		t.Fatalf("new: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	for _, f := range []string{"app.py", "pyproject.toml", "manifest.toml", "test_app.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("scaffold lacks %s", f)
		}
	}
	if !Detect(dir) {
		t.Fatal("the scaffold is not detected as a Python project")
	}
	cmd := exec.Command(Python, "-m", "pytest", "-q", "-p", "no:cacheprovider")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "sdk-python"))
	if msg, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(msg), "1 passed") {
		t.Fatalf("the scaffold's test: %v\n%s", err, msg)
	}
}
