package wazero

import (
	"os"
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// TestConfinedFS: a read-write grant refuses symbolic and hard links and
// moving a symbolic link, and still moves regular files.
func TestConfinedFS(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "sl")); err != nil {
		t.Fatal(err)
	}
	c := newConfinedFS(dir)
	if e := c.Symlink("../../../../etc", "esc"); e != experimentalsys.EPERM {
		t.Errorf("Symlink: %v, want EPERM", e)
	}
	if e := c.Link("f", "hard"); e != experimentalsys.EPERM {
		t.Errorf("Link: %v, want EPERM", e)
	}
	if e := c.Rename("sl", "sl2"); e != experimentalsys.EPERM {
		t.Errorf("Rename of a symbolic link: %v, want EPERM", e)
	}
	if e := c.Rename("f", "g"); e != 0 {
		t.Errorf("Rename of a file: %v", e)
	}
	if e := c.Rename("missing", "h"); e != experimentalsys.ENOENT {
		t.Errorf("Rename of a missing file: %v, want ENOENT", e)
	}
	for _, name := range []string{"esc", "hard", "sl2", "f"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "g")); err != nil {
		t.Error(err)
	}
}
