package abi_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
)

// table lays out an interrupt table at ptr in a memory of size bytes.
func table(size int, ptr uint32, count uint32, entries ...abi.InterruptStore) []byte {
	mem := make([]byte, size)
	binary.LittleEndian.PutUint32(mem[ptr:], count)
	for i, e := range entries {
		binary.LittleEndian.PutUint32(mem[int(ptr)+4+8*i:], e.Addr)
		binary.LittleEndian.PutUint32(mem[int(ptr)+8+8*i:], e.Value)
	}
	return mem
}

func TestReadInterruptTable(t *testing.T) {
	want := []abi.InterruptStore{{Addr: 64, Value: 7}, {Addr: 1020, Value: 1}}
	got, err := abi.ReadInterruptTable(table(1024, 16, 2, want...), 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name string
		mem  []byte
		ptr  uint32
		err  string
	}{
		{"zero count", table(64, 0, 0), 0, "bad count 0 (1..8)"},
		{"count over max", table(256, 0, abi.MaxInterruptStores+1), 0, "bad count 9"},
		{"table outside memory", table(64, 0, 1), 62, "bad count 0"},
		{"entries cut off", table(12, 0, 2, abi.InterruptStore{Addr: 0, Value: 1}), 0, "entry 1"},
		{"unaligned", table(64, 0, 1, abi.InterruptStore{Addr: 6, Value: 1}), 0, "entry 0 (address 0x6) unaligned or outside memory"},
		{"address outside", table(64, 0, 1, abi.InterruptStore{Addr: 64, Value: 1}), 0, "entry 0 (address 0x40) unaligned"},
		{"address straddles end", table(64, 0, 1, abi.InterruptStore{Addr: 61, Value: 1}), 0, "entry 0"},
		{"huge pointer", table(64, 0, 1), 0xfffffffc, "bad count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := abi.ReadInterruptTable(tc.mem, tc.ptr)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.err)
			}
		})
	}
}

// FuzzReadInterruptTable: any memory and pointer give either an error or a
// table of 1..MaxInterruptStores aligned addresses inside memory.
func FuzzReadInterruptTable(f *testing.F) {
	f.Add(table(64, 8, 1, abi.InterruptStore{Addr: 32, Value: 1}), uint32(8))
	f.Add(table(64, 0, 3), uint32(0))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, mem []byte, ptr uint32) {
		got, err := abi.ReadInterruptTable(mem, ptr)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with a table %+v", err, got)
			}
			return
		}
		if len(got) == 0 || len(got) > abi.MaxInterruptStores {
			t.Fatalf("table of %d entries", len(got))
		}
		for _, s := range got {
			if s.Addr%4 != 0 || uint64(s.Addr)+4 > uint64(len(mem)) {
				t.Fatalf("entry %+v unaligned or outside %d bytes", s, len(mem))
			}
		}
	})
}
