//go:build linux

package wazero

import (
	"os"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapAllocator backs linear memory with an anonymous mapping outside the
// Go heap: the full maximum is reserved PROT_NONE once (address space only,
// MAP_NORESERVE) and pages are committed read-write as the guest grows.
// memory.grow never copies, the Go GC never scans guest memory, and closing
// an instance returns its memory to the OS at once. With an image, the
// start of the reservation is a private (copy-on-write) mapping of the
// image file instead: a new instance's memory holds the module's data
// without copying it, and the pages no instance writes stay shared.
type mmapAllocator struct {
	limit uint64 // bytes; growth past it fails memory.grow
	image *memImage
}

func (a mmapAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	if a.limit > 0 && max > a.limit {
		max = a.limit
	}
	if max == 0 {
		max = 1 << 16
	}
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	m := &mmapMemory{buf: b}
	if im := a.image; im != nil {
		if uint64(im.size) > max {
			m.Free() // cannot happen: the image fits the initial memory
			return nil
		}
		_, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(&b[0])), uintptr(im.size),
			syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, im.f.Fd(), 0)
		if errno != 0 {
			m.Free()
			return nil
		}
		m.committed = uint64(im.size)
	}
	if m.Reallocate(cap) == nil {
		m.Free()
		return nil
	}
	return m
}

type mmapMemory struct {
	buf       []byte // the whole reservation
	committed uint64
	size      uint64
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if size > m.committed {
		// Commit in 1 MiB steps to keep the number of mprotect calls low.
		newCommit := (size + (1<<20 - 1)) &^ (1<<20 - 1)
		if newCommit > uint64(len(m.buf)) {
			newCommit = uint64(len(m.buf))
		}
		if err := syscall.Mprotect(m.buf[m.committed:newCommit], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = newCommit
	}
	m.size = size
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

func newAllocator(limitBytes uint64, image *memImage) experimental.MemoryAllocator {
	return mmapAllocator{limit: limitBytes, image: image}
}

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
