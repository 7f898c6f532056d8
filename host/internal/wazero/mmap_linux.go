//go:build linux

package wazero

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapAllocator backs linear memory with an anonymous mapping outside the
// Go heap: the full maximum is reserved PROT_NONE once (address space only,
// MAP_NORESERVE) and pages are committed read-write as the guest grows.
// memory.grow never copies, the Go GC never scans guest memory, and closing
// an instance returns its memory to the OS at once.
type mmapAllocator struct {
	limit uint64 // bytes; growth past it fails memory.grow
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

func newAllocator(limitBytes uint64) experimental.MemoryAllocator {
	return mmapAllocator{limit: limitBytes}
}
