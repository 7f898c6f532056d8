// Package wasmtime is wasmcorn's second engine: Wasmtime (Cranelift
// compiler, cgo) behind the same engine interface as the default wazero
// engine. Importing it registers the engine under the name "wasmtime"; the
// wasmcorn binary does so only when built with the "wasmtime" build tag
// (see wasmtime.mk), so the default build stays free of cgo and of this
// module's 200 MB dependency.
//
// The engine talks to Wasmtime's C API directly, through a small C shim
// (shim.c), using only the static library and headers that
// github.com/bytecodealliance/wasmtime-go ships. Stores run in Wasmtime's
// async mode: a request is one cgo call (write the request, start the
// export with wasmtime_func_call_async and poll its future, read the
// outcome from C memory) plus one more per host call. The two host
// functions are async (wasmtime_linker_define_async_func): they record the
// guest's request in C memory and suspend the guest, the poll returns to
// Go, Go serves the host call on the calling goroutine, outside any cgo
// call, and polls again. No Go allocation per call or host call.
//
// Deadlines use epoch interruption: every call starts with the store's
// deadline one epoch tick ahead, and Interrupt sets a flag on the instance
// then increments the engine's epoch, so the guest runs a C callback at its
// next loop back-edge or function entry, which stops it. No ticker runs:
// the host's watchdog decides when a call is late. Memory is capped by the
// store's limiter; compiled modules are serialized to Config.CacheDir.
//
// A guest runs inside a cgo call, so a spinning guest never delays Go's
// stop-the-world phases; a host call that blocks (a database query, say)
// runs outside the cgo call and parks only its goroutine, as on wazero.
package wasmtime

/*
#cgo CFLAGS: -I${SRCDIR}/include -O2
#include <stdlib.h>
#include "shim.h"

static const char *wt_version(void) { return WASMTIME_VERSION; }
*/
import "C"

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	// The Go binding is imported only for the static libwasmtime.a it
	// links (its cgo LDFLAGS); this package uses the C API itself.
	_ "github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

// Name is this engine's config name.
const Name = "wasmtime"

// Version is the version of the Wasmtime library linked in.
var Version = C.GoString(C.wt_version())

func init() { engine.Register(Name, New) }

// Engine runs modules on Wasmtime. It holds two Wasmtime engines, created
// on first use: one compiling with epoch interruption (the default, for
// modules whose deadline is enforced) and one without (deadline_enforced =
// false). It is safe for concurrent use.
type Engine struct {
	cacheDir string

	mu       sync.Mutex
	variants [2]*variant // index 1: epoch interruption
	closed   bool
}

// variant is one Wasmtime engine and the linker holding the WASI and
// wasmcorn imports every module of that engine is instantiated with.
type variant struct {
	engine *C.wasm_engine_t
	linker *C.wasmtime_linker_t
	epoch  bool
}

// New returns a wasmtime engine. cfg.CacheDir, when set, holds serialized
// compiled modules, keyed by the module's SHA-256, the Wasmtime version and
// whether epoch interruption is compiled in. Its files are native code: each
// carries a checksum that is verified before Wasmtime loads it, which
// catches damage, not tampering, so the directory must be writable only by
// the server's user.
func New(cfg engine.Config) (engine.Engine, error) {
	e := &Engine{}
	if cfg.CacheDir != "" {
		e.cacheDir = filepath.Join(cfg.CacheDir, "wasmtime-"+Version)
		if err := os.MkdirAll(e.cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("wasmtime: compilation cache in %s: %w", cfg.CacheDir, err)
		}
	}
	removeStaleFiles(e.filesBase())
	// Create the default variant now, so that a broken setup fails at
	// startup rather than at the first plugin.
	if _, err := e.variant(true); err != nil {
		return nil, err
	}
	return e, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Close implements engine.Engine. Modules must be closed first.
func (e *Engine) Close(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	for i, v := range e.variants {
		if v != nil {
			C.wasmtime_linker_delete(v.linker)
			C.wasm_engine_delete(v.engine)
			e.variants[i] = nil
		}
	}
	return nil
}

func (e *Engine) variant(epoch bool) (*variant, error) {
	i := 0
	if epoch {
		i = 1
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("wasmtime: engine closed")
	}
	if v := e.variants[i]; v != nil {
		return v, nil
	}
	eng := C.wt_engine_new(boolInt(epoch))
	if eng == nil {
		return nil, errors.New("wasmtime: cannot create engine")
	}
	l := C.wasmtime_linker_new(eng)
	if err := C.wasmtime_linker_define_wasi(l); err != nil {
		C.wasmtime_linker_delete(l)
		C.wasm_engine_delete(eng)
		return nil, fmt.Errorf("wasmtime: define WASI: %s", errorMessage(err))
	}
	mod, call, res := C.CString(abi.ImportModule), C.CString(abi.ImportCall), C.CString(abi.ImportResult)
	err := C.wt_linker_define_host(l, mod, call, res)
	C.free(unsafe.Pointer(mod))
	C.free(unsafe.Pointer(call))
	C.free(unsafe.Pointer(res))
	if err != nil {
		C.wasmtime_linker_delete(l)
		C.wasm_engine_delete(eng)
		return nil, fmt.Errorf("wasmtime: define host functions: %s", errorMessage(err))
	}
	v := &variant{engine: eng, linker: l, epoch: epoch}
	e.variants[i] = v
	return v, nil
}

// Compile implements engine.Engine.
func (e *Engine) Compile(ctx context.Context, name string, wasm []byte, cfg engine.ModuleConfig) (engine.Module, error) {
	v, err := e.variant(cfg.Interruptible)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", name, err)
	}
	sum := sha256.Sum256(wasm)
	cm, err := e.load(v, wasm, sum)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: compile: %w", name, err)
	}
	info := describe(cm)
	if err := checkModule(name, info); err != nil {
		C.wasmtime_module_delete(cm)
		return nil, err
	}
	var pre *C.wasmtime_instance_pre_t
	if cerr := C.wasmtime_linker_instantiate_pre(v.linker, cm, &pre); cerr != nil {
		C.wasmtime_module_delete(cm)
		return nil, fmt.Errorf("plugin %q: link imports: %s", name, errorMessage(cerr))
	}
	m := &module{
		name: name, v: v, cm: cm, pre: pre, cfg: cfg, exports: info.exports,
		maxMemory: int64(cfg.MaxMemoryPages) * 65536,
	}
	if cfg.Files != nil {
		if m.filesDir, err = materialize(e.filesBase(), cfg.Files); err != nil {
			C.wasmtime_instance_pre_delete(pre)
			C.wasmtime_module_delete(cm)
			return nil, fmt.Errorf("plugin %q: %w", name, err)
		}
	}
	m.envNames, m.envValues = newCStrings(len(cfg.Env)), newCStrings(len(cfg.Env))
	for k, val := range cfg.Env {
		m.envNames.add(k)
		m.envValues.add(val)
	}
	// The bundled files come first (fd 3), as on wazero: snapshots of
	// Python plugins expect them there.
	m.dirs = m.cfg.Dirs
	if m.filesDir != "" {
		m.dirs = append([]engine.DirGrant{{GuestPath: engine.FilesGuestPath, HostPath: m.filesDir}}, m.cfg.Dirs...)
	}
	m.dirHosts, m.dirGuests = newCStrings(len(m.dirs)), newCStrings(len(m.dirs))
	for _, d := range m.dirs {
		m.dirHosts.add(d.HostPath)
		m.dirGuests.add(d.GuestPath)
	}
	return m, nil
}

// load returns the compiled module, from the on-disk cache when an earlier
// run serialized it for this Wasmtime version and engine variant.
func (e *Engine) load(v *variant, wasm []byte, sum [32]byte) (*C.wasmtime_module_t, error) {
	var path string
	if e.cacheDir != "" {
		kind := "plain"
		if v.epoch {
			kind = "epoch"
		}
		path = filepath.Join(e.cacheDir, hex.EncodeToString(sum[:])+"-"+kind+".cwasm")
		if cm := deserializeFile(v, path); cm != nil {
			return cm, nil
		}
	}
	var cm *C.wasmtime_module_t
	var p *C.uint8_t
	if len(wasm) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(wasm)))
	}
	if err := C.wasmtime_module_new(v.engine, p, C.size_t(len(wasm)), &cm); err != nil {
		return nil, errors.New(errorMessage(err))
	}
	if path != "" {
		serializeFile(cm, path)
	}
	return cm, nil
}

// deserializeFile loads a cached module. Wasmtime must only ever be given
// bytes it serialized itself (they are native code), so each file ends with
// the SHA-256 of what precedes it and is checked before use. A missing,
// stale or damaged file yields nil; one that exists but does not load is
// removed.
func deserializeFile(v *variant, path string) *C.wasmtime_module_t {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if len(b) <= sha256.Size {
		os.Remove(path)
		return nil
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		os.Remove(path)
		return nil
	}
	var cm *C.wasmtime_module_t
	if err := C.wasmtime_module_deserialize(v.engine, (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(body))), C.size_t(len(body)), &cm); err != nil {
		// A valid file from another Wasmtime build or configuration.
		C.wasmtime_error_delete(err)
		os.Remove(path)
		return nil
	}
	return cm
}

// serializeFile writes cm and its checksum to path through a temporary
// file and a rename, so a concurrent or crashed writer never leaves a
// partial file under the final name. Failures only cost a recompilation
// next time.
func serializeFile(cm *C.wasmtime_module_t, path string) {
	var buf C.wasm_byte_vec_t
	if err := C.wasmtime_module_serialize(cm, &buf); err != nil {
		C.wasmtime_error_delete(err)
		return
	}
	body := bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(buf.data)), int(buf.size)))
	C.wasm_byte_vec_delete(&buf)
	sum := sha256.Sum256(body)
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if os.WriteFile(tmp, append(body, sum[:]...), 0o644) == nil {
		if os.Rename(tmp, path) != nil {
			os.Remove(tmp)
		}
	} else {
		os.Remove(tmp)
	}
}

// errorMessage returns err's message and deletes err.
func errorMessage(err *C.wasmtime_error_t) string {
	var msg C.wasm_name_t
	C.wasmtime_error_message(err, &msg)
	s := byteVecString(&msg)
	C.wasm_byte_vec_delete(&msg)
	C.wasmtime_error_delete(err)
	return tidyMessage(s)
}

// trapMessage returns trap's message and deletes trap.
func trapMessage(trap *C.wasm_trap_t) string {
	var msg C.wasm_message_t
	C.wasm_trap_message(trap, &msg)
	s := byteVecString(&msg)
	C.wasm_byte_vec_delete(&msg)
	C.wasm_trap_delete(trap)
	return tidyMessage(s)
}

// maxFrames bounds the wasm backtrace kept in an error message.
const maxFrames = 16

// tidyMessage puts the cause of a Wasmtime error first, keeps a bounded
// wasm backtrace and drops the native one, which says nothing useful.
// Wasmtime formats a trap as
//
//	error while executing at wasm backtrace:
//	    0: 0x1234 - mod!func
//	Caused by:
//	    wasm trap: wasm `unreachable` instruction executed
//	Stack backtrace:
//	    0: <unknown>
//
// and this returns "wasm trap: wasm `unreachable` instruction executed"
// followed by "wasm backtrace:" and the frames.
func tidyMessage(msg string) string {
	head, cause, ok := strings.Cut(msg, "\nCaused by:\n")
	if !ok {
		return strings.TrimSpace(msg)
	}
	cause, _, _ = strings.Cut(cause, "\nStack backtrace:")
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(cause), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			if b.Len() > 0 {
				b.WriteString(": ")
			}
			b.WriteString(line)
		}
	}
	lines := strings.Split(strings.TrimSpace(head), "\n")
	if len(lines) > 1 && strings.HasSuffix(lines[0], "wasm backtrace:") {
		b.WriteString("\nwasm backtrace:")
		frames := lines[1:]
		for i, f := range frames {
			if i == maxFrames {
				fmt.Fprintf(&b, "\n    ... %d more frames", len(frames)-maxFrames)
				break
			}
			b.WriteString("\n    ")
			b.WriteString(strings.TrimSpace(f))
		}
	}
	return b.String()
}

func byteVecString(v *C.wasm_byte_vec_t) string {
	if v.size == 0 {
		return ""
	}
	s := C.GoStringN((*C.char)(unsafe.Pointer(v.data)), C.int(v.size))
	return strings.TrimRight(s, "\x00")
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cStrings is a C array of C strings, freed by free.
type cStrings struct {
	p   **C.char
	n   int
	cap int
}

func newCStrings(n int) *cStrings {
	cs := &cStrings{cap: n}
	if n > 0 {
		cs.p = (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	}
	return cs
}

func (cs *cStrings) add(s string) {
	unsafe.Slice(cs.p, cs.cap)[cs.n] = C.CString(s)
	cs.n++
}

func (cs *cStrings) at(i int) *C.char { return unsafe.Slice(cs.p, cs.cap)[i] }

func (cs *cStrings) free() {
	if cs.p == nil {
		return
	}
	for _, s := range unsafe.Slice(cs.p, cs.n) {
		C.free(unsafe.Pointer(s))
	}
	C.free(unsafe.Pointer(cs.p))
	cs.p = nil
}
