/*
 * wasmcorn Python shim: shared declarations between shim.c (public C API of
 * CPython only) and deadline.c (the one file that needs CPython internals).
 */
#ifndef WASMCORN_SHIM_H
#define WASMCORN_SHIM_H

#include <stdint.h>

#define PY_SSIZE_T_CLEAN
#include "Python.h"

/* Where the host mounts the plugin's files (read-only): the standard library
 * in lib/, packages in site/, the app in app/. The bundle builder
 * (sdk-python/tools/wasmcorn_py.py) writes the same layout. */
#define WASMCORN_BUNDLE "/wasmcorn"

/* deadline.c: soft deadlines through CPython's eval breaker. */

/* wasmcorn_deadline_init registers exc (a BaseException subclass) as what a
 * deadline raises, and makes it effectively immortal. */
void wasmcorn_deadline_init(PyObject *exc);
/* wasmcorn_deadline_stores returns the address of the interrupt table:
 * u32 count, then count pairs of (u32 address, u32 value). */
int32_t wasmcorn_deadline_stores(void);
/* wasmcorn_deadline_begin and _end bracket each call into Python; they
 * clear a deadline signalled outside the call. */
void wasmcorn_deadline_begin(void);
void wasmcorn_deadline_end(void);

#endif
