//go:build linux

package harness

import (
	"context"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero/experimental"
)

// withAllocator backs linear memory with an anonymous mapping, as the
// server does, so that RSS measurements count only the pages a guest
// touches.
func withAllocator(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, mmapAllocator{})
}

type mmapAllocator struct{}

func (mmapAllocator) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	if maxBytes == 0 {
		maxBytes = 1 << 32
	}
	b, err := syscall.Mmap(-1, 0, int(maxBytes), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mmapMemory{buf: b}
}

type mmapMemory struct{ buf []byte }

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stableMemory: the mmap allocator reserves the maximum once; memory never
// moves.
const stableMemory = true
