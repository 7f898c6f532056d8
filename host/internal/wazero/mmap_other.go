//go:build !linux

package wazero

import "github.com/tetratelabs/wazero/experimental"

// limitAllocator keeps wazero's default Go-heap memory but enforces the
// plugin's limit; used where the mmap allocator is not available.
type limitAllocator struct{ limit uint64 }

func (a limitAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	if a.limit > 0 && max > a.limit {
		max = a.limit
	}
	return &sliceMemory{buf: make([]byte, cap), max: max}
}

type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	nb := make([]byte, size, size*2)
	copy(nb, m.buf)
	m.buf = nb
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }

func newAllocator(limitBytes uint64) experimental.MemoryAllocator {
	return limitAllocator{limit: limitBytes}
}
