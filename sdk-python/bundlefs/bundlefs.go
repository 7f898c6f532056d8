// Package bundlefs gives a plugin the read-only files it carries inside its
// own .wasm: a zip archive in the custom section named SectionName, which
// the host mounts at GuestPath in every instance of the plugin.
//
// Python plugins use it for the standard library, their packages and their
// code (sdk-python/tools/wasmcorn_py.py writes the section), so that one
// .wasm file is the whole deployable plugin and replacing it replaces
// everything. Nothing here is specific to Python: any guest may carry files.
//
// The archive is read once per plugin load. Stored (uncompressed) entries
// alias the section's bytes, deflated ones are inflated once; every
// instance of the plugin then shares the same immutable FS, so the files
// cost host memory once per plugin, not per instance, and never occupy
// guest linear memory unless the guest reads them.
package bundlefs

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// SectionName is the custom section holding a plugin's files (a zip).
const SectionName = "wasmcorn.files"

// GuestPath is where the host mounts the files, read-only.
const GuestPath = "/wasmcorn"

// ErrMalformed is returned (wrapped) for a .wasm whose section structure
// cannot be walked, or an archive that is not a valid zip.
var ErrMalformed = errors.New("bundlefs: malformed input")

// MaxFiles bounds the entries of an archive, MaxBytes its inflated size.
const (
	MaxFiles = 1 << 17
	MaxBytes = 1 << 30
)

// Section returns the contents of the SectionName custom section of the
// WebAssembly binary wasm, or nil when it has none. The result aliases wasm.
// Only the section framing is checked, not the module's validity.
func Section(wasm []byte) ([]byte, error) {
	_, files, err := Split(wasm)
	return files, err
}

// Split separates the SectionName custom section from the rest of the
// module: module is wasm without it (a new slice, or wasm itself when there
// is no such section) and files its contents (aliasing wasm; nil when
// absent). Compiling module instead of wasm lets every plugin built on the
// same runtime share one compiled module (a compilation cache is keyed by
// the bytes), since only their files differ.
func Split(wasm []byte) (module, files []byte, err error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, nil, fmt.Errorf("%w: not a WebAssembly binary", ErrMalformed)
	}
	if v := binary.LittleEndian.Uint32(wasm[4:8]); v != 1 {
		return nil, nil, fmt.Errorf("%w: WebAssembly binary version %d", ErrMalformed, v)
	}
	var found []byte
	start, end := 0, 0 // the found section's bytes, framing included
	off := 8
	for off < len(wasm) {
		secStart := off
		id := wasm[off]
		off++
		size, n := uleb32(wasm[off:])
		if n == 0 || uint64(size) > uint64(len(wasm)-off-n) {
			return nil, nil, fmt.Errorf("%w: section %d at offset %d runs past the end", ErrMalformed, id, off-1)
		}
		off += n
		body := wasm[off : off+int(size)]
		off += int(size)
		if id != 0 {
			continue
		}
		nameLen, m := uleb32(body)
		if m == 0 || uint64(nameLen) > uint64(len(body)-m) {
			return nil, nil, fmt.Errorf("%w: custom section name at offset %d", ErrMalformed, off-int(size))
		}
		if string(body[m:m+int(nameLen)]) != SectionName {
			continue
		}
		if found != nil {
			return nil, nil, fmt.Errorf("%w: two %q sections", ErrMalformed, SectionName)
		}
		found = body[m+int(nameLen):]
		start, end = secStart, off
	}
	if found == nil {
		return wasm, nil, nil
	}
	module = make([]byte, 0, len(wasm)-(end-start))
	module = append(append(module, wasm[:start]...), wasm[end:]...)
	return module, found, nil
}

// uleb32 decodes an unsigned LEB128 of at most 5 bytes; n is 0 on error.
func uleb32(b []byte) (v uint32, n int) {
	var shift uint
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		if i == 4 && c > 0x0f {
			return 0, 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

// FS is an immutable, read-only file system over a zip archive. It is safe
// for concurrent use; each Open returns an independent file.
type FS struct {
	entries map[string]*entry // "." is the root
	size    int64
}

type entry struct {
	name     string // base name
	data     []byte
	dir      bool
	children []fs.DirEntry // sorted by name, dirs only
	modTime  time.Time
}

// New builds an FS over the zip archive z (which it may alias: z must not
// change afterwards). Directories missing from the archive are implied by
// the files under them. Entries are checked against their CRC-32.
func New(z []byte) (*FS, error) {
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(zr.File) > MaxFiles {
		return nil, fmt.Errorf("%w: %d files (at most %d)", ErrMalformed, len(zr.File), MaxFiles)
	}
	f := &FS{entries: map[string]*entry{".": {name: ".", dir: true}}}
	for _, zf := range zr.File {
		name := strings.TrimSuffix(zf.Name, "/")
		if !fs.ValidPath(name) || name == "." {
			return nil, fmt.Errorf("%w: invalid file name %q", ErrMalformed, zf.Name)
		}
		if strings.HasSuffix(zf.Name, "/") {
			if err := f.mkdirs(name, zf.Modified); err != nil {
				return nil, err
			}
			continue
		}
		data, err := fileData(z, zf)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, zf.Name, err)
		}
		f.size += int64(len(data))
		if f.size > MaxBytes {
			return nil, fmt.Errorf("%w: more than %d bytes of files", ErrMalformed, MaxBytes)
		}
		if _, dup := f.entries[name]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrMalformed, name)
		}
		if err := f.mkdirs(path.Dir(name), zf.Modified); err != nil {
			return nil, err
		}
		e := &entry{name: path.Base(name), data: data, modTime: zf.Modified}
		f.entries[name] = e
		parent := f.entries[path.Dir(name)]
		parent.children = append(parent.children, dirEntry{e})
	}
	for _, e := range f.entries {
		if e.dir {
			sort.Slice(e.children, func(i, j int) bool { return e.children[i].Name() < e.children[j].Name() })
		}
	}
	return f, nil
}

func (f *FS) mkdirs(dir string, mod time.Time) error {
	if dir == "." {
		return nil
	}
	if e, ok := f.entries[dir]; ok {
		if !e.dir {
			return fmt.Errorf("%w: %s is both a file and a directory", ErrMalformed, dir)
		}
		return nil
	}
	if err := f.mkdirs(path.Dir(dir), mod); err != nil {
		return err
	}
	e := &entry{name: path.Base(dir), dir: true, modTime: mod}
	f.entries[dir] = e
	parent := f.entries[path.Dir(dir)]
	parent.children = append(parent.children, dirEntry{e})
	return nil
}

func fileData(z []byte, zf *zip.File) ([]byte, error) {
	if zf.UncompressedSize64 > MaxBytes {
		return nil, fmt.Errorf("%d bytes", zf.UncompressedSize64)
	}
	var data []byte
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return nil, err
		}
		if zf.CompressedSize64 != zf.UncompressedSize64 || off < 0 || uint64(off)+zf.CompressedSize64 > uint64(len(z)) {
			return nil, errors.New("stored entry out of bounds")
		}
		data = z[off : off+int64(zf.CompressedSize64) : off+int64(zf.CompressedSize64)]
	} else {
		rc, err := zf.Open()
		if err != nil {
			return nil, err
		}
		data, err = io.ReadAll(io.LimitReader(rc, int64(zf.UncompressedSize64)+1))
		rc.Close()
		if err != nil {
			return nil, err
		}
		if uint64(len(data)) != zf.UncompressedSize64 {
			return nil, errors.New("inflated size differs from the header's")
		}
	}
	if crc32.ChecksumIEEE(data) != zf.CRC32 {
		return nil, errors.New("checksum mismatch")
	}
	return data, nil
}

// Size is the total size of the files' contents in bytes.
func (f *FS) Size() int64 { return f.size }

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	e, ok := f.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if e.dir {
		return &dir{e: e}, nil
	}
	return &file{e: e, r: bytes.NewReader(e.data)}, nil
}

// ReadFile implements fs.ReadFileFS; the result is a copy.
func (f *FS) ReadFile(name string) ([]byte, error) {
	e, ok := f.entries[name]
	if !ok || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	if e.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return bytes.Clone(e.data), nil
}

// Stat implements fs.StatFS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, ok := f.entries[name]
	if !ok || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return info{e}, nil
}

type info struct{ e *entry }

func (i info) Name() string       { return i.e.name }
func (i info) Size() int64        { return int64(len(i.e.data)) }
func (i info) ModTime() time.Time { return i.e.modTime }
func (i info) IsDir() bool        { return i.e.dir }
func (i info) Sys() any           { return nil }
func (i info) Mode() fs.FileMode {
	if i.e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type dirEntry struct{ e *entry }

func (d dirEntry) Name() string               { return d.e.name }
func (d dirEntry) IsDir() bool                { return d.e.dir }
func (d dirEntry) Type() fs.FileMode          { return info(d).Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return info(d), nil }

// file is an open regular file: it reads, seeks and reads at offsets.
type file struct {
	e *entry
	r *bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error)                { return info{f.e}, nil }
func (f *file) Read(p []byte) (int, error)                { return f.r.Read(p) }
func (f *file) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }
func (f *file) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *file) Close() error                              { return nil }

// dir is an open directory.
type dir struct {
	e   *entry
	pos int
}

func (d *dir) Stat() (fs.FileInfo, error) { return info{d.e}, nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.e.name, Err: errors.New("is a directory")}
}
func (d *dir) Close() error { return nil }

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.e.children[d.pos:]
	if n <= 0 {
		d.pos = len(d.e.children)
		return append([]fs.DirEntry(nil), rest...), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.pos += n
	return append([]fs.DirEntry(nil), rest[:n]...), nil
}
