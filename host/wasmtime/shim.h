// shim.h: the C side of the wasmtime engine. The store runs in Wasmtime's
// async mode: a call is a future that wt_call and wt_resume poll. The two
// host functions are async: they record the guest's request in the store's
// wt_pending and suspend the guest, the poll returns WT_PENDING to Go, Go
// serves the host call on its own goroutine (free to block on a database
// or Redis without holding a locked thread) and resumes. A request without
// host calls is one cgo call.
#ifndef WASMCORN_WT_SHIM_H
#define WASMCORN_WT_SHIM_H

#include <stdint.h>
#include <wasmtime.h>

// Status codes of wt_call.
enum {
  WT_OK = 0,
  WT_ALLOC_FAILED = 1,  // wasmcorn_alloc trapped or failed; err or trap set
  WT_ALLOC_BAD = 2,     // wasmcorn_alloc returned a region outside memory
  WT_CALL_FAILED = 3,   // the export trapped or failed; err or trap set
  WT_INTERRUPTED = 4,   // Interrupt came before the call started
  WT_PENDING = 5,       // the guest waits on the host call in s->pend
};

// Kinds of pending host call.
enum { WT_HC_NONE = 0, WT_HC_CALL = 1, WT_HC_RESULT = 2 };

// wt_pending is the host call a suspended guest waits on. Go reads kind
// and a, then sets ret (or trap) and done before wt_resume.
typedef struct wt_pending {
  int kind;       // WT_HC_CALL (a[0..4]: op, in_ptr, in_len, out_ptr, out_cap) or WT_HC_RESULT (a[0..1]: ptr, cap)
  uint32_t a[5];
  int done;
  int32_t ret;
  uintptr_t trap;  // a wasm_trap_t* from Go: the guest traps with it
  wasmtime_val_t *results;   // where the host function's result goes
  wasm_trap_t **trap_ret;    // where Wasmtime reads a trap from
} wt_pending;

// Phases of a call in progress.
enum { WT_PH_NONE = 0, WT_PH_SIMPLE = 1, WT_PH_ALLOC = 2, WT_PH_CALL = 3 };

// Which export wt_call calls.
enum { WT_HANDLE = 0, WT_JOB = 1, WT_VERSION = 2, WT_INIT = 3, WT_STORES = 4, WT_NFN = 5 };

// wt_store is one instance: its store, its exports and the outcome of the
// last call, which Go reads directly from this (C) memory after wt_call.
typedef struct wt_store {
  wasmtime_store_t *store;
  wasmtime_context_t *cx;
  wasm_engine_t *engine;
  uintptr_t handle;  // the Go instance's slot in the registry (registry.go)
  int epoch;         // compiled with epoch interruption
  uint32_t interrupt;  // set by wt_interrupt; read with __atomic builtins

  int has_mem;
  wasmtime_memory_t mem;
  wasmtime_func_t fn[WT_NFN];  // indexed by WT_HANDLE...WT_STORES
  int has_fn[WT_NFN];
  wasmtime_func_t alloc;

  uint32_t buf_ptr, buf_cap;  // the reusable request buffer

  // Outcome of the last call.
  uint64_t result;  // the export's (ptr<<32 | len), alloc's pointer, or the version
  uint8_t *mem_data;  // fixed for the life of the instance
  size_t mem_size;    // as of the end of the last call (memory only grows)
  wasmtime_error_t *err;
  wasm_trap_t *trap;

  // The call in progress (phase != WT_PH_NONE): its future and what the
  // future borrows until deleted.
  int phase;
  int which;
  const uint8_t *req;  // the request, valid until the call returns to Go for good
  size_t req_n;
  wasmtime_call_future_t *fut;
  wasmtime_val_t args[2];
  wasmtime_val_t results[1];
  wasm_trap_t *fut_trap;
  wasmtime_error_t *fut_err;
  wt_pending pend;
} wt_store;

wt_store *wt_store_new(wasm_engine_t *engine, int epoch, uintptr_t handle,
                       int64_t max_memory_bytes);
// wt_store_set_wasi gives the store its WASI context (taking ownership of
// wasi), sending stdout and stderr to the Go instance when asked.
wasmtime_error_t *wt_store_set_wasi(wt_store *s, wasi_config_t *wasi,
                                    int capture_stdout, int capture_stderr);
// wt_instantiate instantiates pre in s and looks the ABI exports up. It
// returns an error or sets *trap on failure; *missing names an absent
// required export (memory, alloc, handle, version).
wasmtime_error_t *wt_instantiate(wt_store *s, const wasmtime_instance_pre_t *pre,
                                 wasm_trap_t **trap, const char **missing);
void wt_store_delete(wt_store *s);

// wt_call runs export which: WT_HANDLE and WT_JOB with the request;
// WT_VERSION, WT_INIT and WT_STORES take no arguments.
// wt_call's request is passed as an integer so that cgo does not check it
// on every call; it is copied into guest memory before any guest code (and
// so any Go callback) runs.
// It returns WT_PENDING while the guest waits on a host call: Go serves
// s->pend and calls wt_resume, which returns like wt_call.
int wt_call(wt_store *s, int which, uintptr_t req, size_t n);
int wt_resume(wt_store *s);
size_t wt_refresh_size(wt_store *s);
void wt_interrupt(wt_store *s);

wasmtime_error_t *wt_linker_define_host(wasmtime_linker_t *l, const char *module,
                                        const char *call, const char *result);
wasm_engine_t *wt_engine_new(int epoch);

#endif
