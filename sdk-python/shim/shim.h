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

/* wasmcorn_deadline_arm makes the next eval-breaker check of the running
 * thread raise exc (a BaseException subclass) if the host sets the flag at
 * wasmcorn_deadline_flag(); it clears the flag first. */
void wasmcorn_deadline_arm(PyObject *exc);
/* wasmcorn_deadline_disarm undoes arm, whether or not the flag was set. */
void wasmcorn_deadline_disarm(void);
/* wasmcorn_deadline_flag is the address of the i32 the host sets to a
 * nonzero value when the call's deadline has passed. */
int32_t *wasmcorn_deadline_flag(void);

#endif
