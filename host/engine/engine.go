// Package engine defines the interface between wasmcorn and a WebAssembly
// runtime. It is a leaf package: engines (wazero in host/internal/wazero,
// wasmtime in the separate module host/wasmtime) import it, and the host
// package drives them through it without seeing a runtime type.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"
)

// FilesGuestPath is where ModuleConfig.Files is mounted in the guest.
const FilesGuestPath = "/wasmcorn"

// InitTimeout bounds a guest's _initialize, and the host calls it makes,
// when the context of Module.Instantiate has no earlier deadline.
const InitTimeout = 60 * time.Second

// Engine compiles WebAssembly modules. Implementations register themselves
// with Register: wazero (the default) always, wasmtime when the binary is
// built with the "wasmtime" build tag. No engine type leaks through
// this interface. An Engine is safe for concurrent use.
type Engine interface {
	// Name is the engine's config name, e.g. "wazero".
	Name() string
	// Compile validates and compiles wasm. name is used in errors only.
	// The returned module checks the ABI (exports, imports, version) on
	// Instantiate, not here, because the version is read from an instance.
	Compile(ctx context.Context, name string, wasm []byte, cfg ModuleConfig) (Module, error)
	// Close releases the engine; modules must be closed first.
	Close(ctx context.Context) error
}

// ModuleConfig is what an engine needs to know about a plugin at compile
// and instantiate time. The zero value means: no memory limit beyond the
// Wasm maximum, no filesystem, no environment, real clocks.
type ModuleConfig struct {
	// MaxMemoryPages caps linear memory (64 KiB pages); 0 means 65536.
	MaxMemoryPages uint32
	// Env is the guest's environment, only what the manifest grants.
	Env map[string]string
	// Files, when set, is mounted read-only at FilesGuestPath as the first
	// preopened directory (a plugin's bundled files, e.g. a Python app and
	// its standard library, which snapshots expect at fd 3).
	Files fs.FS
	// Dirs maps guest paths to host directories the manifest grants
	// (read-only unless ReadWrite); empty means no filesystem at all.
	Dirs []DirGrant
	// Stdout and Stderr receive the guest's WASI output, line-buffered by the
	// caller (the server routes them into the structured log).
	Stdout, Stderr LineWriter
	// Interruptible asks for a module whose calls can be stopped at a
	// deadline (see Instance.Interrupt). Engines that cannot do so cheaply
	// must still honour it; turning it off is the per-plugin opt-out for
	// trusted code (`deadline_enforced = false` in the manifest).
	Interruptible bool
	// SHA256, when set, is the SHA-256 of the module bytes given to
	// Compile, computed by the caller (the host hashes every module for
	// its version); engines that key caches by content use it instead of
	// hashing again. It must be exact: the host sets it only from the
	// very bytes it passes.
	SHA256 *[32]byte
}

// DirGrant is one preopened directory.
type DirGrant struct {
	GuestPath string
	HostPath  string
	ReadWrite bool
}

// LineWriter receives one line of guest output at a time (no newline).
type LineWriter interface {
	WriteLine(line []byte)
}

// Module is a compiled plugin. Safe for concurrent Instantiate calls.
type Module interface {
	// Instantiate creates an instance bound to hc (which serves its
	// wasmcorn.call imports), runs _initialize and checks the ABI version.
	// Errors wrap ErrABIVersion, ErrMissingExport or ErrInit as appropriate.
	Instantiate(ctx context.Context, hc HostCaller) (Instance, error)
	// HasExport reports whether the module exports a function of that name.
	HasExport(name string) bool
	// Close frees the compiled code. Live instances must be closed first.
	Close(ctx context.Context) error
}

// Instance is one live guest. It is not safe for concurrent use: the pool
// hands it to one request at a time. Interrupt alone may be called from
// another goroutine (the deadline watchdog) while Call runs.
type Instance interface {
	// Call writes in into guest memory (through wasmcorn_alloc), calls
	// export (ExportHandle or ExportJob) and returns the reply bytes. The
	// returned slice aliases guest memory and is valid only until the next
	// call on this instance; copy it first. A reply longer than maxOut
	// fails with ErrResponseTooLarge without being copied anywhere.
	// A trap returns an error wrapping ErrTrap; a call stopped by Interrupt
	// returns one wrapping ErrInterrupted. After either, the instance must
	// be closed, never reused.
	Call(ctx context.Context, export string, in []byte, maxOut uint32) ([]byte, error)
	// MemoryBytes is the current size of linear memory.
	MemoryBytes() uint64
	// Interrupt stops a running Call as soon as possible. It is safe to call
	// from any goroutine, at any time, more than once.
	Interrupt()
	// Close frees the instance.
	Close(ctx context.Context) error
}

// HostCaller serves a guest's wasmcorn.call import. The engine calls it on
// the goroutine running Instance.Call. in aliases guest memory; the reply is
// appended to reply[:0] and returned (the engine copies it to the guest).
type HostCaller interface {
	HostCall(ctx context.Context, op uint32, in []byte, reply []byte) []byte
}

// Errors engines and pools return; callers branch on them with errors.Is.
var (
	// ErrABIVersion: the guest speaks an ABI version this host does not.
	ErrABIVersion = errors.New("unsupported ABI version")
	// ErrMissingExport: a required export is absent or has the wrong type.
	ErrMissingExport = errors.New("missing or mistyped export")
	// ErrInit: _initialize trapped or the instance could not be created.
	ErrInit = errors.New("instance initialization failed")
	// ErrTrap: the guest trapped (unreachable, out-of-bounds, stack overflow,
	// bad pointer given to a host function...).
	ErrTrap = errors.New("guest trapped")
	// ErrInterrupted: the call was stopped by Interrupt (a deadline).
	ErrInterrupted = errors.New("guest interrupted at deadline")
	// ErrResponseTooLarge: the guest's reply exceeded the limit.
	ErrResponseTooLarge = errors.New("guest response too large")
	// ErrPoolExhausted: no instance became free within the wait bound.
	ErrPoolExhausted = errors.New("no free instance")
	// ErrPoolClosed: the pool is draining or closed.
	ErrPoolClosed = errors.New("plugin pool closed")
)

var engines = map[string]func(Config) (Engine, error){}

// Config is shared by every engine of a process.
type Config struct {
	// CacheDir holds the on-disk compilation cache; empty disables it.
	CacheDir string
}

// Register makes an engine constructor available under name. It is
// called from init functions; registering a name twice panics.
func Register(name string, newEngine func(Config) (Engine, error)) {
	if _, dup := engines[name]; dup {
		panic("host: engine registered twice: " + name)
	}
	engines[name] = newEngine
}

// Names lists the registered engines.
func Names() []string {
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns a new engine by registered name.
func New(name string, cfg Config) (Engine, error) {
	mk, ok := engines[name]
	if !ok {
		return nil, fmt.Errorf("unknown engine %q (built in: %v)", name, Names())
	}
	return mk(cfg)
}
