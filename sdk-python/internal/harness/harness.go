// Package harness runs the wasmcorn Python runtime under wazero with a
// small in-process host, for the SDK's own tests and measurements. It
// mirrors what the server does (wasi_snapshot_preview1, the wasmcorn.call
// and wasmcorn.result imports, the plugin's files mounted read-only at
// /wasmcorn) without the server's pools, backends or limits, so that the
// Python runtime can be tested on its own.
package harness

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/internal/wasmrewrite"
	"github.com/wasmcorn/wasmcorn/sdk-python/bundlefs"
)

// Op serves one host operation: args are the decoded argument values; it
// returns a complete reply (abi.AppendReplyOK + values, or
// abi.AppendReplyError).
type Op func(args []abi.Value) []byte

// Host is a stub wasmcorn host: a table of ops plus a record of log calls.
// Safe for concurrent use.
type Host struct {
	mu   sync.Mutex
	ops  map[abi.Op]Op
	logs []LogRecord
}

// LogRecord is one OpLog call.
type LogRecord struct {
	Level int64
	Msg   string
	Attrs map[string]string
}

// NewHost returns a host that implements log, config.get (from config) and
// an in-memory cache (get, set, delete); Handle adds or replaces ops.
func NewHost(config map[string]string) *Host {
	h := &Host{ops: map[abi.Op]Op{}}
	cache := map[string][]byte{}
	h.ops[abi.OpLog] = func(args []abi.Value) []byte {
		rec := LogRecord{Attrs: map[string]string{}}
		if len(args) >= 2 {
			rec.Level, rec.Msg = args[0].I, args[1].Str()
			for i := 2; i+1 < len(args); i += 2 {
				v := args[i+1]
				switch v.Kind {
				case abi.KindString, abi.KindBytes:
					rec.Attrs[args[i].Str()] = v.Str()
				default:
					rec.Attrs[args[i].Str()] = fmt.Sprint(v.I, v.F)
				}
			}
		}
		h.mu.Lock()
		h.logs = append(h.logs, rec)
		h.mu.Unlock()
		return abi.AppendReplyOK(nil)
	}
	h.ops[abi.OpConfigGet] = func(args []abi.Value) []byte {
		if len(args) != 1 {
			return abi.AppendReplyError(nil, abi.ErrInvalid, "config.get takes a key")
		}
		v, ok := config[args[0].Str()]
		if !ok {
			return abi.AppendReplyError(nil, abi.ErrNotFound, "no config key "+args[0].Str())
		}
		return abi.AppendString(abi.AppendReplyOK(nil), v)
	}
	h.ops[abi.OpCacheGet] = func(args []abi.Value) []byte {
		h.mu.Lock()
		v, ok := cache[args[0].Str()]
		h.mu.Unlock()
		if !ok {
			return abi.AppendReplyError(nil, abi.ErrNotFound, "miss")
		}
		return abi.AppendBytesValue(abi.AppendReplyOK(nil), v)
	}
	h.ops[abi.OpCacheSet] = func(args []abi.Value) []byte {
		h.mu.Lock()
		cache[args[0].Str()] = append([]byte(nil), args[1].B...)
		h.mu.Unlock()
		return abi.AppendReplyOK(nil)
	}
	h.ops[abi.OpCacheDelete] = func(args []abi.Value) []byte {
		h.mu.Lock()
		_, ok := cache[args[0].Str()]
		delete(cache, args[0].Str())
		h.mu.Unlock()
		return abi.AppendBool(abi.AppendReplyOK(nil), ok)
	}
	return h
}

// Handle installs fn for op.
func (h *Host) Handle(op abi.Op, fn Op) {
	h.mu.Lock()
	h.ops[op] = fn
	h.mu.Unlock()
}

// Logs returns a copy of the log records so far.
func (h *Host) Logs() []LogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LogRecord(nil), h.logs...)
}

func (h *Host) dispatch(op uint32, in []byte) []byte {
	h.mu.Lock()
	fn := h.ops[abi.Op(op)]
	h.mu.Unlock()
	if fn == nil {
		return abi.AppendReplyError(nil, abi.ErrUnknownOp, "harness does not implement "+abi.Op(op).String())
	}
	vals, err := abi.DecodeValues(nil, in)
	if err != nil {
		return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
	}
	return fn(vals)
}

// Runtime compiles plugins and instantiates them against a Host.
type Runtime struct {
	rt   wazero.Runtime
	host *Host
	// Instrument makes Compile rewrite modules with the host's loop
	// instrumentation (internal/wasmrewrite), as the server does for
	// plugins with enforced deadlines; set it before Compile.
	Instrument bool
}

// pending is the per-instance reply that did not fit the guest's buffer.
type pendingKey struct{}

type callState struct {
	reply []byte
}

// NewRuntime returns a runtime with WASI and the wasmcorn host module.
// guarded selects wazero's CloseOnContextDone (hard deadlines at a cost).
func NewRuntime(ctx context.Context, host *Host, cacheDir string, guarded bool) (*Runtime, error) {
	cfg := wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(guarded)
	if cacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("harness: compilation cache %s: %w", cacheDir, err)
		}
		cfg = cfg.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("harness: wasi: %w", err)
	}
	_, err := rt.NewHostModuleBuilder(abi.ImportModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		st, _ := ctx.Value(pendingKey{}).(*callState)
		op := uint32(stack[0])
		in, ok := mod.Memory().Read(uint32(stack[1]), uint32(stack[2]))
		if !ok {
			panic(errors.New("wasmcorn.call: argument region outside memory"))
		}
		reply := host.dispatch(op, in)
		outPtr, outCap := uint32(stack[3]), uint32(stack[4])
		if uint32(len(reply)) <= outCap {
			if !mod.Memory().Write(outPtr, reply) {
				panic(errors.New("wasmcorn.call: reply region outside memory"))
			}
		} else if st != nil {
			st.reply = reply
		}
		stack[0] = uint64(uint32(len(reply)))
	}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32},
		[]api.ValueType{api.ValueTypeI32}).Export(abi.ImportCall).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		st, _ := ctx.Value(pendingKey{}).(*callState)
		ptr, capacity := uint32(stack[0]), uint32(stack[1])
		if st == nil || st.reply == nil || uint32(len(st.reply)) > capacity {
			stack[0] = uint64(0xffffffff)
			return
		}
		if !mod.Memory().Write(ptr, st.reply) {
			panic(errors.New("wasmcorn.result: region outside memory"))
		}
		stack[0] = uint64(uint32(len(st.reply)))
		st.reply = nil
	}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export(abi.ImportResult).
		Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("harness: host module: %w", err)
	}
	return &Runtime{rt: rt, host: host}, nil
}

// Close frees the runtime and every module.
func (r *Runtime) Close(ctx context.Context) error { return r.rt.Close(ctx) }

// Plugin is a compiled plugin with its files.
type Plugin struct {
	r     *Runtime
	cm    wazero.CompiledModule
	files *bundlefs.FS
	// Stdout and Stderr collect the guests' output (all instances).
	Stdout, Stderr *SyncBuffer
	// Env is the WASI environment of new instances.
	Env map[string]string
	// Dirs are extra read-only directories of new instances, guest path
	// to host path, mounted after the plugin's files.
	Dirs map[string]string
}

// Compile compiles a plugin .wasm (runtime plus the wasmcorn.files section).
// It compiles the module without the section, as a host should: plugins
// built on the same runtime without wizer then share one compiled module.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Plugin, error) {
	module, sec, err := bundlefs.Split(wasm)
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, fmt.Errorf("harness: the plugin has no %s section", bundlefs.SectionName)
	}
	files, err := bundlefs.New(sec)
	if err != nil {
		return nil, err
	}
	if r.Instrument {
		if module, err = wasmrewrite.InstrumentLoops(module, wasmrewrite.Options{}); err != nil {
			return nil, fmt.Errorf("harness: instrument: %w", err)
		}
	}
	cm, err := r.rt.CompileModule(ctx, module)
	if err != nil {
		return nil, fmt.Errorf("harness: compile: %w", err)
	}
	return &Plugin{r: r, cm: cm, files: files, Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}}, nil
}

// Instance is one instantiated guest. Not safe for concurrent use, except
// SetInterruptFlag.
type Instance struct {
	mod       api.Module
	alloc     api.Function
	handle    api.Function
	job       api.Function
	stores    []*uint32 // the guest's interrupt table: where to store...
	storeVals []uint32  // ...what
	state     callState
	bufPtr    uint32
	bufCap    uint32
	stack     [2]uint64
	callCount int
}

// Instantiate creates an instance and runs _initialize when exported.
func (p *Plugin) Instantiate(ctx context.Context) (*Instance, error) {
	in := &Instance{}
	fsc := wazero.NewFSConfig().WithFSMount(p.files, bundlefs.GuestPath)
	for guest, hostDir := range p.Dirs {
		fsc = fsc.WithReadOnlyDirMount(hostDir, guest)
	}
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader).
		WithStdout(p.Stdout).WithStderr(p.Stderr).
		WithFSConfig(fsc)
	for k, v := range p.Env {
		mc = mc.WithEnv(k, v)
	}
	cctx := context.WithValue(ctx, pendingKey{}, &in.state)
	mod, err := p.r.rt.InstantiateModule(withAllocator(cctx), p.cm, mc)
	if err != nil {
		return nil, fmt.Errorf("harness: instantiate: %w", err)
	}
	in.mod = mod
	if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
		if _, err := f.Call(cctx); err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("harness: _initialize: %w", err)
		}
	}
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.handle = mod.ExportedFunction(abi.ExportHandle)
	in.job = mod.ExportedFunction(abi.ExportJob)
	if f := mod.ExportedFunction(InterruptExport); f != nil {
		res, err := f.Call(cctx)
		if err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("harness: %s: %w", InterruptExport, err)
		}
		buf, _ := mod.Memory().Read(0, mod.Memory().Size())
		table, err := abi.ReadInterruptTable(buf, uint32(res[0]))
		if err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("harness: %w", err)
		}
		// Pointers into linear memory, taken now: Interrupt runs while the
		// guest runs and must not touch wazero's memory object (memory.grow
		// rewrites its slice header). They stay valid where memory never
		// moves (the mmap allocator); elsewhere there are no soft stops.
		if stableMemory {
			for _, e := range table {
				in.stores = append(in.stores, (*uint32)(unsafe.Pointer(&buf[e.Addr])))
				in.storeVals = append(in.storeVals, e.Value)
			}
		}
	}
	return in, nil
}

// Close frees the compiled module.
func (p *Plugin) Close(ctx context.Context) error { return p.cm.Close(ctx) }

// Close frees the instance.
func (in *Instance) Close(ctx context.Context) error { return in.mod.Close(ctx) }

// MemoryBytes is the instance's linear memory size.
func (in *Instance) MemoryBytes() uint32 { return in.mod.Memory().Size() }

// InterruptExport is the optional guest export `() -> i32` giving the
// address of its interrupt table: u32 count, then count pairs of (u32
// address, u32 value). At a call's deadline the host stores each value at
// its address, in order, as atomic 32-bit stores; the guest then stops the
// call by itself (the Python shim raises DeadlineExceeded and answers 504).
const InterruptExport = "wasmcorn_interrupt_stores"

// Interrupt asks a running call to stop softly by performing the guest's
// interrupt stores. Safe from any goroutine until Close; false if the
// guest has none.
func (in *Instance) Interrupt() bool {
	if len(in.stores) == 0 {
		return false
	}
	for i, p := range in.stores {
		atomic.StoreUint32(p, in.storeVals[i])
	}
	return true
}

// Call runs export (abi.ExportHandle or abi.ExportJob) on msg and returns a
// copy of the reply.
func (in *Instance) Call(ctx context.Context, export string, msg []byte) ([]byte, error) {
	fn := in.handle
	if export == abi.ExportJob {
		fn = in.job
	}
	if fn == nil {
		return nil, fmt.Errorf("harness: %s not exported", export)
	}
	cctx := context.WithValue(ctx, pendingKey{}, &in.state)
	n := uint32(len(msg))
	if n > in.bufCap || in.bufPtr == 0 {
		size := max(n, 4096)
		in.stack[0] = uint64(size)
		if err := in.alloc.CallWithStack(cctx, in.stack[:1]); err != nil {
			return nil, fmt.Errorf("harness: alloc: %w", err)
		}
		in.bufPtr, in.bufCap = uint32(in.stack[0]), size
	}
	mem := in.mod.Memory()
	if !mem.Write(in.bufPtr, msg) {
		return nil, errors.New("harness: request outside memory")
	}
	in.stack[0], in.stack[1] = uint64(in.bufPtr), uint64(n)
	if err := fn.CallWithStack(cctx, in.stack[:2]); err != nil {
		return nil, fmt.Errorf("harness: %s: %w", export, err)
	}
	in.callCount++
	ptr, size := abi.UnpackPtrLen(in.stack[0])
	out, ok := mem.Read(ptr, size)
	if !ok {
		return nil, fmt.Errorf("harness: %s returned %#x+%d outside memory", export, ptr, size)
	}
	return append([]byte(nil), out...), nil
}

// Get builds a GET request for path (with an optional "?query").
func Get(target string, headers ...string) []byte {
	path, query, _ := strings.Cut(target, "?")
	req := abi.Request{Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte(path), RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:5000"),
		RequestID: []byte("req-1")}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Headers = append(req.Headers, abi.Header{Name: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	return abi.AppendRequest(nil, &req)
}

// SyncBuffer is a goroutine-safe bytes buffer for guest output.
type SyncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	return len(p), nil
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

var _ io.Writer = (*SyncBuffer)(nil)

// RuntimeDir is sdk-python/build/runtime (made by `make python-runtime`),
// found from the working directory of a test in this repository.
func RuntimeDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "sdk-python", "build", "runtime")
		if _, err := os.Stat(filepath.Join(p, "wasmcorn-python.wasm")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("sdk-python/build/runtime/wasmcorn-python.wasm not found: run make python-runtime")
		}
		dir = parent
	}
}

// ThreadCPU returns the CPU time the calling OS thread has used (Linux;
// 0 elsewhere). Lock the goroutine to its thread around a measurement.
func ThreadCPU() time.Duration { return threadCPU() }

// RSSBytes returns this process's resident set size (Linux), or 0.
func RSSBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss uint64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0
	}
	return rss * uint64(os.Getpagesize())
}
