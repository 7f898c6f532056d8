// Package wazero is the default engine: github.com/tetratelabs/wazero in
// compiler mode, with an on-disk compilation cache, real clocks and crypto
// randomness for guests, linear memory mapped outside the Go heap, and
// deadlines enforced by loop instrumentation (see internal/wasmrewrite and
// docs/RATIONALE.md "Why instrument loops instead of CloseOnContextDone?").
package wazero

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

// Name is this engine's config name.
const Name = "wazero"

func init() { engine.Register(Name, New) }

// Engine runs modules on wazero. Two runtimes share one compilation cache:
// plain, for modules whose loops are instrumented (or that opted out of
// deadlines), and guarded, compiled with WithCloseOnContextDone for modules
// the rewriter cannot handle, so every deadline holds either way.
type Engine struct {
	cache    wazero.CompilationCache
	plain    wazero.Runtime
	guarded  wazero.Runtime
	cacheDir string // also holds prepared (rewritten) modules, keyed by input hash
}

// New returns a wazero engine. cfg.CacheDir, when set, holds compiled code
// across restarts (keyed by wazero on module bytes and its own version).
func New(cfg engine.Config) (engine.Engine, error) {
	ctx := context.Background()
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wazero: compilation cache in %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	mk := func(guarded bool) (wazero.Runtime, error) {
		rc := wazero.NewRuntimeConfigCompiler().
			WithCompilationCache(cache).
			WithCloseOnContextDone(guarded)
		rt := wazero.NewRuntimeWithConfig(ctx, rc)
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			return nil, fmt.Errorf("wazero: instantiate WASI: %w", err)
		}
		_, err := rt.NewHostModuleBuilder(abi.ImportModule).
			NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(hostCall),
				[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32},
				[]api.ValueType{api.ValueTypeI32}).
			WithParameterNames("op", "in_ptr", "in_len", "out_ptr", "out_cap").
			Export(abi.ImportCall).
			NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(hostResult),
				[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32},
				[]api.ValueType{api.ValueTypeI32}).
			WithParameterNames("ptr", "cap").
			Export(abi.ImportResult).
			Instantiate(ctx)
		if err != nil {
			return nil, fmt.Errorf("wazero: instantiate host module: %w", err)
		}
		return rt, nil
	}
	e := &Engine{cache: cache, cacheDir: cfg.CacheDir}
	var err error
	if e.plain, err = mk(false); err != nil {
		return nil, err
	}
	if e.guarded, err = mk(true); err != nil {
		return nil, err
	}
	return e, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Close implements engine.Engine.
func (e *Engine) Close(ctx context.Context) error {
	return errors.Join(e.plain.Close(ctx), e.guarded.Close(ctx), e.cache.Close(ctx))
}

// instrumentLoops rewrites a module so its loops can be interrupted; an
// error means the module must fall back to the guarded runtime. Set by
// instrument.go.
var instrumentLoops func(wasm []byte) ([]byte, error)

// dataImage splits a module into its code without the data section and
// the image of its initial memory (wasmrewrite.DataImage); ok is false when
// that is not equivalent. Set by instrument.go.
var dataImage func(wasm []byte) (code, image []byte, ok bool)

// hasStart reports whether a module has a start section; set by
// instrument.go.
var hasStart func(wasm []byte) bool

// Compile implements engine.Engine.
func (e *Engine) Compile(ctx context.Context, name string, wasm []byte, cfg engine.ModuleConfig) (engine.Module, error) {
	if hasStart != nil && hasStart(wasm) {
		return nil, fmt.Errorf("plugin %q: %w: the module has a start section, which runs inside instantiation where no deadline can stop it; build it as a WASI reactor (exporting _initialize)", name, engine.ErrInit)
	}
	rt := e.plain
	mode := "off"
	var sum [32]byte
	if cfg.SHA256 != nil {
		sum = *cfg.SHA256
	} else {
		sum = sha256.Sum256(wasm)
	}
	// Instances start from the data image (a copy-on-write mapping) instead
	// of wazero applying the data segments: see wasmrewrite.DataImage.
	code, img, instrumented := e.prepared(wasm, sum, cfg.Interruptible)
	if cfg.Interruptible {
		rt, mode = e.guarded, "guarded"
		if instrumented {
			rt, mode = e.plain, "instrumented"
		}
	}
	var image *memImage
	if img != nil {
		if im, err := newMemImage(img); err == nil {
			image = im
		} else {
			// No room for the image file: compile with the data section
			// after all (the rewrites are cheap next to compiling).
			code = wasm
			if instrumented {
				if code, err = instrumentLoops(wasm); err != nil {
					return nil, fmt.Errorf("plugin %q: instrument: %w", name, err)
				}
			}
		}
	}
	cm, err := compileGuarded(ctx, rt, code)
	if err != nil {
		image.close()
		return nil, fmt.Errorf("plugin %q: compile: %w", name, err)
	}
	if err := checkModule(name, cm); err != nil {
		_ = cm.Close(ctx)
		image.close()
		return nil, err
	}
	_, hasInit := cm.ExportedFunctions()[abi.ExportInitialize]
	// _initialize is called by Instantiate itself, not as a start function,
	// so that it runs under a deadline like every other call.
	mc := wazero.NewModuleConfig().
		WithName("").
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader) // sleeps: instance.nanosleep, per instance
	mc = mc.WithStartFunctions()
	for k, v := range cfg.Env {
		mc = mc.WithEnv(k, v)
	}
	if len(cfg.Dirs) > 0 || cfg.Files != nil {
		fc := wazero.NewFSConfig()
		if cfg.Files != nil {
			fc = fc.WithFSMount(cfg.Files, engine.FilesGuestPath) // first: fd 3
		}
		for _, d := range cfg.Dirs {
			if d.ReadWrite {
				fc = fc.(sysfs.FSConfig).WithSysFSMount(newConfinedFS(d.HostPath), d.GuestPath)
			} else {
				fc = fc.WithReadOnlyDirMount(d.HostPath, d.GuestPath)
			}
		}
		mc = mc.WithFSConfig(fc)
	}
	limit := uint64(cfg.MaxMemoryPages) * 65536
	_, hasJob := cm.ExportedFunctions()[abi.ExportJob]
	return &module{
		name: name, rt: rt, cm: cm, mc: mc, cfg: cfg, mode: mode, hasJob: hasJob, hasInit: hasInit,
		alloc: newAllocator(limit, image),
		hash:  sum, image: image,
	}, nil
}

// compileGuarded compiles with a recover: wazero v1.12 can panic on some
// malformed modules (found by fuzzing), and a hostile plugin must never take
// the server down.
func compileGuarded(ctx context.Context, rt wazero.Runtime, code []byte) (cm wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			cm, err = nil, fmt.Errorf("malformed module (the compiler panicked: %v)", r)
		}
	}()
	return rt.CompileModule(ctx, code)
}

// instantiateGuarded instantiates with a recover: wazero v1.12 panics when
// the memory allocator refuses a module's initial memory (a module whose
// minimum exceeds the plugin's max_memory_pages), and a hostile plugin must
// never take the server down.
func instantiateGuarded(ctx context.Context, rt wazero.Runtime, cm wazero.CompiledModule, mc wazero.ModuleConfig) (mod api.Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			mod, err = nil, fmt.Errorf("instantiation failed (memory over the plugin's limit or a runtime fault: %v)", r)
		}
	}()
	return rt.InstantiateModule(ctx, cm, mc)
}

// preparedVersion names the format and content of prepared modules on
// disk; change it whenever the rewrites change, so that files written by
// an older host are not used.
const preparedVersion = "v3" // v2: Go dispatch loops charged at backward jumps only; v3: every call charged

// prepared returns the module as it is compiled: its loops instrumented
// when instrument is true and that is possible (instrumented reports it;
// otherwise the module must run guarded), and, when wasmrewrite.DataImage
// applies, without its data section, image being the initial memory
// contents instances must start from (nil when wazero applies the data
// itself). The result comes from the on-disk cache when an earlier load
// made it (the rewrites are deterministic), keyed by the input's hash, the
// mode and preparedVersion, and checked by a CRC-32C.
func (e *Engine) prepared(wasm []byte, sum [32]byte, instrument bool) (code, image []byte, instrumented bool) {
	kind := "plain"
	if instrument {
		kind = "instrumented"
	}
	var path string
	if e.cacheDir != "" {
		path = filepath.Join(e.cacheDir, "prepared", preparedVersion+"-"+kind+"-"+hex.EncodeToString(sum[:]))
		if b, err := os.ReadFile(path); err == nil {
			if code, image, instrumented, ok := decodePrepared(b); ok {
				return code, image, instrumented
			}
		}
	}
	code = wasm
	if instrument && instrumentLoops != nil {
		if out, err := instrumentLoops(wasm); err == nil {
			code, instrumented = out, true
		}
	}
	if dataImage != nil {
		if c, img, ok := dataImage(code); ok {
			code, image = c, img
		}
	}
	if path != "" {
		// Write then rename, so a concurrent or crashed writer never leaves
		// a partial file under the final name.
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			writePrepared(path, encodePrepared(code, image, instrumented))
		}
	}
	return code, image, instrumented
}

// writePrepared writes b to path through a temporary file of its own, so
// that concurrent loads of the same module do not write into each other's.
// A failure only costs the next load the rewrite.
func writePrepared(path string, b []byte) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// A prepared file: magic, instrumented flag, code and image lengths
// (uint64 little endian), CRC-32C of code and image, code, image.
const preparedMagic = "wcprep1\n"

const preparedHeader = len(preparedMagic) + 1 + 8 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodePrepared(code, image []byte, instrumented bool) []byte {
	b := make([]byte, preparedHeader, preparedHeader+len(code)+len(image))
	copy(b, preparedMagic)
	if instrumented {
		b[len(preparedMagic)] = 1
	}
	binary.LittleEndian.PutUint64(b[len(preparedMagic)+1:], uint64(len(code)))
	binary.LittleEndian.PutUint64(b[len(preparedMagic)+9:], uint64(len(image)))
	b = append(append(b, code...), image...)
	binary.LittleEndian.PutUint32(b[len(preparedMagic)+17:], crc32.Checksum(b[preparedHeader:], castagnoli))
	return b
}

func decodePrepared(b []byte) (code, image []byte, instrumented, ok bool) {
	if len(b) < preparedHeader || string(b[:len(preparedMagic)]) != preparedMagic || b[len(preparedMagic)] > 1 {
		return nil, nil, false, false
	}
	nc := binary.LittleEndian.Uint64(b[len(preparedMagic)+1:])
	ni := binary.LittleEndian.Uint64(b[len(preparedMagic)+9:])
	rest := b[preparedHeader:]
	if nc > uint64(len(rest)) || ni != uint64(len(rest))-nc ||
		crc32.Checksum(rest, castagnoli) != binary.LittleEndian.Uint32(b[len(preparedMagic)+17:]) {
		return nil, nil, false, false
	}
	code = rest[:nc:nc]
	if ni > 0 {
		image = rest[nc:]
	}
	return code, image, b[len(preparedMagic)] == 1, true
}

type sig struct {
	params, results []api.ValueType
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64

	requiredExports = map[string]sig{
		abi.ExportVersion: {nil, []api.ValueType{i32}},
		abi.ExportAlloc:   {[]api.ValueType{i32}, []api.ValueType{i32}},
		abi.ExportHandle:  {[]api.ValueType{i32, i32}, []api.ValueType{i64}},
	}
	optionalExports = map[string]sig{
		abi.ExportJob:             {[]api.ValueType{i32, i32}, []api.ValueType{i64}},
		abi.ExportInitialize:      {nil, nil},
		abi.ExportInterruptStores: {nil, []api.ValueType{i32}},
	}
)

// checkModule verifies exports and imports before any instance exists, with
// one distinct error per failure.
func checkModule(name string, cm wazero.CompiledModule) error {
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportVersion]; !ok {
		if _, isCmd := exports["_start"]; isCmd {
			return fmt.Errorf("plugin %q: %w: it is a WASI command (exports _start), not a wasmcorn reactor; build Go plugins with -buildmode=c-shared and the wasmcorn SDK", name, engine.ErrMissingExport)
		}
	}
	check := func(exp string, want sig, required bool) error {
		def, ok := exports[exp]
		if !ok {
			if required {
				return fmt.Errorf("plugin %q: %w: %s is not exported", name, engine.ErrMissingExport, exp)
			}
			return nil
		}
		if !equalTypes(def.ParamTypes(), want.params) || !equalTypes(def.ResultTypes(), want.results) {
			return fmt.Errorf("plugin %q: %w: %s has type %s, want %s", name, engine.ErrMissingExport,
				exp, fmtSig(def.ParamTypes(), def.ResultTypes()), fmtSig(want.params, want.results))
		}
		return nil
	}
	for _, exp := range []string{abi.ExportVersion, abi.ExportAlloc, abi.ExportHandle} {
		if err := check(exp, requiredExports[exp], true); err != nil {
			return err
		}
	}
	for exp, want := range optionalExports {
		if err := check(exp, want, false); err != nil {
			return err
		}
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, fn, _ := imp.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
		case abi.ImportModule:
			if fn != abi.ImportCall && fn != abi.ImportResult {
				return fmt.Errorf("plugin %q: imports %s.%s, which this host does not provide (ABI version %d has %s and %s)",
					name, mod, fn, abi.Version, abi.ImportCall, abi.ImportResult)
			}
		default:
			return fmt.Errorf("plugin %q: imports %s.%s, which this host does not provide (only %s and %s functions exist)",
				name, mod, fn, abi.ImportModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	return nil
}

func equalTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fmtSig(params, results []api.ValueType) string {
	var b bytes.Buffer
	b.WriteByte('(')
	for i, p := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(api.ValueTypeName(p))
	}
	b.WriteString(") -> (")
	for i, r := range results {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(api.ValueTypeName(r))
	}
	b.WriteByte(')')
	return b.String()
}

type module struct {
	name    string
	rt      wazero.Runtime
	cm      wazero.CompiledModule
	mc      wazero.ModuleConfig
	cfg     engine.ModuleConfig
	mode    string // off, instrumented or guarded
	hasJob  bool
	hasInit bool
	alloc   allocator
	hash    [32]byte
	image   *memImage // initial memory contents, nil when wazero applies the data
}

// Mode reports how deadlines are enforced for this module: "instrumented",
// "guarded" (wazero CloseOnContextDone) or "off".
func (m *module) Mode() string { return m.mode }

func (m *module) HasExport(name string) bool {
	_, ok := m.cm.ExportedFunctions()[name]
	return ok
}

func (m *module) Close(ctx context.Context) error {
	err := m.cm.Close(ctx)
	m.image.close() // live instances keep their mappings
	return err
}

func (m *module) Instantiate(ctx context.Context, hc engine.HostCaller) (engine.Instance, error) {
	in := &instance{mod: m, hc: hc, wake: make(chan struct{})}
	in.ectx.in = in
	in.ectx.Context = ctx
	mc := m.mc.WithNanosleep(in.nanosleep)
	if m.cfg.Stdout != nil {
		mc = mc.WithStdout(engine.NewLineSplitter(m.cfg.Stdout))
	}
	if m.cfg.Stderr != nil {
		mc = mc.WithStderr(engine.NewLineSplitter(m.cfg.Stderr))
	}
	// The memory allocator travels in the context wazero instantiates with;
	// host calls made by _initialize find the instance through ectx.
	ia := m.alloc.forInstance()
	ictx := &instantiateCtx{Context: experimental.WithMemoryAllocator(context.Background(), ia), ectx: &in.ectx}
	mod, err := instantiateGuarded(ictx, m.rt, m.cm, mc)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w: %v", m.name, engine.ErrInit, err)
	}
	in.m = mod
	in.mem = mod.Memory()
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.handle = mod.ExportedFunction(abi.ExportHandle)
	in.job = mod.ExportedFunction(abi.ExportJob)
	if in.mem == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w: the module has no memory", m.name, engine.ErrMissingExport)
	}
	if m.mode == "instrumented" {
		g, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
		if !ok {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("plugin %q: %w: instrumented module lacks its interrupt global", m.name, engine.ErrInit)
		}
		in.interruptG = g
	}
	if m.hasInit {
		if _, err := in.bounded(ctx, mod.ExportedFunction(abi.ExportInitialize)); err != nil {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("plugin %q: %w: _initialize: %v", m.name, engine.ErrInit, err)
		}
	}
	res, err := in.bounded(ctx, mod.ExportedFunction(abi.ExportVersion))
	if err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w: %s trapped: %v", m.name, engine.ErrInit, abi.ExportVersion, err)
	}
	if got := int32(res[0]); got != abi.Version {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w: plugin speaks wasmcorn ABI version %d; this host implements version %d",
			m.name, engine.ErrABIVersion, got, abi.Version)
	}
	if f := mod.ExportedFunction(abi.ExportInterruptStores); f != nil {
		res, err := in.bounded(ctx, f)
		if err == nil {
			in.stores, err = softStores(in.mem, uint32(res[0]))
		}
		if err != nil {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("plugin %q: %w: %s: %v", m.name, engine.ErrInit, abi.ExportInterruptStores, err)
		}
	}
	ia.started()
	return in, nil
}

// softStores reads and checks the guest's interrupt table once per
// instance, before any call, and turns its addresses into pointers into
// linear memory, so that SoftInterrupt never touches wazero's memory
// object, whose slice header a running memory.grow rewrites (a data race).
// The pointers stay valid because the mmap allocator reserves the maximum
// memory once and never moves it; where memory can move (stableMemory is
// false) the table is ignored and deadlines stop the guest hard.
func softStores(mem api.Memory, ptr uint32) ([]softStore, error) {
	buf, _ := mem.Read(0, mem.Size())
	table, err := abi.ReadInterruptTable(buf, ptr)
	if err != nil || !stableMemory {
		return nil, err
	}
	out := make([]softStore, len(table))
	for i, e := range table {
		out[i] = softStore{p: (*uint32)(unsafe.Pointer(&buf[e.Addr])), v: e.Value}
	}
	return out, nil
}

// softStore is one interrupt store: v goes to *p.
type softStore struct {
	p *uint32
	v uint32
}

// bounded calls an export during instantiation (_initialize, the ABI
// version, the interrupt table), interrupting it at ctx's deadline or after
// engine.InitTimeout: a guest spinning in any of them must not hang a load
// or a request that waits for a new instance. Instantiation is rare, so a
// timer per call is fine here.
func (in *instance) bounded(ctx context.Context, f api.Function) ([]uint64, error) {
	d := engine.InitTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = time.Until(dl)
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.AfterFunc(d, in.Interrupt)
	in.ectx.Context = cctx
	res, err := f.Call(&in.ectx)
	in.ectx.Context = ctx
	if !t.Stop() {
		// The timer fired (or is firing): the instance is or will be
		// interrupted, so it is unusable even if the export returned.
		return nil, fmt.Errorf("did not finish within %v", d)
	}
	return res, err
}

// interruptExport must match wasmrewrite.InterruptExport.
var interruptExport = "wasmcorn.interrupt"

// instantiateCtx carries the memory allocator (a context value wazero
// reads) and the instance for host calls during _initialize.
type instantiateCtx struct {
	context.Context
	ectx *execCtx
}

// execCtx is the context passed to every export call. Host functions find
// their instance through it with a type assertion: no map, no allocation.
type execCtx struct {
	context.Context
	in *instance
}

type instance struct {
	mod        *module
	hc         engine.HostCaller
	m          api.Module
	mem        api.Memory
	alloc      api.Function
	handle     api.Function
	job        api.Function
	interruptG api.MutableGlobal

	ectx        execCtx
	stack       [2]uint64
	bufPtr      uint32
	bufCap      uint32
	reply       []byte
	pending     bool
	interrupted atomic.Bool
	wake        chan struct{} // closed by Interrupt: ends a guest's sleep
	closeOnce   sync.Once
	stores      []softStore // the guest's interrupt table, nil without one
}

func execOf(ctx context.Context) *instance {
	switch c := ctx.(type) {
	case *execCtx:
		return c.in
	case *instantiateCtx:
		return c.ectx.in
	}
	return nil
}

func (in *instance) MemoryBytes() uint64 { return uint64(in.mem.Size()) }

func (in *instance) Interrupt() {
	if in.interrupted.Swap(true) {
		return
	}
	if in.interruptG != nil {
		in.interruptG.Set(1)
	}
	close(in.wake)
	// Guarded modules stop through the context's Done channel, which the
	// caller's watchdog closes.
}

// nanosleep is the guest's sleep (WASI poll_oneoff with a clock, as Go's
// time.Sleep and Python's time.sleep use): a real sleep that Interrupt ends
// early, so that a guest asleep past its deadline is stopped like a
// spinning one (wazero's own sleep cannot be interrupted). After an early
// wake the guest runs on to its next loop check or call and traps there.
func (in *instance) nanosleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.wake:
	}
}

// SoftInterrupt asks the running call to stop by itself, by performing the
// guest's interrupt stores (ABI.md, "Soft deadlines"). It returns false when
// the guest has no interrupt table. Each store is an atomic aligned 32-bit
// store through a pointer taken at instantiation (see softStores). The
// watchdog calls it under the call's lock, so the instance cannot be closed
// (its memory unmapped) meanwhile.
func (in *instance) SoftInterrupt() bool {
	if len(in.stores) == 0 || in.interrupted.Load() {
		return false
	}
	for _, s := range in.stores {
		atomic.StoreUint32(s.p, s.v)
	}
	return true
}

func (in *instance) Close(ctx context.Context) error {
	var err error
	in.closeOnce.Do(func() {
		if in.m != nil {
			err = in.m.Close(ctx)
		}
	})
	return err
}

func (in *instance) Call(ctx context.Context, export string, req []byte, maxOut uint32) ([]byte, error) {
	fn := in.handle
	if export == abi.ExportJob {
		fn = in.job
		if fn == nil {
			return nil, fmt.Errorf("plugin %q: %w: %s is not exported", in.mod.name, engine.ErrMissingExport, abi.ExportJob)
		}
	} else if export != abi.ExportHandle {
		return nil, fmt.Errorf("plugin %q: %w: %s is not a callable export", in.mod.name, engine.ErrMissingExport, export)
	}
	in.ectx.Context = ctx
	n := uint32(len(req))
	if n > in.bufCap || in.bufPtr == 0 {
		size := n
		if size < 4096 {
			size = 4096
		}
		in.stack[0] = uint64(size)
		if err := in.alloc.CallWithStack(&in.ectx, in.stack[:1]); err != nil {
			return nil, in.callError(abi.ExportAlloc, err)
		}
		ptr := uint32(in.stack[0])
		if ptr == 0 || uint64(ptr)+uint64(size) > uint64(in.mem.Size()) {
			return nil, fmt.Errorf("plugin %q: %w: %s(%d) returned %#x, outside memory of %d bytes",
				in.mod.name, engine.ErrTrap, abi.ExportAlloc, size, ptr, in.mem.Size())
		}
		in.bufPtr, in.bufCap = ptr, size
	}
	if !in.mem.Write(in.bufPtr, req) {
		return nil, fmt.Errorf("plugin %q: %w: request buffer %#x+%d outside memory", in.mod.name, engine.ErrTrap, in.bufPtr, n)
	}
	in.stack[0], in.stack[1] = uint64(in.bufPtr), uint64(n)
	if err := fn.CallWithStack(&in.ectx, in.stack[:2]); err != nil {
		return nil, in.callError(export, err)
	}
	ptr, size := abi.UnpackPtrLen(in.stack[0])
	if size > maxOut {
		return nil, fmt.Errorf("plugin %q: %w: %d bytes, limit %d", in.mod.name, engine.ErrResponseTooLarge, size, maxOut)
	}
	out, ok := in.mem.Read(ptr, size)
	if !ok {
		return nil, fmt.Errorf("plugin %q: %w: %s returned %#x+%d, outside memory of %d bytes",
			in.mod.name, engine.ErrTrap, export, ptr, size, in.mem.Size())
	}
	return out, nil
}

func (in *instance) callError(export string, err error) error {
	var exit *sys.ExitError
	if in.interrupted.Load() || (errors.As(err, &exit) &&
		(exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled)) {
		return fmt.Errorf("plugin %q: %w", in.mod.name, engine.ErrInterrupted)
	}
	return fmt.Errorf("plugin %q: %w in %s: %v", in.mod.name, engine.ErrTrap, export, err)
}

// trapError is panicked by host functions on a bad guest pointer; wazero
// turns the panic into an error returned from the export call.
type trapError struct{ msg string }

func (e *trapError) Error() string { return e.msg }

func hostCall(ctx context.Context, mod api.Module, stack []uint64) {
	in := execOf(ctx)
	if in == nil {
		panic(&trapError{"wasmcorn.call: no call in progress"})
	}
	op := uint32(stack[0])
	inPtr, inLen := uint32(stack[1]), uint32(stack[2])
	outPtr, outCap := uint32(stack[3]), uint32(stack[4])
	mem := mod.Memory()
	args, ok := mem.Read(inPtr, inLen)
	if !ok {
		panic(&trapError{fmt.Sprintf("wasmcorn.call(%s): argument region %#x+%d outside memory of %d bytes",
			abi.Op(op), inPtr, inLen, mem.Size())})
	}
	if uint64(outPtr)+uint64(outCap) > uint64(mem.Size()) {
		panic(&trapError{fmt.Sprintf("wasmcorn.call(%s): reply region %#x+%d outside memory of %d bytes",
			abi.Op(op), outPtr, outCap, mem.Size())})
	}
	in.reply = in.hc.HostCall(in.ectx.Context, op, args, in.reply[:0])
	n := uint32(len(in.reply))
	if n <= outCap {
		out, _ := mem.Read(outPtr, n)
		copy(out, in.reply)
		in.pending = false
	} else {
		in.pending = true
	}
	if cap(in.reply) > 1<<20 && !in.pending {
		in.reply = nil // do not pin a huge reply buffer per instance
	}
	stack[0] = uint64(n)
}

func hostResult(ctx context.Context, mod api.Module, stack []uint64) {
	in := execOf(ctx)
	ptr, capacity := uint32(stack[0]), uint32(stack[1])
	// The whole region the guest names must be memory (ABI.md), whether or
	// not anything is copied into it, as for call's reply region.
	if uint64(ptr)+uint64(capacity) > uint64(mod.Memory().Size()) {
		panic(&trapError{fmt.Sprintf("wasmcorn.result: region %#x+%d outside memory of %d bytes",
			ptr, capacity, mod.Memory().Size())})
	}
	if in == nil || !in.pending || uint32(len(in.reply)) > capacity {
		stack[0] = api.EncodeI32(-1)
		return
	}
	out, _ := mod.Memory().Read(ptr, uint32(len(in.reply)))
	copy(out, in.reply)
	in.pending = false
	stack[0] = uint64(len(in.reply))
}
