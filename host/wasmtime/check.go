package wasmtime

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

// wasiModule is the WASI import module the linker provides.
const wasiModule = "wasi_snapshot_preview1"

type valKind = C.wasm_valkind_t

type funcSig struct {
	params, results []valKind
}

type externInfo struct {
	kind C.wasm_externkind_t
	sig  funcSig // for functions
}

type importInfo struct {
	module, name string
	externInfo
}

type moduleInfo struct {
	exports map[string]externInfo
	imports []importInfo
}

// describe reads a compiled module's exports and imports.
func describe(cm *C.wasmtime_module_t) moduleInfo {
	info := moduleInfo{exports: map[string]externInfo{}}
	var ev C.wasm_exporttype_vec_t
	C.wasmtime_module_exports(cm, &ev)
	for _, et := range unsafe.Slice(ev.data, int(ev.size)) {
		info.exports[nameString(C.wasm_exporttype_name(et))] = externOf(C.wasm_exporttype_type(et))
	}
	C.wasm_exporttype_vec_delete(&ev)
	var iv C.wasm_importtype_vec_t
	C.wasmtime_module_imports(cm, &iv)
	for _, it := range unsafe.Slice(iv.data, int(iv.size)) {
		info.imports = append(info.imports, importInfo{
			module:     nameString(C.wasm_importtype_module(it)),
			name:       nameString(C.wasm_importtype_name(it)),
			externInfo: externOf(C.wasm_importtype_type(it)),
		})
	}
	C.wasm_importtype_vec_delete(&iv)
	return info
}

func externOf(ty *C.wasm_externtype_t) externInfo {
	x := externInfo{kind: C.wasm_externtype_kind(ty)}
	if x.kind == C.WASM_EXTERN_FUNC {
		ft := C.wasm_externtype_as_functype_const(ty)
		x.sig.params = valKinds(C.wasm_functype_params(ft))
		x.sig.results = valKinds(C.wasm_functype_results(ft))
	}
	return x
}

func valKinds(v *C.wasm_valtype_vec_t) []valKind {
	var ks []valKind
	for _, vt := range unsafe.Slice(v.data, int(v.size)) {
		ks = append(ks, C.wasm_valtype_kind(vt))
	}
	return ks
}

func nameString(n *C.wasm_name_t) string {
	if n == nil || n.size == 0 {
		return ""
	}
	return C.GoStringN((*C.char)(unsafe.Pointer(n.data)), C.int(n.size))
}

var (
	i32 = valKind(C.WASM_I32)
	i64 = valKind(C.WASM_I64)

	requiredExports = []struct {
		name string
		sig  funcSig
	}{
		{abi.ExportVersion, funcSig{nil, []valKind{i32}}},
		{abi.ExportAlloc, funcSig{[]valKind{i32}, []valKind{i32}}},
		{abi.ExportHandle, funcSig{[]valKind{i32, i32}, []valKind{i64}}},
	}
	optionalExports = []struct {
		name string
		sig  funcSig
	}{
		{abi.ExportJob, funcSig{[]valKind{i32, i32}, []valKind{i64}}},
		{abi.ExportInitialize, funcSig{nil, nil}},
		{abi.ExportInterruptStores, funcSig{nil, []valKind{i32}}},
	}
	hostImports = map[string]funcSig{
		abi.ImportCall:   {[]valKind{i32, i32, i32, i32, i32}, []valKind{i32}},
		abi.ImportResult: {[]valKind{i32, i32}, []valKind{i32}},
	}
)

// checkModule verifies exports and imports before any instance exists,
// with one distinct error per failure (the same checks and messages as the
// wazero engine).
func checkModule(name string, info moduleInfo) error {
	if _, ok := info.exports[abi.ExportVersion]; !ok {
		if _, isCmd := info.exports["_start"]; isCmd {
			return fmt.Errorf("plugin %q: %w: it is a WASI command (exports _start), not a wasmcorn reactor; build Go plugins with -buildmode=c-shared and the wasmcorn SDK", name, engine.ErrMissingExport)
		}
	}
	check := func(exp string, want funcSig, required bool) error {
		x, ok := info.exports[exp]
		if !ok {
			if required {
				return fmt.Errorf("plugin %q: %w: %s is not exported", name, engine.ErrMissingExport, exp)
			}
			return nil
		}
		if x.kind != C.WASM_EXTERN_FUNC {
			return fmt.Errorf("plugin %q: %w: %s is a %s, want a function", name, engine.ErrMissingExport, exp, kindName(x.kind))
		}
		if !equalKinds(x.sig.params, want.params) || !equalKinds(x.sig.results, want.results) {
			return fmt.Errorf("plugin %q: %w: %s has type %s, want %s", name, engine.ErrMissingExport, exp, x.sig, want)
		}
		return nil
	}
	for _, r := range requiredExports {
		if err := check(r.name, r.sig, true); err != nil {
			return err
		}
	}
	for _, o := range optionalExports {
		if err := check(o.name, o.sig, false); err != nil {
			return err
		}
	}
	if x, ok := info.exports["memory"]; !ok || x.kind != C.WASM_EXTERN_MEMORY {
		return fmt.Errorf("plugin %q: %w: the module has no memory", name, engine.ErrMissingExport)
	}
	for _, imp := range info.imports {
		switch {
		case imp.module == wasiModule && imp.kind == C.WASM_EXTERN_FUNC:
			// The linker checks names and types: an unknown WASI function
			// fails at link time with Wasmtime's message.
		case imp.module == abi.ImportModule && imp.kind == C.WASM_EXTERN_FUNC:
			want, ok := hostImports[imp.name]
			if !ok {
				return fmt.Errorf("plugin %q: imports %s.%s, which this host does not provide (ABI version %d has %s and %s)",
					name, imp.module, imp.name, abi.Version, abi.ImportCall, abi.ImportResult)
			}
			if !equalKinds(imp.sig.params, want.params) || !equalKinds(imp.sig.results, want.results) {
				return fmt.Errorf("plugin %q: imports %s.%s with type %s; the host provides %s",
					name, imp.module, imp.name, imp.sig, want)
			}
		case imp.kind != C.WASM_EXTERN_FUNC:
			return fmt.Errorf("plugin %q: imports %s %s.%s, which this host does not provide (only %s and %s functions exist)",
				name, kindName(imp.kind), imp.module, imp.name, abi.ImportModule, wasiModule)
		default:
			return fmt.Errorf("plugin %q: imports %s.%s, which this host does not provide (only %s and %s functions exist)",
				name, imp.module, imp.name, abi.ImportModule, wasiModule)
		}
	}
	return nil
}

func equalKinds(a, b []valKind) bool {
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

func (s funcSig) String() string {
	var b strings.Builder
	list := func(ks []valKind) {
		for i, k := range ks {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(valKindName(k))
		}
	}
	b.WriteByte('(')
	list(s.params)
	b.WriteString(") -> (")
	list(s.results)
	b.WriteByte(')')
	return b.String()
}

func valKindName(k valKind) string {
	switch k {
	case C.WASM_I32:
		return "i32"
	case C.WASM_I64:
		return "i64"
	case C.WASM_F32:
		return "f32"
	case C.WASM_F64:
		return "f64"
	case C.WASM_EXTERNREF:
		return "externref"
	case C.WASM_FUNCREF:
		return "funcref"
	}
	return fmt.Sprintf("valkind(%d)", k)
}

func kindName(k C.wasm_externkind_t) string {
	switch k {
	case C.WASM_EXTERN_FUNC:
		return "function"
	case C.WASM_EXTERN_GLOBAL:
		return "global"
	case C.WASM_EXTERN_TABLE:
		return "table"
	case C.WASM_EXTERN_MEMORY:
		return "memory"
	}
	return fmt.Sprintf("extern kind %d", k)
}
