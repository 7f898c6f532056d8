/*
 * Soft deadlines for Python guests, at no per-instruction cost.
 *
 * CPython's evaluation loop already tests one word, the interpreter's
 * eval_breaker, at every backward jump, function entry and call. When the
 * word is nonzero it runs eval_frame_handle_pending(), which raises the
 * thread state's async_exc if one is set (the mechanism behind
 * PyThreadState_SetAsyncExc).
 *
 * Before each call into Python the shim stores the DeadlineExceeded class in
 * async_exc without signalling it, and clears eval_breaker. Nothing in a
 * single-threaded WASI interpreter sets eval_breaker on its own (no signals,
 * no other threads, no pending calls), so the armed exception stays dormant
 * until the host, at the deadline, stores a nonzero i32 at the address the
 * guest exports through wasmcorn_interrupt_flag. The next check then raises
 * DeadlineExceeded inside the handler; the SDK turns it into a 504.
 *
 * The soft stop needs the interpreter to reach a check: a long C call (a
 * huge regex, a big-integer power) does not. The host keeps a hard stop
 * (trap) as the backstop.
 *
 * This is the only file built with Py_BUILD_CORE: it needs the layout of
 * PyInterpreterState.
 */
#define Py_BUILD_CORE 1
#include "shim.h"
#include "internal/pycore_pystate.h"

int32_t *wasmcorn_deadline_flag(void) {
    PyInterpreterState *interp = _PyInterpreterState_GET();
    return (int32_t *)&interp->ceval.eval_breaker;
}

void wasmcorn_deadline_arm(PyObject *exc) {
    PyThreadState *ts = _PyThreadState_GET();
    Py_INCREF(exc);
    Py_XSETREF(ts->async_exc, exc);
    _Py_atomic_store_relaxed(&ts->interp->ceval.eval_breaker, 0);
}

void wasmcorn_deadline_disarm(void) {
    PyThreadState *ts = _PyThreadState_GET();
    Py_CLEAR(ts->async_exc);
}
