/*
 * Soft deadlines for Python guests, at no per-request cost.
 *
 * CPython's evaluation loop already tests one word, the interpreter's
 * eval_breaker, at every backward jump, function entry and call. When the
 * word is nonzero it runs eval_frame_handle_pending(), which raises the
 * thread state's async_exc if one is set (the mechanism behind
 * PyThreadState_SetAsyncExc).
 *
 * The guest exports wasmcorn_interrupt_stores: a table of (address, value)
 * pairs of i32s in linear memory. At a call's deadline the host performs
 * the stores, in order:
 *
 *     tstate->async_exc         = &DeadlineExceeded   (the exception type)
 *     interp->ceval.eval_breaker = 1
 *
 * The next eval-breaker check raises DeadlineExceeded inside the handler,
 * and the SDK turns it into a 504; the instance stays usable. The order
 * matters and is robust against CPython's own recomputation of
 * eval_breaker (take_gil recomputes it, then re-signals a pending
 * async_exc). Nothing is armed between deadlines: arming async_exc in
 * advance would fire at the first I/O call, since take_gil signals any
 * async_exc it finds.
 *
 * The host's write of the type pointer stands for a reference that the
 * raise consumes (eval_frame_handle_pending decrefs it); the type is made
 * effectively immortal at creation (see wasmcorn_deadline_init), so the
 * host never has to count.
 *
 * A soft stop needs the interpreter to reach a check: a long C call (a
 * huge regex, a big-integer power, time.sleep) does not, and a handler may
 * swallow the exception. The host keeps its hard stop (trap) as the
 * backstop after a grace period.
 *
 * This is the only file built with Py_BUILD_CORE: it needs the layout of
 * the interpreter and thread states.
 */
#define Py_BUILD_CORE 1
#include "shim.h"
#include "internal/pycore_pystate.h"

static PyObject *deadline_exc;
static uint32_t stores[1 + 2 * 2];

void wasmcorn_deadline_init(PyObject *exc) {
    deadline_exc = exc;
    Py_SET_REFCNT(exc, Py_REFCNT(exc) + ((Py_ssize_t)1 << 30));
}

int32_t wasmcorn_deadline_stores(void) {
    PyThreadState *ts = _PyThreadState_GET();
    stores[0] = 2;
    stores[1] = (uint32_t)(uintptr_t)&ts->async_exc;
    stores[2] = (uint32_t)(uintptr_t)deadline_exc;
    stores[3] = (uint32_t)(uintptr_t)&ts->interp->ceval.eval_breaker;
    stores[4] = 1;
    return (int32_t)(uintptr_t)stores;
}

/* reset clears a deadline the host signalled after the previous call had
 * already returned (the stores land late) or that the handler never
 * reached. Single-threaded WASI: nothing else is pending. */
static void reset(void) {
    PyThreadState *ts = _PyThreadState_GET();
    if (ts->async_exc != NULL) {
        PyObject *e = ts->async_exc;
        ts->async_exc = NULL;
        Py_DECREF(e);
    }
    _Py_atomic_store_relaxed(&ts->interp->ceval.eval_breaker, 0);
}

void wasmcorn_deadline_begin(void) { reset(); }

void wasmcorn_deadline_end(void) { reset(); }
