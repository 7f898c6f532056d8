/*
 * wasmcorn Python shim: a WASI reactor that embeds CPython and speaks the
 * wasmcorn ABI (abi/ABI.md), version 1.
 *
 * Exports: _initialize, wasmcorn_abi_version, wasmcorn_alloc,
 * wasmcorn_handle, wasmcorn_job, wasmcorn_interrupt_stores (soft deadlines,
 * see deadline.c) and wasmcorn_wizer_init (pre-initialization by wizer).
 * Imports: wasmcorn.call and wasmcorn.result, offered to Python as the
 * builtin module _wasmcorn.
 *
 * The shim does as little as it can in C: it boots the interpreter with the
 * plugin bundle on sys.path, imports wasmcorn._runtime (pure Python, in the
 * bundle) and hands it each request or job as bytes; _runtime decodes the
 * message, runs the app and returns the encoded response as bytes, which
 * the shim keeps alive until the next call and returns to the host by
 * pointer and length.
 *
 * Life cycle. _initialize runs the C constructors and boots Python. When
 * wizer pre-initializes the module it calls wasmcorn_wizer_init instead,
 * which does the same and marks the state as a snapshot; every instance
 * restored from the snapshot then runs go_live() once, at _initialize or
 * at its first call (wizer may drop _initialize), to reseed what must not
 * be shared between instances.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wasi/libc-environ.h>

#include "shim.h"

#define WASM_EXPORT(name) __attribute__((export_name(name)))
#define WASM_IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))

WASM_IMPORT("wasmcorn", "call")
int32_t wasmcorn_host_call(int32_t op, const void *in, int32_t in_len, void *out, int32_t out_cap);
WASM_IMPORT("wasmcorn", "result")
int32_t wasmcorn_host_result(void *ptr, int32_t cap);

extern void __wasm_call_ctors(void);

static int ctors_done;    /* __wasm_call_ctors ran */
static int py_ready;      /* the interpreter and the app are loaded */
static int from_snapshot; /* booted by wasmcorn_wizer_init */
static int live;          /* go_live ran in this instance */

static PyObject *rt_handle;  /* wasmcorn._runtime.handle(bytes) -> bytes */
static PyObject *rt_job;     /* wasmcorn._runtime.job(bytes) -> bytes */
static PyObject *rt_live;    /* wasmcorn._runtime.go_live() */
static PyObject *deadline_exc; /* _wasmcorn.DeadlineExceeded */
static PyObject *last_reply; /* bytes returned to the host by the last call */

static uint8_t *in_buf;  /* the buffer handed out by wasmcorn_alloc */
static size_t in_cap;

/* ------------------------------------------------------------------ */
/* _wasmcorn: the host calls as a builtin module                       */

#define CALL_BUF_SIZE (16 * 1024)
static uint8_t call_buf[CALL_BUF_SIZE];

PyDoc_STRVAR(wc_call_doc,
"call(op, args) -> bytes\n\n"
"Run host operation op (an abi op number) with the encoded argument values\n"
"args (bytes-like) and return the encoded reply: a code byte, then the\n"
"reply values or an error message.");

/* op_number reads a host op number into *op; -1 with an exception set. */
static int op_number(PyObject *o, int32_t *op) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "op %ld out of range", v);
        return -1;
    }
    *op = (int32_t)v;
    return 0;
}

/* long_reply fetches a reply of n bytes that did not fit call_buf. */
static PyObject *long_reply(int32_t op, int32_t n) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, n);
    if (b == NULL) return NULL;
    int32_t got = wasmcorn_host_result(PyBytes_AS_STRING(b), n);
    if (got != n) {
        Py_DECREF(b);
        PyErr_Format(PyExc_RuntimeError, "host call %d: result returned %d, want %d", (int)op, (int)got, (int)n);
        return NULL;
    }
    return b;
}

static PyObject *wc_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "call(op, args) takes exactly 2 arguments");
        return NULL;
    }
    int32_t op;
    if (op_number(args[0], &op) < 0) return NULL;
    Py_buffer in;
    if (PyObject_GetBuffer(args[1], &in, PyBUF_SIMPLE) < 0) return NULL;
    if (in.len > INT32_MAX) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "host call arguments over 2 GiB");
        return NULL;
    }
    int32_t n = wasmcorn_host_call(op, in.buf, (int32_t)in.len, call_buf, CALL_BUF_SIZE);
    PyBuffer_Release(&in);
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "host call %d failed with %d", (int)op, (int)n);
        return NULL;
    }
    if (n <= CALL_BUF_SIZE) {
        return PyBytes_FromStringAndSize((const char *)call_buf, n);
    }
    /* The reply did not fit: fetch it straight into a bytes object. */
    return long_reply(op, n);
}


/* ------------------------------------------------------------------ */
/* fast paths of the request/response codec                             */
/*
 * The pure-Python codec (wasmcorn._abi) is the reference and what native
 * tests replay the ABI vectors with; these C versions do the same work for
 * the two messages of every HTTP call, where Python-level byte juggling
 * would dominate a small handler's cost. decode_request applies the checks
 * of abi.DecodeRequest; a message it rejects is handed to the Python codec,
 * which reports the error.
 */

typedef struct {
    const uint8_t *p;
    size_t n, off;
    int err;
} rd_t;

static uint32_t rd_u32(rd_t *r) {
    if (r->err || r->n - r->off < 4) { r->err = 1; return 0; }
    const uint8_t *b = r->p + r->off;
    r->off += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static const uint8_t *rd_bytes(rd_t *r, size_t *len) {
    uint32_t n = rd_u32(r);
    if (r->err || n > r->n - r->off) { r->err = 1; *len = 0; return NULL; }
    const uint8_t *b = r->p + r->off;
    r->off += n;
    *len = n;
    return b;
}

static PyObject *latin1(const uint8_t *b, size_t n) {
    return PyUnicode_DecodeLatin1((const char *)b, (Py_ssize_t)n, NULL);
}

/* decode_request_c returns (method, scheme, host, path, raw_path, query,
 * remote_addr, request_id, headers, body): str fields decoded as Latin-1
 * except path (UTF-8, surrogate escapes), raw_path and body bytes, headers
 * a list of (name, value) str tuples. NULL without an exception set means
 * the message is malformed. */
static PyObject *decode_request_c(const uint8_t *p, size_t n) {
    rd_t r = {p, n, 0, 0};
    const uint8_t *f[7];
    size_t fl[7];
    for (int i = 0; i < 7; i++) f[i] = rd_bytes(&r, &fl[i]);
    uint32_t hc = rd_u32(&r);
    if (r.err || hc > 65536 || (uint64_t)hc * 8 > r.n - r.off) return NULL;
    PyObject *headers = PyList_New(hc);
    if (headers == NULL) return NULL;
    for (uint32_t i = 0; i < hc; i++) {
        size_t kl, vl;
        const uint8_t *k = rd_bytes(&r, &kl);
        const uint8_t *v = rd_bytes(&r, &vl);
        if (r.err) { Py_DECREF(headers); return NULL; }
        PyObject *kv = Py_BuildValue("(NN)", latin1(k, kl), latin1(v, vl));
        if (kv == NULL) { Py_DECREF(headers); return NULL; }
        PyList_SET_ITEM(headers, i, kv);
    }
    size_t bl;
    const uint8_t *body = rd_bytes(&r, &bl);
    if (r.err || r.off != r.n) { Py_DECREF(headers); return NULL; }
    return Py_BuildValue("(NNNNNNNNNN)",
        latin1(f[0], fl[0]), latin1(f[1], fl[1]), latin1(f[2], fl[2]),
        PyUnicode_DecodeUTF8((const char *)f[3], (Py_ssize_t)fl[3], "surrogateescape"),
        PyBytes_FromStringAndSize((const char *)f[3], (Py_ssize_t)fl[3]),
        latin1(f[4], fl[4]), latin1(f[5], fl[5]), latin1(f[6], fl[6]),
        headers,
        PyBytes_FromStringAndSize((const char *)body, (Py_ssize_t)bl));
}

/* A growable byte buffer, reused across calls. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t more) {
    if (b->cap - b->len >= more) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) { PyErr_NoMemory(); return -1; }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(buf_t *b, const void *p, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_u32(buf_t *b, uint32_t v) {
    uint8_t le[4] = {v, v >> 8, v >> 16, v >> 24};
    return buf_put(b, le, 4);
}

/* buf_field appends a u32 length, then the bytes. */
static int buf_field(buf_t *b, const void *p, size_t n) {
    if (n > UINT32_MAX) { PyErr_SetString(PyExc_OverflowError, "field over 4 GiB"); return -1; }
    return buf_u32(b, (uint32_t)n) < 0 ? -1 : buf_put(b, p, n);
}

/* The encoded response of the last call. */
static buf_t resp;

/* A str is written as Latin-1 when it can be (the HTTP and WSGI
 * convention), else as UTF-8; bytes-like objects as they are. */
static int out_field(PyObject *o) {
    if (PyUnicode_Check(o)) {
        if (PyUnicode_READY(o) < 0) return -1;
        if (PyUnicode_KIND(o) == PyUnicode_1BYTE_KIND) {
            return buf_field(&resp, PyUnicode_DATA(o), (size_t)PyUnicode_GET_LENGTH(o));
        }
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(o, &n);
        if (u != NULL) return buf_field(&resp, u, (size_t)n);
        /* Lone surrogates: a request path that was not UTF-8, decoded with
         * surrogateescape, echoed (a redirect's Location). Its bytes, as the
         * Python codec writes them. */
        PyErr_Clear();
        PyObject *bs = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
        if (bs == NULL) return -1;
        int rc = buf_field(&resp, PyBytes_AS_STRING(bs), (size_t)PyBytes_GET_SIZE(bs));
        Py_DECREF(bs);
        return rc;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(o, &b, PyBUF_SIMPLE) < 0) return -1;
    int rc = buf_field(&resp, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return rc;
}

/* encode_response_c encodes (status, headers, body) into resp. */
static int encode_response_c(PyObject *t) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
        PyErr_SetString(PyExc_TypeError, "a response is (status, headers, body)");
        return -1;
    }
    long status = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
    if (status == -1 && PyErr_Occurred()) return -1;
    if (status < 100 || status > 999) {
        PyErr_Format(PyExc_ValueError, "status %ld outside 100..999", status);
        return -1;
    }
    PyObject *hs = PySequence_Fast(PyTuple_GET_ITEM(t, 1), "headers must be a sequence of (name, value)");
    if (hs == NULL) return -1;
    resp.len = 0;
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(hs);
    int rc = buf_u32(&resp, (uint32_t)status) < 0 || buf_u32(&resp, (uint32_t)nh) < 0 ? -1 : 0;
    for (Py_ssize_t i = 0; rc == 0 && i < nh; i++) {
        PyObject *kv = PySequence_Fast_GET_ITEM(hs, i);
        if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
            PyErr_SetString(PyExc_TypeError, "a header is a (name, value) tuple");
            rc = -1;
            break;
        }
        rc = out_field(PyTuple_GET_ITEM(kv, 0)) < 0 || out_field(PyTuple_GET_ITEM(kv, 1)) < 0 ? -1 : 0;
    }
    Py_DECREF(hs);
    if (rc == 0) rc = out_field(PyTuple_GET_ITEM(t, 2));
    return rc;
}

/* ------------------------------------------------------------------ */
/* host calls with the values encoded and decoded in C                  */
/*
 * The fast path of wasmcorn._host.call: the argument values and an OK
 * reply's values are (de)coded here instead of by wasmcorn._abi, which
 * stays the reference. Only the common exact types are encoded here; for
 * anything else (subclasses, ints over i64, strs with lone surrogates,
 * memoryviews...) call_values returns None and Python encodes, so errors
 * and edge cases keep the reference behaviour. Likewise an error reply, or
 * one that does not decode cleanly here, is returned as bytes for the
 * Python codec to report.
 */

/* Kinds and codes of abi/ABI.md (wasmcorn._abi: KIND_*, OK). */
enum { K_NULL = 0, K_INT = 1, K_FLOAT = 2, K_STRING = 3, K_BYTES = 4, K_BOOL = 5 };
enum { REPLY_OK = 0 };

static buf_t args;
#define ARGS_KEEP (64 * 1024) /* the argument buffer kept between calls, at most */

/* put_value appends one value: 0 done, 1 not a fast type, -1 error. */
static int put_value(buf_t *b, PyObject *v) {
    uint8_t k;
    if (v == Py_None) {
        k = K_NULL;
        return buf_put(b, &k, 1);
    }
    if (v == Py_True || v == Py_False) {
        uint8_t kv[2] = {K_BOOL, v == Py_True};
        return buf_put(b, kv, 2);
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return 1;
        if (x == -1 && PyErr_Occurred()) return -1;
        uint8_t kv[9] = {K_INT};
        uint64_t u = (uint64_t)x;
        for (int i = 0; i < 8; i++) kv[1 + i] = (uint8_t)(u >> (8 * i));
        return buf_put(b, kv, 9);
    }
    if (PyFloat_CheckExact(v)) {
        uint8_t kv[9] = {K_FLOAT};
        double d = PyFloat_AS_DOUBLE(v);
        memcpy(kv + 1, &d, 8); /* wasm is little-endian */
        return buf_put(b, kv, 9);
    }
    const char *p;
    Py_ssize_t n;
    if (PyUnicode_CheckExact(v)) {
        p = PyUnicode_AsUTF8AndSize(v, &n);
        if (p == NULL) { /* lone surrogates: Python's surrogateescape */
            PyErr_Clear();
            return 1;
        }
        k = K_STRING;
    } else if (PyBytes_CheckExact(v)) {
        p = PyBytes_AS_STRING(v);
        n = PyBytes_GET_SIZE(v);
        k = K_BYTES;
    } else {
        return 1;
    }
    return buf_put(b, &k, 1) < 0 ? -1 : buf_field(b, p, (size_t)n);
}

/* get_values decodes a value sequence into a new list; NULL without an
 * exception set means malformed. */
static PyObject *get_values(const uint8_t *p, size_t n) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    size_t off = 0;
    while (off < n) {
        uint8_t k = p[off++];
        PyObject *v = NULL;
        size_t ln;
        switch (k) {
        case K_NULL:
            v = Py_NewRef(Py_None);
            break;
        case K_INT:
        case K_FLOAT: {
            if (n - off < 8) goto bad;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u |= (uint64_t)p[off + i] << (8 * i);
            off += 8;
            if (k == K_INT) {
                v = PyLong_FromLongLong((long long)u);
            } else {
                double d;
                memcpy(&d, &u, 8);
                v = PyFloat_FromDouble(d);
            }
            break;
        }
        case K_STRING:
        case K_BYTES: {
            rd_t r = {p, n, off, 0};
            const uint8_t *s = rd_bytes(&r, &ln);
            if (r.err) goto bad;
            off = r.off;
            v = k == K_STRING ? PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)ln, "surrogateescape")
                              : PyBytes_FromStringAndSize((const char *)s, (Py_ssize_t)ln);
            break;
        }
        case K_BOOL:
            if (n - off < 1 || p[off] > 1) goto bad;
            v = Py_NewRef(p[off++] ? Py_True : Py_False);
            break;
        default:
            goto bad;
        }
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        int rc = PyList_Append(out, v);
        Py_DECREF(v);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
bad:
    Py_DECREF(out);
    return NULL;
}

PyDoc_STRVAR(wc_call_values_doc,
"call_values(op, values) -> list | bytes | None\n\n"
"Run host operation op with a tuple of argument values. Returns the\n"
"reply's values as a list when the reply is OK; the raw reply (bytes) when\n"
"it is an error or does not decode here; None, without calling the host,\n"
"when a value is not one of the types encoded here (the caller then\n"
"encodes with wasmcorn._abi and uses call).");

static PyObject *wc_call_values(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(argv[1])) {
        PyErr_SetString(PyExc_TypeError, "call_values(op, values) takes an op and a tuple");
        return NULL;
    }
    int32_t op;
    if (op_number(argv[0], &op) < 0) return NULL;
    PyObject *vals = argv[1];
    args.len = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vals); i++) {
        int rc = put_value(&args, PyTuple_GET_ITEM(vals, i));
        if (rc < 0) return NULL;
        if (rc > 0) Py_RETURN_NONE;
    }
    if (args.len > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "host call arguments over 2 GiB");
        return NULL;
    }
    int32_t n = wasmcorn_host_call(op, args.p, (int32_t)args.len, call_buf, CALL_BUF_SIZE);
    if (args.cap > ARGS_KEEP) { /* a big value once: do not hold its buffer for the instance's life */
        free(args.p);
        args = (buf_t){0};
    }
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "host call %d failed with %d", (int)op, (int)n);
        return NULL;
    }
    PyObject *raw = NULL;
    const uint8_t *reply = call_buf;
    if (n > CALL_BUF_SIZE) {
        if ((raw = long_reply(op, n)) == NULL) return NULL;
        reply = (const uint8_t *)PyBytes_AS_STRING(raw);
    }
    if (n > 0 && reply[0] == REPLY_OK) {
        PyObject *out = get_values(reply + 1, (size_t)n - 1);
        if (out != NULL || PyErr_Occurred()) {
            Py_XDECREF(raw);
            return out;
        }
    }
    if (raw == NULL) raw = PyBytes_FromStringAndSize((const char *)reply, n);
    return raw;
}

PyDoc_STRVAR(wc_decode_request_doc,
"decode_request(message) -> tuple\n\n"
"Decode an encoded Request into (method, scheme, host, path, raw_path,\n"
"query, remote_addr, request_id, headers, body); ValueError if malformed.");

static PyObject *wc_decode_request(PyObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *t = decode_request_c(b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    if (t == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "malformed request message");
    return t;
}

PyDoc_STRVAR(wc_encode_response_doc,
"encode_response(status, headers, body) -> bytes\n\n"
"Encode a Response as the shim does for a handler's (status, headers, body).");

static PyObject *wc_encode_response(PyObject *self, PyObject *args) {
    if (encode_response_c(args) < 0) return NULL;
    return PyBytes_FromStringAndSize((const char *)resp.p, (Py_ssize_t)resp.len);
}

PyDoc_STRVAR(wc_environ_doc,
"environ() -> dict\n\n"
"Reread the WASI environment the host gave this instance (bytes to bytes).");

static PyObject *wc_environ(PyObject *self, PyObject *unused) {
    __wasilibc_deinitialize_environ();
    __wasilibc_initialize_environ();
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (char **e = __wasilibc_get_environ(); e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e) continue;
        PyObject *k = PyBytes_FromStringAndSize(*e, eq - *e);
        PyObject *v = PyBytes_FromString(eq + 1);
        if (k == NULL || v == NULL || PyDict_SetItem(d, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return d;
}

static PyMethodDef wc_methods[] = {
    {"call", (PyCFunction)(void (*)(void))wc_call, METH_FASTCALL, wc_call_doc},
    {"call_values", (PyCFunction)(void (*)(void))wc_call_values, METH_FASTCALL, wc_call_values_doc},
    {"decode_request", wc_decode_request, METH_O, wc_decode_request_doc},
    {"encode_response", wc_encode_response, METH_VARARGS, wc_encode_response_doc},
    {"environ", wc_environ, METH_NOARGS, wc_environ_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wc_module = {
    PyModuleDef_HEAD_INIT, "_wasmcorn",
    "Host calls of the wasmcorn ABI (built into the wasmcorn Python shim).",
    -1, wc_methods,
};

static PyObject *PyInit__wasmcorn(void) {
    PyObject *m = PyModule_Create(&wc_module);
    if (m == NULL) return NULL;
    if (deadline_exc == NULL) {
        deadline_exc = PyErr_NewExceptionWithDoc(
            "_wasmcorn.DeadlineExceeded",
            "Raised inside a handler when its request deadline has passed.\n\n"
            "It derives from BaseException, like KeyboardInterrupt, so that\n"
            "'except Exception' does not swallow it.",
            PyExc_BaseException, NULL);
        if (deadline_exc == NULL) {
            Py_DECREF(m);
            return NULL;
        }
        wasmcorn_deadline_init(deadline_exc);
    }
    Py_INCREF(deadline_exc);
    if (PyModule_AddObject(m, "DeadlineExceeded", deadline_exc) < 0) {
        Py_DECREF(deadline_exc);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "ABI_VERSION", 1) < 0 ||
        PyModule_AddStringConstant(m, "BUNDLE", WASMCORN_BUNDLE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------------ */
/* boot                                                                */

static void fatal_status(const char *what, PyStatus st) {
    fprintf(stderr, "wasmcorn python: %s: %s%s%s\n", what,
            st.func ? st.func : "", st.func ? ": " : "", st.err_msg ? st.err_msg : "(no message)");
    abort();
}

static void fatal_py(const char *what) {
    fprintf(stderr, "wasmcorn python: %s\n", what);
    if (PyErr_Occurred()) PyErr_Print();
    fflush(stderr);
    abort();
}

static PyObject *runtime_attr(PyObject *mod, const char *name) {
    PyObject *f = PyObject_GetAttrString(mod, name);
    if (f == NULL || !PyCallable_Check(f)) fatal_py("wasmcorn._runtime lacks a callable it needs");
    return f;
}

static void boot_python(void) {
    PyStatus st;
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) fatal_status("pre-initialize", st);

    if (PyImport_AppendInittab("_wasmcorn", PyInit__wasmcorn) < 0) {
        fprintf(stderr, "wasmcorn python: cannot register _wasmcorn\n");
        abort();
    }

    PyConfig c;
    PyConfig_InitIsolatedConfig(&c);
    c.site_import = 0;
    c.write_bytecode = 0;
    c.buffered_stdio = 0;
    c.install_signal_handlers = 0;
    c.pathconfig_warnings = 0;
    c.safe_path = 1;
    c.module_search_paths_set = 1;
    static const wchar_t *paths[] = {
        L"" WASMCORN_BUNDLE "/app",
        L"" WASMCORN_BUNDLE "/site",
        L"" WASMCORN_BUNDLE "/lib",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        st = PyWideStringList_Append(&c.module_search_paths, paths[i]);
        if (PyStatus_Exception(st)) fatal_status("sys.path", st);
    }
    st = PyConfig_SetString(&c, &c.home, L"/wasmcorn");
    if (PyStatus_Exception(st)) fatal_status("home", st);
    st = PyConfig_SetString(&c, &c.program_name, L"wasmcorn-python");
    if (PyStatus_Exception(st)) fatal_status("program name", st);

    st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) fatal_status("initialize", st);

    PyObject *rt = PyImport_ImportModule("wasmcorn._runtime");
    if (rt == NULL) fatal_py("cannot import wasmcorn._runtime (is the SDK in the bundle?)");
    rt_handle = runtime_attr(rt, "handle");
    rt_job = runtime_attr(rt, "job");
    rt_live = runtime_attr(rt, "go_live");
    PyObject *r = PyObject_CallMethod(rt, "boot", NULL);
    if (r == NULL) fatal_py("the app failed to load");
    Py_DECREF(r);
    Py_DECREF(rt);
    py_ready = 1;
}

static void run_ctors(void) {
    if (!ctors_done) {
        ctors_done = 1;
        __wasm_call_ctors();
    }
}

/* go_live runs once per instance before its first call. For an instance
 * restored from a snapshot it lets the runtime reseed random generators
 * and reread the environment. */
static void go_live(void) {
    if (live) return;
    live = 1;
    PyObject *r = PyObject_CallOneArg(rt_live, from_snapshot ? Py_True : Py_False);
    if (r == NULL) fatal_py("instance start (wasmcorn._runtime.go_live) failed");
    Py_DECREF(r);
}

WASM_EXPORT("_initialize")
void wasmcorn_initialize(void) {
    run_ctors();
    if (!py_ready) boot_python();
    go_live();
}

/* wizer calls _initialize (if exported) and then this; what it leaves in
 * memory becomes every instance's starting state, so it marks the state
 * as a snapshot that has not gone live yet. */
WASM_EXPORT("wasmcorn_wizer_init")
void wasmcorn_wizer_init(void) {
    run_ctors();
    if (!py_ready) boot_python();
    from_snapshot = 1;
    live = 0;
}

/* ------------------------------------------------------------------ */
/* the ABI                                                             */

WASM_EXPORT("wasmcorn_abi_version")
int32_t wasmcorn_abi_version(void) { return 1; }

WASM_EXPORT("wasmcorn_alloc")
void *wasmcorn_alloc(int32_t size) {
    if (size < 0) return NULL;
    if ((size_t)size > in_cap || in_buf == NULL) {
        size_t cap = in_cap ? in_cap : 4096;
        while (cap < (size_t)size) cap *= 2;
        uint8_t *b = realloc(in_buf, cap);
        if (b == NULL) return NULL;
        in_buf = b;
        in_cap = cap;
    }
    return in_buf;
}

/* Replies used when the Python runtime itself fails (it catches every
 * error of the app, so this means a broken bundle or out of memory). */
static const uint8_t fail_response[] = {
    0xf4, 0x01, 0, 0,  /* status 500 */
    0, 0, 0, 0,        /* no headers */
    22, 0, 0, 0, 'w', 'a', 's', 'm', 'c', 'o', 'r', 'n', ' ', 'r', 'u', 'n', 't', 'i', 'm', 'e',
    ' ', 'e', 'r', 'r', 'o', 'r',
};
static const uint8_t fail_job[] = {
    1, 0, 0, 0,        /* retry */
    22, 0, 0, 0, 'w', 'a', 's', 'm', 'c', 'o', 'r', 'n', ' ', 'r', 'u', 'n', 't', 'i', 'm', 'e',
    ' ', 'e', 'r', 'r', 'o', 'r',
};

static int64_t pack(const void *p, size_t n) {
    return (int64_t)(((uint64_t)(uintptr_t)p << 32) | (uint64_t)(uint32_t)n);
}

static void ensure_live(void) {
    if (!ctors_done) run_ctors();
    if (!py_ready) boot_python();
    if (!live) go_live();
}

/* wasmcorn_interrupt_stores: () -> i32, the address of the table of
 * (address, value) i32 stores the host performs, in order, when a call's
 * deadline passes (see deadline.c). The table is valid once _initialize
 * has run and does not change afterwards. */
WASM_EXPORT("wasmcorn_interrupt_stores")
int32_t wasmcorn_interrupt_stores(void) {
    ensure_live();
    return wasmcorn_deadline_stores();
}

/* call_python runs fn(arg) under the soft deadline. */
static PyObject *call_python(PyObject *fn, PyObject *arg) {
    wasmcorn_deadline_begin();
    PyObject *out = PyObject_CallOneArg(fn, arg);
    wasmcorn_deadline_end();
    return out;
}

static void runtime_error(PyObject *out) {
    fprintf(stderr, "wasmcorn python: runtime error outside the app:\n");
    if (PyErr_Occurred()) PyErr_Print();
    else if (out != NULL) fprintf(stderr, "wasmcorn._runtime returned a %s\n", Py_TYPE(out)->tp_name);
    fflush(stderr);
}

WASM_EXPORT("wasmcorn_handle")
int64_t wasmcorn_handle(const uint8_t *ptr, int32_t len) {
    ensure_live();
    Py_CLEAR(last_reply);
    size_t n = len < 0 ? 0 : (size_t)len;
    /* A malformed message goes to the Python codec as bytes, which logs the
     * precise error and answers 400. */
    PyObject *req = decode_request_c(ptr, n);
    if (req == NULL && !PyErr_Occurred()) req = PyBytes_FromStringAndSize((const char *)ptr, (Py_ssize_t)n);
    PyObject *out = req == NULL ? NULL : call_python(rt_handle, req);
    Py_XDECREF(req);
    if (out != NULL && PyTuple_Check(out)) {
        int rc = encode_response_c(out);
        Py_DECREF(out);
        if (rc == 0) return pack(resp.p, resp.len);
        out = NULL;
    }
    if (out == NULL || !PyBytes_Check(out)) {
        runtime_error(out);
        Py_XDECREF(out);
        return pack(fail_response, sizeof fail_response);
    }
    last_reply = out;
    return pack(PyBytes_AS_STRING(out), (size_t)PyBytes_GET_SIZE(out));
}

WASM_EXPORT("wasmcorn_job")
int64_t wasmcorn_job(const uint8_t *ptr, int32_t len) {
    ensure_live();
    Py_CLEAR(last_reply);
    PyObject *msg = PyBytes_FromStringAndSize((const char *)ptr, len < 0 ? 0 : len);
    PyObject *out = msg == NULL ? NULL : call_python(rt_job, msg);
    Py_XDECREF(msg);
    if (out == NULL || !PyBytes_Check(out)) {
        runtime_error(out);
        Py_XDECREF(out);
        return pack(fail_job, sizeof fail_job);
    }
    last_reply = out;
    return pack(PyBytes_AS_STRING(out), (size_t)PyBytes_GET_SIZE(out));
}
