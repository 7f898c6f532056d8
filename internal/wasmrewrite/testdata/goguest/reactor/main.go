// Reactor is a wasip1 reactor (-buildmode=c-shared) whose exports must
// return the same values when its binary is instrumented by wasmrewrite.
package main

import (
	"hash/crc32"
	"sort"
)

var calls int32

//go:wasmexport compute
func compute(n int32) int64 {
	calls++
	xs := make([]int, n)
	for i := range xs {
		xs[i] = (i * 7919) % int(n+1)
	}
	sort.Ints(xs)
	var acc int64
	for i, x := range xs {
		acc += int64(i ^ x)
	}
	m := make(map[int]int)
	for _, x := range xs {
		m[x%97]++
	}
	return acc*1000 + int64(len(m))
}

//go:wasmexport checksum
func checksum(n int32) int32 {
	calls++
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	return int32(crc32.ChecksumIEEE(buf))
}

//go:wasmexport calls
func callCount() int32 { return calls }

func main() {}
