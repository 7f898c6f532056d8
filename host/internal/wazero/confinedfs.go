package wazero

import (
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// confinedFS is a read-write directory grant that the guest cannot leave.
// wazero's directory mount joins guest paths onto the host directory and
// lets the host follow symbolic links, refusing only links to absolute
// paths: a guest could create "x" -> "../../../etc" in its grant and read
// or write the host's /etc through it. So the guest may not create
// symbolic links, nor hard links (link(2) of a symbolic link makes another
// one elsewhere in the tree), nor move a symbolic link (a relative target
// means something else at another depth). Links the operator put in the
// directory are followed: they are part of the grant. Read-only grants
// need none of this; wazero refuses every write to them.
type confinedFS struct {
	experimentalsys.FS
}

func newConfinedFS(dir string) experimentalsys.FS { return confinedFS{sysfs.DirFS(dir)} }

// Symlink refuses to create a symbolic link.
func (confinedFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Link refuses to create a hard link.
func (confinedFS) Link(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Rename moves anything but a symbolic link.
func (c confinedFS) Rename(from, to string) experimentalsys.Errno {
	st, errno := c.FS.Lstat(from)
	if errno != 0 {
		return errno
	}
	if st.Mode&fs.ModeSymlink != 0 {
		return experimentalsys.EPERM
	}
	return c.FS.Rename(from, to)
}
