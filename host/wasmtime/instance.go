package wasmtime

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

type module struct {
	name      string
	v         *variant
	cm        *C.wasmtime_module_t
	pre       *C.wasmtime_instance_pre_t
	cfg       engine.ModuleConfig
	exports   map[string]externInfo
	maxMemory int64
	// C copies of the granted environment and directories, made once.
	envNames, envValues, dirHosts, dirGuests *cStrings
	dirs                                     []engine.DirGrant // preopens, files first
	filesDir                                 string            // bundled files on disk, if any

	closeOnce sync.Once
}

// Mode reports how deadlines are enforced for this module: "epoch" or
// "off" (deadline_enforced = false).
func (m *module) Mode() string {
	if m.v.epoch {
		return "epoch"
	}
	return "off"
}

func (m *module) HasExport(name string) bool {
	x, ok := m.exports[name]
	return ok && x.kind == C.WASM_EXTERN_FUNC
}

func (m *module) Close(context.Context) error {
	m.closeOnce.Do(func() {
		C.wasmtime_instance_pre_delete(m.pre)
		C.wasmtime_module_delete(m.cm)
		m.envNames.free()
		m.envValues.free()
		m.dirHosts.free()
		m.dirGuests.free()
		if m.filesDir != "" {
			os.RemoveAll(m.filesDir)
		}
	})
	return nil
}

// wasiConfig builds the WASI context of one instance: the granted
// environment and directories; real clocks and a CSPRNG are Wasmtime's
// defaults. Output is captured by the store (see wt_store_set_wasi).
func (m *module) wasiConfig() (*C.wasi_config_t, error) {
	wc := C.wasi_config_new()
	if n := m.envNames.n; n > 0 {
		if !C.wasi_config_set_env(wc, C.size_t(n), m.envNames.p, m.envValues.p) {
			C.wasi_config_delete(wc)
			return nil, fmt.Errorf("set WASI environment")
		}
	}
	for i, d := range m.dirs {
		perms, filePerms := C.size_t(C.WASMTIME_WASI_DIR_PERMS_READ), C.size_t(C.WASMTIME_WASI_FILE_PERMS_READ)
		if d.ReadWrite {
			perms |= C.WASMTIME_WASI_DIR_PERMS_WRITE
			filePerms |= C.WASMTIME_WASI_FILE_PERMS_WRITE
		}
		if !C.wasi_config_preopen_dir(wc, m.dirHosts.at(i), m.dirGuests.at(i), C.wasi_dir_perms(perms), C.wasi_file_perms(filePerms)) {
			C.wasi_config_delete(wc)
			return nil, fmt.Errorf("preopen %s as %s: cannot open the directory", d.HostPath, d.GuestPath)
		}
	}
	return wc, nil
}

func (m *module) Instantiate(ctx context.Context, hc engine.HostCaller) (engine.Instance, error) {
	in := &instance{mod: m, hc: hc, ctx: ctx}
	if m.cfg.Stdout != nil {
		in.stdout = engine.NewLineSplitter(m.cfg.Stdout)
	}
	if m.cfg.Stderr != nil {
		in.stderr = engine.NewLineSplitter(m.cfg.Stderr)
	}
	in.id = register(in)
	in.s = C.wt_store_new(m.v.engine, boolInt(m.v.epoch), C.uintptr_t(in.id), C.int64_t(m.maxMemory))
	if in.s == nil {
		unregister(in.id)
		return nil, fmt.Errorf("plugin %q: %w: cannot create a store", m.name, engine.ErrInit)
	}
	fail := func(format string, args ...any) (engine.Instance, error) {
		in.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w: %s", m.name, engine.ErrInit, fmt.Sprintf(format, args...))
	}
	wc, err := m.wasiConfig()
	if err != nil {
		return fail("%v", err)
	}
	// Output is always captured (and dropped without a writer): a guest
	// must be able to print even where nobody listens, as on wazero.
	if cerr := C.wt_store_set_wasi(in.s, wc, 1, 1); cerr != nil {
		return fail("configure WASI: %s", errorMessage(cerr))
	}
	var trap *C.wasm_trap_t
	var missing *C.char
	if cerr := C.wt_instantiate(in.s, m.pre, &trap, &missing); cerr != nil {
		return fail("%s", errorMessage(cerr))
	}
	if trap != nil {
		return fail("%s", trapMessage(trap))
	}
	if missing != nil {
		in.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w: %s is not exported", m.name, engine.ErrMissingExport, C.GoString(missing))
	}
	if in.s.has_fn[C.WT_INIT] != 0 {
		if err := in.initialize(ctx); err != nil {
			return fail("_initialize: %v", err)
		}
	}
	in.ctx = ctx
	if rc := in.run(C.WT_VERSION, nil); rc != C.WT_OK {
		return fail("%s trapped: %s", abi.ExportVersion, in.takeError())
	}
	in.ctx = nil
	if got := int32(in.s.result); got != abi.Version {
		in.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w: plugin speaks wasmcorn ABI version %d; this host implements version %d",
			m.name, engine.ErrABIVersion, got, abi.Version)
	}
	if in.s.has_fn[C.WT_STORES] != 0 {
		in.ctx = ctx
		rc := in.run(C.WT_STORES, nil)
		in.ctx = nil
		if rc != C.WT_OK {
			return fail("%s trapped: %s", abi.ExportInterruptStores, in.takeError())
		}
		if in.stores, err = in.readStores(uint32(in.s.result)); err != nil {
			return fail("%s: %v", abi.ExportInterruptStores, err)
		}
	}
	return in, nil
}

// readStores reads and checks the guest's interrupt table (ABI.md, "Soft
// deadlines") once per instance: every address must be 4-aligned and
// inside memory now (memory never shrinks, so it stays inside).
func (in *instance) readStores(ptr uint32) ([]abi.InterruptStore, error) {
	return abi.ReadInterruptTable(in.memory(ptr, 4), ptr)
}

// initialize runs _initialize, interrupting it at ctx's deadline or after
// engine.InitTimeout. Instantiation is rare, so a timer per call is fine here.
func (in *instance) initialize(ctx context.Context) error {
	d := engine.InitTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = time.Until(dl)
	}
	t := time.AfterFunc(d, in.Interrupt)
	in.ctx = ctx
	rc := in.run(C.WT_INIT, nil)
	if !t.Stop() {
		// The timer fired (or is firing): the instance is or will be
		// interrupted, so it is unusable even if _initialize returned.
		if rc != C.WT_OK {
			in.takeError()
		}
		return fmt.Errorf("did not finish within %v", d)
	}
	if rc != C.WT_OK {
		return fmt.Errorf("%s", in.takeError())
	}
	return nil
}

type instance struct {
	mod    *module
	hc     engine.HostCaller
	s      *C.wt_store
	id     uintptr              // registry slot
	ctx    context.Context      // of the call in progress, for host calls
	stdout *engine.LineSplitter // Wasmtime writes from its own threads (see wtGuestOutput)
	stderr *engine.LineSplitter

	reply   []byte
	pending bool

	interrupted atomic.Bool
	mu          sync.Mutex // orders Interrupt and SoftInterrupt against Close
	closed      bool
	stores      []abi.InterruptStore // the guest's interrupt table, nil without one
}

func (in *instance) MemoryBytes() uint64 {
	if in.s == nil {
		return 0
	}
	// Updated in C at the end of every call; memory only grows in calls.
	return uint64(in.s.mem_size)
}

func (in *instance) Interrupt() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.interrupted.Swap(true) {
		return
	}
	C.wt_interrupt(in.s)
}

// SoftInterrupt asks the running call to stop by itself, by performing the
// guest's interrupt stores (ABI.md, "Soft deadlines"), from the caller's
// thread while the guest runs. It returns false when the guest has no
// interrupt table or was already stopped hard. Each store is an atomic
// aligned 32-bit store through the memory's base pointer, which never
// changes (memory_may_move = false), at an address checked against the
// memory's size at instantiation (memory never shrinks). The epoch
// interruption stays the hard stop (Interrupt) for a guest that ignores it.
func (in *instance) SoftInterrupt() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || len(in.stores) == 0 || in.interrupted.Load() {
		return false
	}
	base := unsafe.Pointer(in.s.mem_data)
	for _, s := range in.stores {
		atomic.StoreUint32((*uint32)(unsafe.Add(base, s.Addr)), s.Value)
	}
	return true
}

func (in *instance) Close(context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	in.closed = true
	if in.stdout != nil {
		in.stdout.Flush()
	}
	if in.stderr != nil {
		in.stderr.Flush()
	}
	C.wt_store_delete(in.s)
	in.s = nil
	unregister(in.id)
	return nil
}

// errClosed is returned by Call on a closed instance (a caller bug; the
// pool never does it).
var errClosed = errors.New("instance closed")

func (in *instance) Call(ctx context.Context, export string, req []byte, maxOut uint32) ([]byte, error) {
	if in.s == nil {
		return nil, fmt.Errorf("plugin %q: %w", in.mod.name, errClosed)
	}
	var which C.int
	switch export {
	case abi.ExportHandle:
		which = C.WT_HANDLE
	case abi.ExportJob:
		which = C.WT_JOB
		if in.s.has_fn[C.WT_JOB] == 0 {
			return nil, fmt.Errorf("plugin %q: %w: %s is not exported", in.mod.name, engine.ErrMissingExport, abi.ExportJob)
		}
	default:
		return nil, fmt.Errorf("plugin %q: %w: %s is not a callable export", in.mod.name, engine.ErrMissingExport, export)
	}
	if len(req) > math.MaxInt32 {
		return nil, fmt.Errorf("plugin %q: request of %d bytes exceeds the 2 GiB ABI limit", in.mod.name, len(req))
	}
	in.ctx = ctx
	rc := in.run(which, req)
	in.ctx = nil
	s := in.s
	switch rc {
	case C.WT_OK:
	case C.WT_INTERRUPTED:
		return nil, fmt.Errorf("plugin %q: %w", in.mod.name, engine.ErrInterrupted)
	case C.WT_ALLOC_FAILED:
		return nil, in.callError(abi.ExportAlloc)
	case C.WT_ALLOC_BAD:
		ptr, size := abi.UnpackPtrLen(uint64(s.result))
		return nil, fmt.Errorf("plugin %q: %w: %s(%d) returned %#x, outside memory of %d bytes",
			in.mod.name, engine.ErrTrap, abi.ExportAlloc, size, ptr, s.mem_size)
	default:
		return nil, in.callError(export)
	}
	ptr, size := abi.UnpackPtrLen(uint64(s.result))
	if size > maxOut {
		return nil, fmt.Errorf("plugin %q: %w: %d bytes, limit %d", in.mod.name, engine.ErrResponseTooLarge, size, maxOut)
	}
	if uint64(ptr)+uint64(size) > uint64(s.mem_size) {
		return nil, fmt.Errorf("plugin %q: %w: %s returned %#x+%d, outside memory of %d bytes",
			in.mod.name, engine.ErrTrap, export, ptr, size, s.mem_size)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(s.mem_data)), int(s.mem_size))[ptr : ptr+size : ptr+size], nil
}

// run calls export which through the shim and serves the host calls the
// guest makes on the way: each suspends the guest and returns WT_PENDING,
// and the host call runs here, on the calling goroutine, outside any cgo
// call (a blocking database or Redis call parks only this goroutine).
func (in *instance) run(which C.int, req []byte) C.int {
	// req goes to C as an integer, so that cgo does not check it on
	// every call; the shim copies it into guest memory before the export
	// runs, and KeepAlive keeps it allocated until the call is over.
	rc := C.wt_call(in.s, which, C.uintptr_t(uintptr(unsafe.Pointer(unsafe.SliceData(req)))), C.size_t(len(req)))
	for rc == C.WT_PENDING {
		in.servePending()
		rc = C.wt_resume(in.s)
	}
	runtime.KeepAlive(req)
	return rc
}

// servePending serves the host call the guest waits on and marks it done
// for wt_resume. A panic in a host function becomes a guest trap: it must
// never leave the guest suspended.
func (in *instance) servePending() {
	p := &in.s.pend
	var (
		ret int32
		msg string
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				msg = fmt.Sprintf("%s: host function panicked: %v", hostFuncName(p.kind), r)
			}
		}()
		switch p.kind {
		case C.WT_HC_CALL:
			var n uint32
			n, msg = in.hostCall(uint32(p.a[0]), uint32(p.a[1]), uint32(p.a[2]), uint32(p.a[3]), uint32(p.a[4]))
			ret = int32(n)
		case C.WT_HC_RESULT:
			ret, msg = in.hostResult(uint32(p.a[0]), uint32(p.a[1]))
		default:
			msg = fmt.Sprintf("wasmcorn: unknown pending host call kind %d", int(p.kind))
		}
	}()
	if msg != "" {
		p.trap = newTrap(msg)
	} else {
		p.ret = C.int32_t(ret)
	}
	p.done = 1
}

func hostFuncName(kind C.int) string {
	if kind == C.WT_HC_RESULT {
		return abi.ImportModule + "." + abi.ImportResult
	}
	return abi.ImportModule + "." + abi.ImportCall
}

// callError classifies a failed call: interrupted (the flag is set),
// exited (WASI proc_exit) or trapped.
func (in *instance) callError(export string) error {
	msg := in.takeError()
	if in.interrupted.Load() {
		return fmt.Errorf("plugin %q: %w", in.mod.name, engine.ErrInterrupted)
	}
	return fmt.Errorf("plugin %q: %w in %s: %s", in.mod.name, engine.ErrTrap, export, msg)
}

// takeError describes and frees the error or trap the last call left.
func (in *instance) takeError() string {
	s := in.s
	var msg string
	if s.err != nil {
		var status C.int
		if C.wasmtime_error_exit_status(s.err, &status) {
			msg = fmt.Sprintf("the guest exited with code %d", int(status))
			C.wasmtime_error_delete(s.err)
		} else {
			msg = errorMessage(s.err)
		}
		s.err = nil
	}
	if s.trap != nil {
		msg = trapMessage(s.trap)
		s.trap = nil
	}
	if msg == "" {
		msg = "unknown failure"
	}
	return msg
}

// memory returns the guest's linear memory, large enough to hold
// [ptr, ptr+n) if the memory is: the size known from the last call is
// used unless the region lies past it (the guest grew its memory since).
// The slice is valid until the guest runs again.
func (in *instance) memory(ptr, n uint32) []byte {
	s := in.s
	if uint64(ptr)+uint64(n) > uint64(s.mem_size) {
		C.wt_refresh_size(s)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(s.mem_data)), int(s.mem_size))
}

// hostCall serves wasmcorn.call. A non-empty trap message makes the guest
// trap.
func (in *instance) hostCall(op, inPtr, inLen, outPtr, outCap uint32) (uint32, string) {
	mem := in.memory(inPtr, inLen)
	if uint64(inPtr)+uint64(inLen) > uint64(len(mem)) {
		return 0, fmt.Sprintf("wasmcorn.call(%s): argument region %#x+%d outside memory of %d bytes",
			abi.Op(op), inPtr, inLen, len(mem))
	}
	if uint64(outPtr)+uint64(outCap) > uint64(len(mem)) {
		mem = in.memory(outPtr, outCap)
	}
	if uint64(outPtr)+uint64(outCap) > uint64(len(mem)) {
		return 0, fmt.Sprintf("wasmcorn.call(%s): reply region %#x+%d outside memory of %d bytes",
			abi.Op(op), outPtr, outCap, len(mem))
	}
	ctx := in.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	in.reply = in.hc.HostCall(ctx, op, mem[inPtr:inPtr+inLen:inPtr+inLen], in.reply[:0])
	n := uint32(len(in.reply))
	if n <= outCap {
		copy(mem[outPtr:], in.reply)
		in.pending = false
	} else {
		in.pending = true
	}
	if cap(in.reply) > 1<<20 && !in.pending {
		in.reply = nil // do not pin a huge reply buffer per instance
	}
	return n, ""
}

// hostResult serves wasmcorn.result.
func (in *instance) hostResult(ptr, capacity uint32) (int32, string) {
	// The whole region the guest names must be memory (ABI.md), whether or
	// not anything is copied into it, as for call's reply region.
	mem := in.memory(ptr, capacity)
	if uint64(ptr)+uint64(capacity) > uint64(len(mem)) {
		return 0, fmt.Sprintf("wasmcorn.result: region %#x+%d outside memory of %d bytes", ptr, capacity, len(mem))
	}
	n := uint32(len(in.reply))
	if !in.pending || n > capacity {
		return -1, ""
	}
	copy(mem[ptr:], in.reply)
	in.pending = false
	return int32(n), ""
}
