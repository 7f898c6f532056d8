//go:build !linux

package wazero

import "github.com/tetratelabs/wazero/experimental"

// limitAllocator keeps wazero's default Go-heap memory but enforces the
// plugin's limit; used where the mmap allocator is not available.
// A new memory starts as a copy of the module's image.
type limitAllocator struct {
	limit uint64
	image *memImage
}

func (a *limitAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	if a.limit > 0 && max > a.limit {
		max = a.limit
	}
	m := &sliceMemory{buf: make([]byte, cap), max: max}
	if a.image != nil {
		copy(m.buf, a.image.b)
	}
	return m
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

// allocator is a module's memory allocator on this platform.
type allocator = *limitAllocator

func newAllocator(limitBytes uint64, image *memImage) *limitAllocator {
	return &limitAllocator{limit: limitBytes, image: image}
}

// allocation: no start profiles here (prefault_linux.go).
type allocation struct{ *limitAllocator }

func (a *limitAllocator) forInstance() allocation { return allocation{a} }

func (allocation) started() {}

// SetPrefault: nothing is prefaulted on this platform.
func SetPrefault(on bool) (was bool) { return false }

// memImage is a module's initial memory contents.
type memImage struct{ b []byte }

func newMemImage(b []byte) (*memImage, error) { return &memImage{b: b}, nil }

func (im *memImage) close() {}

// stableMemory: memory.grow may move linear memory to a new slice, so no
// pointer into it may be kept (no soft deadlines here).
const stableMemory = false

// ReleasePooledMemory: memory is not pooled on this platform.
func ReleasePooledMemory() {}
