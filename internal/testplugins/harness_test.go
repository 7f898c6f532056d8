package testplugins

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/internal/pluginbuild"
)

// miniHost is a minimal, independent implementation of the host side of
// ABI.md on wazero, so that the plugins and the SDK's wasm glue can be
// tested without the host package. It serves the log and config.get ops
// and records everything else it is asked.
type miniHost struct {
	t       testing.TB
	rt      wazero.Runtime
	mod     api.Module
	alloc   api.Function
	handle  api.Function
	job     api.Function
	reply   []byte
	pending bool
	config  map[string]string
	logs    []logEntry
}

type logEntry struct {
	Level int64
	Msg   string
	Attrs map[string]abi.Value
}

// compileCache keeps compiled plugins on disk next to the built ones, so
// repeated test runs skip wazero's compilation (seconds per plugin).
var compileCache = sync.OnceValue(func() wazero.CompilationCache {
	if dir, err := pluginbuild.CacheDir(); err == nil {
		if c, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "wazero")); err == nil {
			return c
		}
	}
	return wazero.NewCompilationCache()
})

func newRuntime(ctx context.Context) wazero.Runtime {
	return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compileCache()))
}

// startGuest compiles and instantiates plugin name. It returns an error
// for a module that fails to compile, instantiate or pass the ABI check.
func startGuest(t testing.TB, name string) (*miniHost, error) {
	t.Helper()
	return startWasm(t, Bytes(t, name))
}

func startWasm(t testing.TB, wasm []byte) (*miniHost, error) {
	t.Helper()
	ctx := context.Background()
	h := &miniHost{t: t, rt: newRuntime(ctx), config: map[string]string{"greeting": "hi"}}
	t.Cleanup(func() { h.rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, h.rt)
	_, err := h.rt.NewHostModuleBuilder(abi.ImportModule).
		NewFunctionBuilder().WithFunc(h.call).Export(abi.ImportCall).
		NewFunctionBuilder().WithFunc(h.result).Export(abi.ImportResult).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportInitialize]; !ok {
		return nil, fmt.Errorf("missing export %s", abi.ExportInitialize)
	}
	for _, e := range []string{abi.ExportVersion, abi.ExportAlloc, abi.ExportHandle} {
		if _, ok := exports[e]; !ok {
			return nil, fmt.Errorf("missing export %s", e)
		}
	}
	cfg := wazero.NewModuleConfig().WithStartFunctions(abi.ExportInitialize).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithStdout(testWriter{t, "stdout"}).WithStderr(testWriter{t, "stderr"})
	h.mod, err = h.rt.InstantiateModule(ctx, cm, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	v, err := h.mod.ExportedFunction(abi.ExportVersion).Call(ctx)
	if err != nil {
		return nil, fmt.Errorf("abi version: %w", err)
	}
	if int32(v[0]) != abi.Version {
		return nil, fmt.Errorf("guest speaks ABI version %d, want %d", int32(v[0]), abi.Version)
	}
	h.alloc = h.mod.ExportedFunction(abi.ExportAlloc)
	h.handle = h.mod.ExportedFunction(abi.ExportHandle)
	h.job = h.mod.ExportedFunction(abi.ExportJob)
	return h, nil
}

type testWriter struct {
	t      testing.TB
	stream string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("guest %s: %s", w.stream, p)
	return len(p), nil
}

func (h *miniHost) call(ctx context.Context, m api.Module, op, inPtr, inLen, outPtr, outCap uint32) uint32 {
	in, ok := m.Memory().Read(inPtr, inLen)
	if !ok || uint64(outPtr)+uint64(outCap) > uint64(m.Memory().Size()) {
		panic(fmt.Sprintf("wasmcorn.call: region outside memory (in %#x+%d, out %#x+%d)", inPtr, inLen, outPtr, outCap))
	}
	h.reply = h.serve(abi.Op(op), in, h.reply[:0])
	n := uint32(len(h.reply))
	h.pending = n > outCap
	if !h.pending {
		m.Memory().Write(outPtr, h.reply)
	}
	return n
}

func (h *miniHost) result(ctx context.Context, m api.Module, ptr, capacity uint32) int32 {
	if !h.pending || uint32(len(h.reply)) > capacity {
		return -1
	}
	if !m.Memory().Write(ptr, h.reply) {
		panic(fmt.Sprintf("wasmcorn.result: region %#x+%d outside memory", ptr, len(h.reply)))
	}
	h.pending = false
	return int32(len(h.reply))
}

func (h *miniHost) serve(op abi.Op, in, reply []byte) []byte {
	args := abi.NewValues(in)
	switch op {
	case abi.OpLog:
		level, err := args.Int("level")
		if err != nil {
			return abi.AppendReplyError(reply, abi.ErrInvalid, err.Error())
		}
		msg, err := args.Bytes("msg")
		if err != nil {
			return abi.AppendReplyError(reply, abi.ErrInvalid, err.Error())
		}
		e := logEntry{Level: level, Msg: string(msg), Attrs: map[string]abi.Value{}}
		for args.More() {
			k, err := args.Bytes("key")
			if err != nil {
				return abi.AppendReplyError(reply, abi.ErrInvalid, err.Error())
			}
			v, err := args.Next()
			if err != nil {
				return abi.AppendReplyError(reply, abi.ErrInvalid, err.Error())
			}
			v.B = append([]byte(nil), v.B...)
			e.Attrs[string(k)] = v
		}
		h.logs = append(h.logs, e)
		return abi.AppendReplyOK(reply)
	case abi.OpConfigGet:
		key, err := args.Bytes("key")
		if err != nil {
			return abi.AppendReplyError(reply, abi.ErrInvalid, err.Error())
		}
		v, ok := h.config[string(key)]
		if !ok {
			return abi.AppendReplyError(reply, abi.ErrNotFound, "no config key "+string(key))
		}
		return abi.AppendString(abi.AppendReplyOK(reply), v)
	}
	return abi.AppendReplyError(reply, abi.ErrUnknownOp, "mini host does not implement "+op.String())
}

// errOutOfBounds reports a guest result region outside linear memory.
var errOutOfBounds = errors.New("guest returned a region outside memory")

// invoke writes msg into a buffer from wasmcorn_alloc at offset off and
// calls export; it returns a copy of the guest's reply.
func (h *miniHost) invoke(ctx context.Context, export api.Function, msg []byte, off uint32) ([]byte, error) {
	res, err := h.alloc.Call(ctx, uint64(uint32(len(msg))+off))
	if err != nil {
		return nil, fmt.Errorf("alloc: %w", err)
	}
	ptr := uint32(res[0])
	if ptr == 0 || !h.mod.Memory().Write(ptr+off, msg) {
		return nil, fmt.Errorf("alloc returned unusable pointer %#x: %w", ptr, errOutOfBounds)
	}
	res, err = export.Call(ctx, uint64(ptr+off), uint64(len(msg)))
	if err != nil {
		return nil, err
	}
	rp, rn := abi.UnpackPtrLen(res[0])
	out, ok := h.mod.Memory().Read(rp, rn)
	if !ok {
		return nil, fmt.Errorf("reply %#x+%d: %w", rp, rn, errOutOfBounds)
	}
	return append([]byte(nil), out...), nil
}

// do sends req and decodes the response.
func (h *miniHost) do(ctx context.Context, req *abi.Request) (*abi.Response, error) {
	return h.doAt(ctx, req, 0)
}

func (h *miniHost) doAt(ctx context.Context, req *abi.Request, off uint32) (*abi.Response, error) {
	out, err := h.invoke(ctx, h.handle, abi.AppendRequest(nil, req), off)
	if err != nil {
		return nil, err
	}
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (h *miniHost) runJob(ctx context.Context, j *abi.Job) (*abi.JobResult, error) {
	if h.job == nil {
		return nil, fmt.Errorf("no %s export", abi.ExportJob)
	}
	out, err := h.invoke(ctx, h.job, abi.AppendJob(nil, j), 0)
	if err != nil {
		return nil, err
	}
	var res abi.JobResult
	if err := abi.DecodeJobResult(out, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func get(path, query string) *abi.Request {
	return &abi.Request{
		Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte(path), RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:5555"),
		RequestID: []byte("req-1"),
	}
}

func header(r *abi.Response, name string) string {
	for _, h := range r.Headers {
		if string(h.Name) == name {
			return string(h.Value)
		}
	}
	return ""
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs Wasm plugins; skipped with -short")
	}
}
