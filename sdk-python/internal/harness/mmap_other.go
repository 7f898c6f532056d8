//go:build !linux

package harness

import "context"

// withAllocator keeps wazero's default allocator off Linux.
func withAllocator(ctx context.Context) context.Context { return ctx }
