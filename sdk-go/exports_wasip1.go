//go:build wasip1

package wasmcorn

import (
	"log/slog"
	"runtime"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
)

// instance is the one guest of this Wasm instance.
var instance guest

func init() {
	slog.SetDefault(logger)
}

//go:wasmexport wasmcorn_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport wasmcorn_alloc
func exportAlloc(size int32) uint32 {
	b := instance.alloc(int(size))
	if b == nil {
		return 0
	}
	return addr(b[:cap(b)])
}

//go:wasmexport wasmcorn_handle
func exportHandle(ptr, n uint32) uint64 {
	msg, ok := instance.region(ptr, n)
	if !ok {
		logger.Error("wasmcorn: request region outside the buffer from wasmcorn_alloc", "ptr", ptr, "len", n)
		instance.out = errorResponse(instance.out[:0], 500, "internal server error\n")
		return pack(instance.out)
	}
	out := pack(instance.handle(msg))
	yieldSometimes()
	return out
}

//go:wasmexport wasmcorn_job
func exportJob(ptr, n uint32) uint64 {
	msg, ok := instance.region(ptr, n)
	if !ok {
		instance.out = abi.AppendJobResult(instance.out[:0], &abi.JobResult{
			Status: abi.JobRetry, Error: []byte("wasmcorn: job region outside the buffer from wasmcorn_alloc")})
		return pack(instance.out)
	}
	out := pack(instance.job(msg))
	yieldSometimes()
	return out
}

// yieldEvery is how many handle or job calls pass between two yields to
// the Go scheduler.
const yieldEvery = 32

// calls counts handle and job calls, for yieldSometimes.
var calls uint32

// yieldSometimes lets the instance's other goroutines run (runtime.Gosched)
// at the end of every yieldEvery-th call, after the result is final. In a
// reactor Go runs goroutines only inside calls, and only when the running
// one blocks; the garbage collector's background mark worker is such a
// goroutine. Without a yield a collection's mark phase is finished by
// allocation assists alone and stretches over thousands of requests
// (3-6 ms instead of 0.4 for plugins/hello on wazero), all of them paying
// for the write barrier and for allocating black: 20% of a net/http
// handler's guest time. A yield costs about 1 µs in the guest, hence one
// every yieldEvery calls (docs/RATIONALE.md, "Why does the Go SDK yield to
// the scheduler every 32 calls?"). Goroutines a handler started get to run
// there too.
func yieldSometimes() {
	calls++
	if calls%yieldEvery == 0 {
		runtime.Gosched()
	}
}

// region maps a guest pointer from the host to the alloc buffer.
func (g *guest) region(ptr, n uint32) ([]byte, bool) {
	if cap(g.in) == 0 {
		return nil, false
	}
	base := addr(g.in[:cap(g.in)])
	if ptr < base {
		return nil, false
	}
	return g.input(uint64(ptr-base), uint64(n))
}

// addr is the linear-memory address of b's first byte; b is not empty.
func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func pack(b []byte) uint64 { return abi.PackPtrLen(addr(b[:1]), uint32(len(b))) }
