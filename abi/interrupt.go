package abi

import (
	"encoding/binary"
	"fmt"
)

// InterruptStore is one entry of a guest's interrupt table (ABI.md, "Soft
// deadlines"): at a call's deadline the host stores Value at Addr.
type InterruptStore struct {
	Addr, Value uint32
}

// ReadInterruptTable decodes and checks the interrupt table at ptr in mem,
// the guest's linear memory as it is when the instance starts (engines read
// it once per instance, before any call). Every address must be 4-byte
// aligned and inside mem; memory never shrinks, so it stays inside. The
// errors are the ones the host reports when it refuses the instance.
func ReadInterruptTable(mem []byte, ptr uint32) ([]InterruptStore, error) {
	u32 := func(off uint64) (uint32, bool) {
		if off+4 > uint64(len(mem)) {
			return 0, false
		}
		return binary.LittleEndian.Uint32(mem[off:]), true
	}
	n, ok := u32(uint64(ptr))
	if !ok || n == 0 || n > MaxInterruptStores {
		return nil, fmt.Errorf("interrupt table at %#x: bad count %d (1..%d)", ptr, n, MaxInterruptStores)
	}
	out := make([]InterruptStore, n)
	for i := range out {
		a, ok1 := u32(uint64(ptr) + 4 + 8*uint64(i))
		v, ok2 := u32(uint64(ptr) + 8 + 8*uint64(i))
		if !ok1 || !ok2 || a%4 != 0 || uint64(a)+4 > uint64(len(mem)) {
			return nil, fmt.Errorf("interrupt table at %#x: entry %d (address %#x) unaligned or outside memory", ptr, i, a)
		}
		out[i] = InterruptStore{Addr: a, Value: v}
	}
	return out, nil
}
