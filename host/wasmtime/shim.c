// shim.c: see shim.h.
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"
#include "shim.h"

wasm_engine_t *wt_engine_new(int epoch) {
  wasm_config_t *c = wasm_config_new();
  if (c == NULL) return NULL;
  wasmtime_config_epoch_interruption_set(c, epoch != 0);
  // Linear memory never moves (32-bit memories fit in the default 4 GiB
  // reservation): the base pointer is read once per instance.
  wasmtime_config_memory_may_move_set(c, false);
  // Calls run as futures on a separate stack so that the host functions
  // can suspend the guest (see shim.h).
  wasmtime_config_async_support_set(c, true);
  return wasm_engine_new_with_config(c);  // takes ownership of c
}

// wt_epoch_deadline runs, in the thread running the guest, whenever the
// engine's epoch passes the store's deadline, which is set one tick ahead of
// the epoch at the start of every call. Interrupt increments the epoch, so
// every running guest of the engine comes here once: the interrupted one
// stops, the others carry on with a deadline one tick further. Nothing ticks
// the epoch otherwise, so an uninterrupted guest never comes here.
static wasmtime_error_t *wt_epoch_deadline(wasmtime_context_t *cx, void *data,
                                           uint64_t *delta,
                                           wasmtime_update_deadline_kind_t *kind) {
  (void)cx;
  wt_store *s = data;
  // Pairs with the fence in wt_interrupt (message passing: the flag is
  // stored before the epoch is incremented), so a guest that saw the new
  // epoch also sees the flag. An acquire fence is free on x86.
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (__atomic_load_n(&s->interrupt, __ATOMIC_RELAXED)) {
    return wasmtime_error_new("wasmcorn: interrupted at deadline");
  }
  *delta = 1;
  *kind = WASMTIME_UPDATE_DEADLINE_CONTINUE;
  return NULL;
}

void wt_interrupt(wt_store *s) {
  __atomic_store_n(&s->interrupt, 1, __ATOMIC_RELAXED);
  // Orders the flag before the epoch increment (see wt_epoch_deadline).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (s->epoch) wasmtime_engine_increment_epoch(s->engine);
}

wt_store *wt_store_new(wasm_engine_t *engine, int epoch, uintptr_t handle,
                       int64_t max_memory_bytes) {
  wt_store *s = calloc(1, sizeof(wt_store));
  if (s == NULL) return NULL;
  s->engine = engine;
  s->epoch = epoch;
  s->handle = handle;
  s->store = wasmtime_store_new(engine, s, NULL);
  if (s->store == NULL) {
    free(s);
    return NULL;
  }
  s->cx = wasmtime_store_context(s->store);
  wasmtime_store_limiter(s->store, max_memory_bytes > 0 ? max_memory_bytes : -1,
                         -1, -1, -1, -1);
  if (epoch) {
    wasmtime_store_epoch_deadline_callback(s->store, wt_epoch_deadline, s, NULL);
    wasmtime_context_set_epoch_deadline(s->cx, 1);
  }
  return s;
}

static ptrdiff_t wt_stdout(void *data, const unsigned char *buf, size_t n) {
  return wtGuestOutput(((wt_store *)data)->handle, 1, (void *)buf, n);
}

static ptrdiff_t wt_stderr(void *data, const unsigned char *buf, size_t n) {
  return wtGuestOutput(((wt_store *)data)->handle, 2, (void *)buf, n);
}

wasmtime_error_t *wt_store_set_wasi(wt_store *s, wasi_config_t *wasi,
                                    int capture_stdout, int capture_stderr) {
  if (capture_stdout) wasi_config_set_stdout_custom(wasi, wt_stdout, s, NULL);
  if (capture_stderr) wasi_config_set_stderr_custom(wasi, wt_stderr, s, NULL);
  return wasmtime_context_set_wasi(s->cx, wasi);
}

static int wt_export_func(wt_store *s, wasmtime_instance_t *inst, const char *name,
                          wasmtime_func_t *out) {
  wasmtime_extern_t item;
  if (!wasmtime_instance_export_get(s->cx, inst, name, strlen(name), &item)) return 0;
  if (item.kind != WASMTIME_EXTERN_FUNC) {
    wasmtime_extern_delete(&item);
    return 0;
  }
  *out = item.of.func;
  return 1;
}

wasmtime_error_t *wt_instantiate(wt_store *s, const wasmtime_instance_pre_t *pre,
                                 wasm_trap_t **trap, const char **missing) {
  wasmtime_instance_t inst;
  *trap = NULL;
  *missing = NULL;
  wasmtime_error_t *err = NULL;
  wasmtime_call_future_t *f =
      wasmtime_instance_pre_instantiate_async(pre, s->cx, &inst, trap, &err);
  // Only a start function runs guest code here, and a host call from it
  // traps at once (wt_host_fn: no memory yet), so the future never waits
  // on Go.
  while (!wasmtime_call_future_poll(f)) {
  }
  wasmtime_call_future_delete(f);
  if (err != NULL || *trap != NULL) return err;
  wasmtime_extern_t item;
  if (wasmtime_instance_export_get(s->cx, &inst, "memory", 6, &item)) {
    if (item.kind == WASMTIME_EXTERN_MEMORY) {
      s->mem = item.of.memory;
      s->has_mem = 1;
    } else {
      wasmtime_extern_delete(&item);
    }
  }
  if (!s->has_mem) {
    *missing = "memory";
    return NULL;
  }
  if (!wt_export_func(s, &inst, "wasmcorn_alloc", &s->alloc)) {
    *missing = "wasmcorn_alloc";
    return NULL;
  }
  s->has_fn[WT_HANDLE] = wt_export_func(s, &inst, "wasmcorn_handle", &s->fn[WT_HANDLE]);
  s->has_fn[WT_JOB] = wt_export_func(s, &inst, "wasmcorn_job", &s->fn[WT_JOB]);
  s->has_fn[WT_VERSION] = wt_export_func(s, &inst, "wasmcorn_abi_version", &s->fn[WT_VERSION]);
  s->has_fn[WT_INIT] = wt_export_func(s, &inst, "_initialize", &s->fn[WT_INIT]);
  s->has_fn[WT_STORES] =
      wt_export_func(s, &inst, "wasmcorn_interrupt_stores", &s->fn[WT_STORES]);
  if (!s->has_fn[WT_HANDLE]) *missing = "wasmcorn_handle";
  if (!s->has_fn[WT_VERSION]) *missing = "wasmcorn_abi_version";
  s->mem_data = wasmtime_memory_data(s->cx, &s->mem);
  s->mem_size = wasmtime_memory_data_size(s->cx, &s->mem);
  return NULL;
}

void wt_store_delete(wt_store *s) {
  if (s->fut) wasmtime_call_future_delete(s->fut);
  if (s->err) wasmtime_error_delete(s->err);
  if (s->trap) wasm_trap_delete(s->trap);
  wasmtime_store_delete(s->store);
  free(s);
}

// Memory never moves (see wt_engine_new) and only grows, so mem_data is
// read once and mem_size is refreshed after every call, or on demand when a
// host function sees a region past it (wt_refresh_size).
static inline void wt_refresh_mem(wt_store *s) {
  s->mem_size = wasmtime_memory_data_size(s->cx, &s->mem);
}

size_t wt_refresh_size(wt_store *s) {
  wt_refresh_mem(s);
  return s->mem_size;
}

// wt_start begins a call of f as the store's future; wt_step polls it.
static void wt_start(wt_store *s, int phase, const wasmtime_func_t *f, size_t nargs,
                     size_t nresults) {
  s->phase = phase;
  s->fut_trap = NULL;
  s->fut_err = NULL;
  s->fut = wasmtime_func_call_async(s->cx, f, s->args, nargs, s->results, nresults,
                                    &s->fut_trap, &s->fut_err);
}

static int wt_step(wt_store *s);

// wt_begin_handle writes the request into the guest's buffer and starts
// the export with (ptr, len).
static int wt_begin_handle(wt_store *s) {
  if (s->req_n > 0) memcpy(s->mem_data + s->buf_ptr, s->req, s->req_n);
  s->args[0].kind = WASMTIME_I32;
  s->args[0].of.i32 = (int32_t)s->buf_ptr;
  s->args[1].kind = WASMTIME_I32;
  s->args[1].of.i32 = (int32_t)s->req_n;
  wt_start(s, WT_PH_CALL, &s->fn[s->which], 2, 1);
  return wt_step(s);
}

// wt_step polls the call in progress until it finishes or waits on a host
// call (WT_PENDING), then moves to the call's next phase.
static int wt_step(wt_store *s) {
  for (;;) {
    if (wasmtime_call_future_poll(s->fut)) break;
    if (s->pend.kind != WT_HC_NONE && !s->pend.done) return WT_PENDING;
    // Nothing else makes the future yield (no fuel, no async epoch
    // yields): poll again.
  }
  wasmtime_call_future_delete(s->fut);
  s->fut = NULL;
  int phase = s->phase;
  s->phase = WT_PH_NONE;
  s->err = s->fut_err;
  s->trap = s->fut_trap;
  wt_refresh_mem(s);
  int failed = s->err != NULL || s->trap != NULL;
  switch (phase) {
    case WT_PH_SIMPLE:
      if (failed) return WT_CALL_FAILED;
      if (s->which != WT_INIT) s->result = (uint32_t)s->results[0].of.i32;
      return WT_OK;
    case WT_PH_ALLOC: {
      if (failed) return WT_ALLOC_FAILED;
      uint32_t size = (uint32_t)s->args[0].of.i32;
      uint32_t ptr = (uint32_t)s->results[0].of.i32;
      if (ptr == 0 || (uint64_t)ptr + size > s->mem_size) {
        s->result = ((uint64_t)ptr << 32) | size;
        return WT_ALLOC_BAD;
      }
      s->buf_ptr = ptr;
      s->buf_cap = size;
      return wt_begin_handle(s);
    }
    default:
      if (failed) return WT_CALL_FAILED;
      s->result = (uint64_t)s->results[0].of.i64;
      return WT_OK;
  }
}

// wt_call runs one call: for WT_HANDLE and WT_JOB it writes req into the
// guest's request buffer (growing it through wasmcorn_alloc when too small)
// and calls the export with (ptr, len); WT_VERSION, WT_INIT and WT_STORES
// take no arguments (the first and last return an i32 in result). The
// outcome is left in s (result, memory, err or trap).
int wt_call(wt_store *s, int which, uintptr_t reqp, size_t n) {
  s->err = NULL;
  s->trap = NULL;
  s->result = 0;
  s->which = which;
  s->req = (const uint8_t *)reqp;
  s->req_n = n;
  if (s->epoch) {
    // The deadline is not set again here: it is always at most one tick
    // past the engine's epoch (set so at store creation, and by every
    // wt_epoch_deadline), so any increment from now on passes it. An
    // increment that came while the store was idle only makes the guest
    // enter wt_epoch_deadline once at its first check, which re-arms it.
    // Pairs with wt_interrupt: if the flag is not seen here, Interrupt's
    // increment is still to come and will pass the deadline.
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&s->interrupt, __ATOMIC_RELAXED)) return WT_INTERRUPTED;
  }
  if (which == WT_VERSION || which == WT_INIT || which == WT_STORES) {
    wt_start(s, WT_PH_SIMPLE, &s->fn[which], 0, which == WT_INIT ? 0 : 1);
    return wt_step(s);
  }
  if (n > s->buf_cap || s->buf_ptr == 0) {
    uint32_t size = n < 4096 ? 4096 : (uint32_t)n;
    s->args[0].kind = WASMTIME_I32;
    s->args[0].of.i32 = (int32_t)size;
    wt_start(s, WT_PH_ALLOC, &s->alloc, 1, 1);
    return wt_step(s);
  }
  return wt_begin_handle(s);
}

int wt_resume(wt_store *s) { return wt_step(s); }

// Host functions. Both are async: they record the guest's request in
// s->pend and suspend the guest until Go has served it (wt_pending_ready).

// wt_pending_ready is the continuation of a suspended host call: done once
// Go has set pend.done.
static bool wt_pending_ready(void *env) {
  wt_store *s = env;
  if (!s->pend.done) return false;
  if (s->pend.trap != 0) {
    *s->pend.trap_ret = (wasm_trap_t *)s->pend.trap;
  } else {
    s->pend.results[0].kind = WASMTIME_I32;
    s->pend.results[0].of.i32 = s->pend.ret;
  }
  s->pend.kind = WT_HC_NONE;
  s->pend.done = 0;
  s->pend.trap = 0;
  return true;
}

static bool wt_ready_now(void *env) {
  (void)env;
  return true;
}

// wt_host_fn is both host functions; env is the kind (WT_HC_CALL or
// WT_HC_RESULT), given when the function was defined.
static void wt_host_fn(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args,
                       size_t nargs, wasmtime_val_t *results, size_t nresults,
                       wasm_trap_t **trap_ret, wasmtime_async_continuation_t *cont) {
  (void)nresults;
  int kind = (int)(uintptr_t)env;
  wt_store *s = wasmtime_context_get_data(wasmtime_caller_context(caller));
  cont->finalizer = NULL;
  if (!s->has_mem) {
    static const char msg[] = "wasmcorn: host call before the instance had memory";
    *trap_ret = wasmtime_trap_new(msg, sizeof msg - 1);
    cont->callback = wt_ready_now;
    cont->env = NULL;
    return;
  }
  s->pend.kind = kind;
  for (size_t i = 0; i < nargs && i < 5; i++) s->pend.a[i] = (uint32_t)args[i].of.i32;
  s->pend.done = 0;
  s->pend.ret = 0;
  s->pend.trap = 0;
  s->pend.results = results;
  s->pend.trap_ret = trap_ret;
  cont->callback = wt_pending_ready;
  cont->env = s;
}

static wasm_functype_t *wt_functype_i32(size_t nparams, size_t nresults) {
  wasm_valtype_t *ps[8], *rs[8];
  for (size_t i = 0; i < nparams; i++) ps[i] = wasm_valtype_new(WASM_I32);
  for (size_t i = 0; i < nresults; i++) rs[i] = wasm_valtype_new(WASM_I32);
  wasm_valtype_vec_t params, results;
  wasm_valtype_vec_new(&params, nparams, ps);
  wasm_valtype_vec_new(&results, nresults, rs);
  return wasm_functype_new(&params, &results);
}

wasmtime_error_t *wt_linker_define_host(wasmtime_linker_t *l, const char *module,
                                        const char *call, const char *result) {
  wasm_functype_t *ty = wt_functype_i32(5, 1);
  wasmtime_error_t *err = wasmtime_linker_define_async_func(
      l, module, strlen(module), call, strlen(call), ty, wt_host_fn,
      (void *)(uintptr_t)WT_HC_CALL, NULL);
  wasm_functype_delete(ty);
  if (err != NULL) return err;
  ty = wt_functype_i32(2, 1);
  err = wasmtime_linker_define_async_func(l, module, strlen(module), result,
                                          strlen(result), ty, wt_host_fn,
                                          (void *)(uintptr_t)WT_HC_RESULT, NULL);
  wasm_functype_delete(ty);
  return err;
}
