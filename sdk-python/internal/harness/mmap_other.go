//go:build !linux

package harness

import (
	"context"
	"time"
)

// withAllocator keeps wazero's default allocator off Linux.
func withAllocator(ctx context.Context) context.Context { return ctx }

func threadCPU() time.Duration { return 0 }

// stableMemory: wazero's default allocator may move memory on growth.
const stableMemory = false
