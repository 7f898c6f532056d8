//go:build linux

package wazero

import (
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapAllocator backs linear memory with an anonymous mapping outside the
// Go heap: the full maximum is reserved PROT_NONE once (address space only,
// MAP_NORESERVE) and pages are committed read-write as the guest grows.
// memory.grow never copies, the Go GC never scans guest memory, and closing
// an instance returns its memory to the OS or, reset, to the region pool
// (regions_linux.go) for the next instance. With an image, the start of
// the reservation is a private (copy-on-write) mapping of the image file
// instead: a new instance's memory holds the module's data without
// copying it, and the pages no instance writes stay shared.
type mmapAllocator struct {
	limit uint64 // bytes; growth past it fails memory.grow
	image *memImage
	// profile is what the module's first fresh instance touched while it
	// started (prefault_linux.go); learning is set once one learns it.
	profile  atomic.Pointer[startProfile]
	learning atomic.Bool
}

func (a *mmapAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	if m, _ := a.allocate(cap, max); m != nil {
		return m
	}
	return nil
}

// allocate returns a memory of cap bytes and whether its region is fresh
// (a new mapping, not one of the pool's), or nil. Either way the pages the
// module's start touches are populated (for a reused region, at least the
// image pages its reset dropped).
func (a *mmapAllocator) allocate(cap, max uint64) (*mmapMemory, bool) {
	m, fresh := a.region(cap, max)
	if m == nil {
		return nil, false
	}
	if p := a.profile.Load(); p != nil {
		m.r.prefault(p)
	}
	if fresh {
		memFresh.Inc()
	} else {
		memReused.Inc()
	}
	return m, fresh
}

// region returns a memory of cap bytes over a pooled region, else a new
// one, and whether it is new; nil when neither works.
func (a *mmapAllocator) region(cap, max uint64) (*mmapMemory, bool) {
	if a.limit > 0 && max > a.limit {
		max = a.limit
	}
	if max == 0 {
		max = 1 << 16
	}
	if a.image != nil && uint64(a.image.size) > max {
		return nil, false // cannot happen: the image fits the initial memory
	}
	if r := regions.get(int(max), a.image); r != nil {
		m := &mmapMemory{r: r}
		if m.Reallocate(cap) != nil {
			return m, false
		}
		r.unmap()
	}
	r, err := newRegion(int(max), a.image)
	if err != nil {
		return nil, false
	}
	m := &mmapMemory{r: r}
	if m.Reallocate(cap) == nil {
		r.unmap()
		return nil, false
	}
	return m, true
}

// region is one reservation of linear memory.
type region struct {
	buf       []byte // the whole reservation
	committed uint64
	img       *memImage // the image mapped at the start (its file may be closed)
	imgSize   uint64
	freedAt   time.Time // when it entered the region pool
}

func newRegion(n int, image *memImage) (*region, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, err
	}
	r := &region{buf: b}
	if image != nil {
		if err := mapFixed(uintptr(unsafe.Pointer(&b[0])), uint64(image.size), image); err != nil {
			r.unmap()
			return nil, err
		}
		r.committed = uint64(image.size)
		r.img, r.imgSize = image, uint64(image.size)
	}
	return r, nil
}

// mapFixed maps n bytes at addr read-write, replacing what was there: a
// private (copy-on-write) mapping of image's file, or zeros when image is
// nil.
func mapFixed(addr uintptr, n uint64, image *memImage) error {
	flags, fd := uintptr(syscall.MAP_PRIVATE|syscall.MAP_FIXED), ^uintptr(0)
	if image != nil {
		fd = image.f.Fd()
	} else {
		flags |= syscall.MAP_ANON
	}
	if _, _, errno := syscall.Syscall6(syscall.SYS_MMAP, addr, uintptr(n),
		syscall.PROT_READ|syscall.PROT_WRITE, flags, fd, 0); errno != 0 {
		return errno
	}
	return nil
}

func (r *region) unmap() {
	if r.buf != nil {
		_ = syscall.Munmap(r.buf)
		r.buf = nil
	}
}

// mmapMemory is one instance's use of a region; a region outlives it when
// pooled, so each allocation gets its own mmapMemory and a second Free of
// the same one is a no-op rather than a release of the next owner's memory.
type mmapMemory struct {
	r    *region
	size uint64
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	r := m.r
	if r == nil || size > uint64(len(r.buf)) {
		return nil
	}
	if size > r.committed {
		// Commit in 1 MiB steps to keep the number of mprotect calls low.
		newCommit := (size + (1<<20 - 1)) &^ (1<<20 - 1)
		if newCommit > uint64(len(r.buf)) {
			newCommit = uint64(len(r.buf))
		}
		if err := syscall.Mprotect(r.buf[r.committed:newCommit], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		r.committed = newCommit
	}
	m.size = size
	return r.buf[:size:size]
}

// Free implements experimental.LinearMemory: wazero calls it when the
// instance closes. The region goes to the pool for a later instance, or
// back to the OS.
func (m *mmapMemory) Free() {
	r := m.r
	m.r = nil
	if r != nil && !regions.put(r) {
		r.unmap()
	}
}

// allocator is a module's memory allocator on this platform.
type allocator = *mmapAllocator

func newAllocator(limitBytes uint64, image *memImage) *mmapAllocator {
	return &mmapAllocator{limit: limitBytes, image: image}
}

// forInstance returns the allocator of one instantiation.
func (a *mmapAllocator) forInstance() *allocation { return &allocation{a: a} }

// memImage is a module's initial memory contents in an unlinked file (in
// /dev/shm when it exists), zero-padded to whole pages, which instances map
// privately.
type memImage struct {
	f    *os.File
	size int
}

func newMemImage(b []byte) (*memImage, error) {
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "wasmcorn-memory-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	page := os.Getpagesize()
	size := (len(b) + page - 1) / page * page
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, err
	}
	return &memImage{f: f, size: size}, nil
}

// close releases the file; instances that mapped it keep their mappings.
func (im *memImage) close() {
	if im != nil {
		im.f.Close()
	}
}

// stableMemory: linear memory never moves (the maximum is reserved once),
// so pointers into it stay valid for the instance's life.
const stableMemory = true
